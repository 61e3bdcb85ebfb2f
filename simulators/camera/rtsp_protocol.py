"""RTSP 1.0 messages (RFC 2326) and the SDP a camera sends: pure parsing and formatting."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import formatdate

MAX_HEADER_LINES = 64
MAX_LINE = 4096
MAX_BODY = 64 * 1024

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "RTSP Version Not Supported",
}

METHODS = ("OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "GET_PARAMETER", "TEARDOWN")


class RtspSyntaxError(ValueError):
    """A request that is not RTSP at all (the connection is closed after a 400)."""


@dataclass(slots=True)
class Request:
    method: str
    uri: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    @property
    def cseq(self) -> str:
        return self.header("cseq")

    @property
    def session_id(self) -> str:
        return self.header("session").split(";", 1)[0].strip()


def parse_request_line(line: str) -> tuple[str, str, str]:
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith("RTSP/"):
        raise RtspSyntaxError(f"not an RTSP request line: {line[:80]!r}")
    return parts[0].upper(), parts[1], parts[2]


def parse_header_line(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    if not sep or not name.strip():
        raise RtspSyntaxError(f"not a header line: {line[:80]!r}")
    return name.strip().lower(), value.strip()


def response(
    status: int, cseq: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """A complete RTSP response."""
    lines = [f"RTSP/1.0 {status} {REASONS.get(status, 'Error')}"]
    if cseq:
        lines.append(f"CSeq: {cseq}")
    lines.append(f"Date: {formatdate(usegmt=True)}")
    lines.append("Server: mallsim")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(frozen=True, slots=True)
class Transport:
    """A client's transport request: TCP interleaved channels or UDP client ports."""

    tcp: bool
    channels: tuple[int, int] = (0, 1)
    client_ports: tuple[int, int] = (0, 0)


def parse_transport(value: str) -> Transport | None:
    """The first acceptable unicast RTP/AVP transport of a ``Transport`` header, if any."""
    for spec in value.split(","):
        parts = [p.strip() for p in spec.split(";") if p.strip()]
        if not parts:
            continue
        proto = parts[0].upper()
        params = dict(p.partition("=")[::2] for p in parts[1:])
        if "multicast" in params:
            continue
        try:
            if proto == "RTP/AVP/TCP":
                channels = _pair(params.get("interleaved", "0-1"))
                if all(0 <= c <= 255 for c in channels):
                    return Transport(tcp=True, channels=channels)
            elif proto in ("RTP/AVP", "RTP/AVP/UDP") and "client_port" in params:
                ports = _pair(params["client_port"])
                if all(0 < p < 65536 for p in ports):
                    return Transport(tcp=False, client_ports=ports)
        except ValueError:
            continue
    return None


def _pair(text: str) -> tuple[int, int]:
    first, _, second = text.partition("-")
    a = int(first)
    return a, int(second) if second else a + 1


def sdp(
    *,
    session_id: int,
    host: str,
    title: str,
    codec: str,
    fmtp: str,
    fps: int,
    width: int,
    height: int,
) -> bytes:
    """The session description of one camera stream (one H.264 or H.265 video track)."""
    lines = [
        "v=0",
        f"o=- {session_id} 1 IN IP4 {host}",
        f"s={title}",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "a=control:*",
        "a=range:npt=0-",
        "m=video 0 RTP/AVP 96",
        f"a=rtpmap:96 {codec}/90000",
        f"a=fmtp:96 {fmtp}",
        f"a=framerate:{fps}",
        f"a=x-dimensions:{width},{height}",
        "a=control:trackID=1",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()
