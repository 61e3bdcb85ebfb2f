"""SIP messages as pure values (RFC 3261): parse, build, header helpers, stream framing.

Shared by every SIP speaker in the adapters (the paging client, the GB/T 28181 platform). No
I/O here: bytes in, values out.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

SIP_VERSION: Final = "SIP/2.0"
BRANCH_MAGIC: Final = "z9hG4bK"
USER_AGENT: Final = "mallhub"

COMPACT_HEADERS: Final = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
}
_CANONICAL: Final = {
    name.lower(): name
    for name in (
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Authorization",
        "Proxy-Authorization",
        "User-Agent",
        "Allow",
        "Supported",
        "Record-Route",
        "Route",
        "Subject",
        "Server",
    )
}


class SipParseError(ValueError):
    """The bytes are not a SIP message this module understands."""


def canonical_header(name: str) -> str:
    """``v`` → ``Via``, ``call-id`` → ``Call-ID``; unknown names keep their spelling."""
    lowered = name.strip().lower()
    if lowered in COMPACT_HEADERS:
        return COMPACT_HEADERS[lowered]
    return _CANONICAL.get(lowered, name.strip())


@dataclass(slots=True)
class SipMessage:
    """Headers in wire order (repeated names allowed) and a body."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str) -> str | None:
        """First value of a header, by full or compact name, case-insensitive."""
        wanted = canonical_header(name).lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, in order; comma-joined values are not split."""
        wanted = canonical_header(name).lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise SipParseError(f"missing {canonical_header(name)} header")
        return value

    @property
    def call_id(self) -> str:
        return self.require("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) of the CSeq header."""
        parts = self.require("CSeq").split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SipParseError(f"bad CSeq {self.get('CSeq')!r}")
        return int(parts[0]), parts[1].upper()

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise with CRLF line ends and a Content-Length matching the body."""
        lines = [self._start_line()]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass(slots=True)
class SipRequest(SipMessage):
    method: str = ""
    uri: str = ""

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"


@dataclass(slots=True)
class SipResponse(SipMessage):
    status: int = 0
    reason: str = ""

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one SIP message from a UDP datagram.

    Folded header lines are joined; the body is cut to Content-Length when it is given.
    """
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("header is not UTF-8") from exc
    raw_lines = text.replace("\r\n", "\n").split("\n")
    while raw_lines and not raw_lines[0].strip():
        raw_lines.pop(0)  # keep-alive CRLFs before a message
    if not raw_lines:
        raise SipParseError("empty message")
    start, lines = raw_lines[0].strip(), raw_lines[1:]
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise SipParseError(f"bad header line {line!r}")
        headers.append((canonical_header(name), value.strip()))
    message: SipRequest | SipResponse
    if start.startswith(SIP_VERSION + " "):
        _, code, reason = [*start.split(" ", 2), ""][:3]
        if len(code) != 3 or not code.isdigit():
            raise SipParseError(f"bad status line {start!r}")
        message = SipResponse(headers=headers, status=int(code), reason=reason)
    else:
        parts = start.split(" ")
        if len(parts) != 3 or parts[2] != SIP_VERSION or not parts[0].isalpha():
            raise SipParseError(f"bad request line {start!r}")
        message = SipRequest(headers=headers, method=parts[0].upper(), uri=parts[1])
    length = message.get("Content-Length")
    if length is not None:
        if not length.strip().isdigit():
            raise SipParseError(f"bad Content-Length {length!r}")
        wanted = int(length)
        if wanted > len(body):
            raise SipParseError("body shorter than Content-Length")
        body = body[:wanted]
    message.body = body
    return message


# --- header values --------------------------------------------------------------------------


def new_branch() -> str:
    return BRANCH_MAGIC + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"


def header_params(value: str) -> dict[str, str]:
    """``;name=value`` parameters of a header value outside its ``<uri>`` (names lowered)."""
    outside = re.sub(r"<[^>]*>", "", value)
    outside = re.sub(r'"[^"]*"', "", outside)
    params: dict[str, str] = {}
    for part in outside.split(";")[1:]:
        name, _, val = part.partition("=")
        if name.strip():
            params[name.strip().lower()] = val.strip()
    return params


