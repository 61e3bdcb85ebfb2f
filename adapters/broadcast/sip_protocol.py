"""SIP and SDP as pure functions: build and parse messages, compute digest credentials.

Only what a paging user agent client needs (RFC 3261 over UDP, RFC 2617 digest, RFC 4566
SDP with G.711 audio). No I/O here: bytes in, values out, so every rule is unit-testable.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

SIP_VERSION: Final = "SIP/2.0"
BRANCH_MAGIC: Final = "z9hG4bK"
USER_AGENT: Final = "mallhub-broadcast"

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

PCMU: Final = 0
PCMA: Final = 8
CODEC_PAYLOAD_TYPES: Final = {"PCMU": PCMU, "PCMA": PCMA}
PAYLOAD_TYPE_CODECS: Final = {v: k for k, v in CODEC_PAYLOAD_TYPES.items()}


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
    headers.append(("User-Agent", USER_AGENT))
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
        ("Server", USER_AGENT),
    ]
    headers.extend(extra)
    if body:
        headers.append(("Content-Type", content_type or "application/sdp"))
    return SipResponse(headers=headers, body=body, status=status, reason=reason)


# --- digest authentication (RFC 2617, as used by RFC 3261) -------------------------------


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


def _split_auth_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for match in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)', text):
        value = match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[match.group(1).lower()] = value
    return params


def parse_challenge(value: str) -> DigestChallenge:
    """Parse a ``WWW-Authenticate`` / ``Proxy-Authenticate`` Digest challenge."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError(f"unsupported authentication scheme {scheme!r}")
    params = _split_auth_params(rest)
    if "realm" not in params or "nonce" not in params:
        raise SipParseError("digest challenge without realm or nonce")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return DigestChallenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=params.get("algorithm", "MD5"),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def parse_credentials(value: str) -> dict[str, str]:
    """Parameters of an ``Authorization: Digest ...`` header (names lowered)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError(f"unsupported authentication scheme {scheme!r}")
    return _split_auth_params(rest)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def digest_response(
    *,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    algorithm: str = "MD5",
    qop: str | None = None,
    nc: str = "00000001",
    cnonce: str = "",
) -> str:
    """The ``response`` value of RFC 2617 digest (MD5 or MD5-sess; qop auth or none)."""
    ha1 = _md5(f"{username}:{realm}:{password}")
    if algorithm.upper() == "MD5-SESS":
        ha1 = _md5(f"{ha1}:{nonce}:{cnonce}")
    elif algorithm.upper() != "MD5":
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


def build_authorization(
    challenge: DigestChallenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The value of an ``Authorization`` / ``Proxy-Authorization`` header for ``challenge``."""
    if challenge.qop and "auth" not in challenge.qop:
        raise ValueError(f"unsupported qop {','.join(challenge.qop)!r} (only auth)")
    qop = "auth" if challenge.qop else None
    nc_text = f"{nc:08x}"
    cnonce = cnonce or secrets.token_hex(8)
    response = digest_response(
        username=username,
        password=password,
        realm=challenge.realm,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        algorithm=challenge.algorithm,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
    )
    parts = [
        f'username="{username}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
        f'response="{response}"',
        f"algorithm={challenge.algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}", f'cnonce="{cnonce}"']
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(parts)


# --- SDP ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SdpAudio:
    """The audio stream of a session description."""

    address: str
    port: int
    payload_types: tuple[int, ...]
    direction: str = "sendrecv"
    rtpmap: Mapping[int, str] = field(default_factory=dict)

    def codec_for(self, payload_type: int) -> str | None:
        name = self.rtpmap.get(payload_type, "").split("/", 1)[0].upper()
        return name or PAYLOAD_TYPE_CODECS.get(payload_type)


def build_sdp_offer(
    address: str,
    port: int,
    codecs: Sequence[str],
    *,
    session_id: int,
    direction: str = "sendonly",
    ptime_ms: int = 20,
) -> bytes:
    """An SDP offer for one G.711 audio stream from ``address:port``."""
    family = "IP6" if ":" in address else "IP4"
    types = [CODEC_PAYLOAD_TYPES[c] for c in codecs]
    lines = [
        "v=0",
        f"o=mallhub {session_id} {session_id} IN {family} {address}",
        "s=mallhub paging",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(t) for t in types)}",
        *(f"a=rtpmap:{CODEC_PAYLOAD_TYPES[c]} {c}/8000" for c in codecs),
        f"a=ptime:{ptime_ms}",
        f"a={direction}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def parse_sdp_audio(body: bytes) -> SdpAudio:
    """The first audio stream of an SDP body; a media-level ``c=`` wins over the session's."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("SDP is not UTF-8") from exc
    session_address: str | None = None
    media_address: str | None = None
    port: int | None = None
    types: tuple[int, ...] = ()
    direction = "sendrecv"
    rtpmap: dict[int, str] = {}
    in_audio = False
    seen_audio = False
    for raw in text.splitlines():
        line = raw.strip()
        kind, eq, value = line.partition("=")
        if not eq or len(kind) != 1:
            continue
        if kind == "m":
            if seen_audio:
                break
            fields = value.split()
            in_audio = bool(fields) and fields[0] == "audio"
            if in_audio:
                seen_audio = True
                if len(fields) < 4 or not fields[1].split("/")[0].isdigit():
                    raise SipParseError(f"bad media line {line!r}")
                port = int(fields[1].split("/")[0])
                types = tuple(int(f) for f in fields[3:] if f.isdigit())
        elif kind == "c":
            fields = value.split()
            if len(fields) < 3:
                raise SipParseError(f"bad connection line {line!r}")
            address = fields[2].split("/", 1)[0]
            if in_audio:
                media_address = address
            elif not seen_audio:
                session_address = address
        elif kind == "a" and (in_audio or not seen_audio):
            if value in ("sendrecv", "sendonly", "recvonly", "inactive"):
                direction = value
            elif value.startswith("rtpmap:") and in_audio:
                pt_text, _, encoding = value[len("rtpmap:") :].partition(" ")
                if pt_text.isdigit():
                    rtpmap[int(pt_text)] = encoding.strip()
    if port is None:
        raise SipParseError("no audio stream in SDP")
    connection = media_address or session_address
    if connection is None:
        raise SipParseError("no connection address in SDP")
    return SdpAudio(connection, port, types, direction, rtpmap)
