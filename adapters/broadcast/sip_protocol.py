"""SIP and SDP for the paging client: SDP with G.711 audio, and SIP messages built with the
paging client's user agent.

The SIP message model and digest authentication are shared with the other SIP speakers and live
in ``adapters.sip``; they are re-exported here so the paging client keeps one import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Final

from adapters.sip import message as _message
from adapters.sip.digest import (
    DigestChallenge,
    build_authorization,
    digest_response,
    parse_challenge,
    parse_credentials,
)
from adapters.sip.message import (
    BRANCH_MAGIC,
    COMPACT_HEADERS,
    SIP_VERSION,
    SipMessage,
    SipParseError,
    SipRequest,
    SipResponse,
    canonical_header,
    format_hostport,
    header_params,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
    parse_sip_uri,
    tag_of,
    uri_of,
    via_branch,
)

__all__ = [
    "BRANCH_MAGIC",
    "CODEC_PAYLOAD_TYPES",
    "COMPACT_HEADERS",
    "PAYLOAD_TYPE_CODECS",
    "PCMA",
    "PCMU",
    "SIP_VERSION",
    "USER_AGENT",
    "DigestChallenge",
    "SdpAudio",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "build_authorization",
    "build_request",
    "build_response",
    "build_sdp_offer",
    "canonical_header",
    "digest_response",
    "format_hostport",
    "header_params",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_challenge",
    "parse_credentials",
    "parse_message",
    "parse_sdp_audio",
    "parse_sip_uri",
    "tag_of",
    "uri_of",
    "via_branch",
]

USER_AGENT: Final = "mallhub-broadcast"
PCMU: Final = 0
PCMA: Final = 8
CODEC_PAYLOAD_TYPES: Final = {"PCMU": PCMU, "PCMA": PCMA}
PAYLOAD_TYPE_CODECS: Final = {v: k for k, v in CODEC_PAYLOAD_TYPES.items()}


# The shared builders, with the paging client's user agent.
build_request = partial(_message.build_request, user_agent=USER_AGENT)
build_response = partial(_message.build_response, user_agent=USER_AGENT)


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