def tag_of(value: str | None) -> str | None:
    """The ``tag`` parameter of a From or To header value."""
    return None if value is None else header_params(value).get("tag")


def uri_of(value: str) -> str:
    """The URI inside a name-addr (``"A" <sip:a@b>;tag=x`` → ``sip:a@b``)."""
    match = re.search(r"<([^>]*)>", value)
    if match:
        return match.group(1).strip()
    return value.split(";", 1)[0].strip()


def via_branch(value: str) -> str | None:
    return header_params(value).get("branch")


def parse_sip_uri(uri: str) -> tuple[str | None, str, int]:
    """(user, host, port) of ``sip:user@host:port;params`` (port 5060 when absent)."""
    rest = uri.strip()
    for scheme in ("sip://", "sip:"):
        if rest.lower().startswith(scheme):
            rest = rest[len(scheme) :]
            break
    rest = rest.split(";", 1)[0].split("?", 1)[0].rstrip("/")
    user: str | None = None
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail.lstrip(":")
    else:
        host, _, port_text = rest.partition(":")
    if not host:
        raise ValueError(f"no host in SIP URI {uri!r}")
    port = 5060
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port in SIP URI {uri!r}")
        port = int(port_text)
    return user, host, port


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_request(
    method: str,
    uri: str,
    *,
    via: str,
    from_: str,
    to: str,
    call_id: str,
    cseq: int,
    contact: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
    cseq_method: str | None = None,
    user_agent: str = USER_AGENT,
) -> SipRequest:
    """A request with the mandatory headers in the customary order."""
    headers = [
        ("Via", via),
        ("Max-Forwards", "70"),
        ("From", from_),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {cseq_method or method}"),
    ]
    if contact is not None:
        headers.append(("Contact", contact))
    headers.append(("User-Agent", user_agent))
    headers.extend(extra)
    if body:
        headers.append(("Content-Type", content_type or "application/sdp"))
    return SipRequest(headers=headers, body=body, method=method, uri=uri)


def build_response(
    request: SipRequest,
    status: int,
    reason: str,
    *,
    to_tag: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
    user_agent: str = USER_AGENT,
) -> SipResponse:
    """A response copying Via, From, To, Call-ID and CSeq from ``request``."""
    headers = [("Via", v) for v in request.get_all("Via")]
    to = request.require("To")
    if to_tag and tag_of(to) is None:
        to = f"{to};tag={to_tag}"
    headers += [
        ("From", request.require("From")),
        ("To", to),
        ("Call-ID", request.call_id),
        ("CSeq", request.require("CSeq")),
        ("Server", user_agent),
    ]
    headers.extend(extra)
    if body:
        headers.append(("Content-Type", content_type or "application/sdp"))
    return SipResponse(headers=headers, body=body, status=status, reason=reason)


class StreamFramer:
    """Cuts whole SIP messages out of a TCP byte stream (RFC 3261 §18.3).

    On a stream, Content-Length is mandatory and is the only way to find the end of a body.
    Empty lines between messages (CRLF keep-alives) are skipped. A message whose header or
    body exceeds ``max_size`` is an error: the connection should be closed, not buffered.
    """

    def __init__(self, max_size: int = 65536) -> None:
        self.max_size = max_size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every message now complete (possibly none)."""
        self._buffer += data
        messages: list[bytes] = []
        while True:
            while self._buffer[:2] == b"\r\n":
                del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self.max_size:
                    raise SipParseError(f"header longer than {self.max_size} bytes")
                return messages
            head = bytes(self._buffer[:end])
            match = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*$", head)
            if match is None:
                raise SipParseError("message on a stream without Content-Length")
            if not match.group(1).isdigit():
                raise SipParseError(f"bad Content-Length {match.group(1)!r}")
            length = int(match.group(1))
            total = end + 4 + length
            if total > self.max_size:
                raise SipParseError(f"message of {total} bytes exceeds {self.max_size}")
            if len(self._buffer) < total:
                return messages
            messages.append(bytes(self._buffer[:total]))
            del self._buffer[:total]
