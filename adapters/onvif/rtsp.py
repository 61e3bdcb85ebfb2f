"""RTSP liveness: one DESCRIBE (with Digest or Basic, as the camera asks) on asyncio.

A camera whose ONVIF service answers can still have a dead stream. DESCRIBE asks the RTSP
server for the stream's SDP without starting it: a few hundred bytes each way and no decoding,
cheap enough for every health probe of every camera. The picture itself is judged less often
by :mod:`adapters.onvif.stream`.

``describe_status`` is the pure core (bytes in, status and headers out); :func:`describe`
is the transport.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from adapters.errors import AuthFailed, DeviceUnreachable, ProtocolViolation

MAX_ANSWER_BYTES = 64 * 1024
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


@dataclass(frozen=True, slots=True)
class Described:
    """What a DESCRIBE told about a stream."""

    codec: str | None  # from the SDP's rtpmap: "H264", "H265"
    latency_s: float


def parse_answer(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of one RTSP answer; ``ValueError`` if it
    is not one."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("RTSP/") or not parts[1].isdigit():
        raise ValueError(f"not an RTSP answer: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers, body


def sdp_codec(body: bytes) -> str | None:
    """The first video codec an SDP names (``a=rtpmap:96 H264/90000`` → ``H264``)."""
    in_video = False
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("m="):
            in_video = line.startswith("m=video")
        elif in_video and line.startswith("a=rtpmap:"):
            name = line.split(" ", 1)[-1].split("/", 1)[0].upper()
            return "H265" if name == "HEVC" else name
    return None


def authorization(
    challenge: str,
    method: str,
    uri: str,
    username: str,
    password: str,
    *,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The ``Authorization`` header answering a ``WWW-Authenticate`` challenge."""
    scheme, _, rest = challenge.partition(" ")
    if scheme.lower() == "basic":
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        return f"Basic {token}"
    params = {m[0].lower(): m[1] or m[2] for m in _PARAM.findall(rest)}
    realm, nonce = params.get("realm", ""), params.get("nonce", "")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    ha1 = md5(f"{username}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    header = f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
    qop = params.get("qop", "")
    if "auth" in [q.strip() for q in qop.split(",")]:
        cnonce = cnonce or secrets.token_hex(8)
        response = md5(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
        header += f', qop=auth, nc={nc:08x}, cnonce="{cnonce}"'
    else:
        response = md5(f"{ha1}:{nonce}:{ha2}")
    header += f', response="{response}"'
    if "opaque" in params:
        header += f', opaque="{params["opaque"]}"'
    return header


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: str
) -> tuple[int, dict[str, str], bytes]:
    writer.write(request.encode("latin-1"))
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_ANSWER_BYTES:
        raise ValueError("RTSP answer header too long")
    status, headers, _ = parse_answer(head)
    length = int(headers.get("content-length", "0") or 0)
    if not 0 <= length <= MAX_ANSWER_BYTES:
        raise ValueError(f"RTSP answer body of {length} bytes")
    body = await reader.readexactly(length) if length else b""
    return status, headers, body


async def describe(
    url: str,
    *,
    device_id: str,
    username: str | None,
    password: str | None,
    timeout: float = 5.0,  # noqa: ASYNC109  # the per-camera budget is part of the call
) -> Described:
    """DESCRIBE ``url`` (answering one auth challenge); raises ``AuthFailed`` for a 401/403,
    ``DeviceUnreachable`` when nothing answers in time or the server fails, and
    ``ProtocolViolation`` for an answer that is not RTSP or a refusal such as 404."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 554
    where = f"rtsp://{host}:{port}{parts.path}"
    target = f"rtsp://{host}:{port}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=MAX_ANSWER_BYTES)
            try:
                base = f"DESCRIBE {target} RTSP/1.0\r\nAccept: application/sdp\r\n"
                status, headers, body = await _exchange(reader, writer, base + "CSeq: 1\r\n\r\n")
                challenge = headers.get("www-authenticate")
                if status == 401 and challenge and username is not None:
                    auth = authorization(challenge, "DESCRIBE", target, username, password or "")
                    request = base + f"CSeq: 2\r\nAuthorization: {auth}\r\n\r\n"
                    status, headers, body = await _exchange(reader, writer, request)
            finally:
                writer.close()
    except TimeoutError as exc:
        raise DeviceUnreachable(device_id, f"stream {where}: no answer in {timeout:g} s") from exc
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise DeviceUnreachable(device_id, f"stream {where}: {type(exc).__name__}") from exc
    except ValueError as exc:
        raise ProtocolViolation(device_id, f"stream {where}: {exc}") from exc
    if status in (401, 403):
        raise AuthFailed(device_id, f"stream {where}: RTSP {status}, credentials refused")
    if status >= 500:
        raise DeviceUnreachable(device_id, f"stream {where}: RTSP {status}")
    if status != 200:
        raise ProtocolViolation(device_id, f"stream {where}: RTSP {status}")
    return Described(sdp_codec(body), loop.time() - started)
