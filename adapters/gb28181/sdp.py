"""The SDP of a GB/T 28181 live-video INVITE (``s=Play``) and our answer.

An offer names where the upper platform wants the stream: ``c=`` and ``m=video PORT`` with
``RTP/AVP`` (UDP) or ``TCP/RTP/AVP`` (RFC 4571 framing), the payload type mapped to
``PS/90000``, the SSRC in the GB-specific ``y=`` line and, for TCP, who connects
(``a=setup:active`` — the platform connects to us; ``passive`` — we connect to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from adapters.sip.message import SipParseError

PS_CLOCK: Final = 90000
DEFAULT_PS_PAYLOAD_TYPE: Final = 96
MediaTransport = Literal["udp", "tcp"]
Setup = Literal["active", "passive"]


@dataclass(frozen=True, slots=True)
class VideoOffer:
    session: str
    """``Play`` (live), ``Playback``, ``Download``, ``Talk``…"""
    origin_user: str
    address: str
    port: int
    transport: MediaTransport
    setup: Setup | None
    """The *offerer's* role on TCP: ``active`` means it will connect to us."""
    ssrc: str
    payload_type: int
    """The payload type mapped to PS (96 unless the offer says otherwise)."""
    payload_types: tuple[int, ...]


def parse_offer(body: bytes) -> VideoOffer:
    """Parse an INVITE's SDP; ``SipParseError`` for anything we cannot serve."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("SDP is not UTF-8") from exc
    session = origin_user = ""
    address: str | None = None
    port: int | None = None
    transport: MediaTransport = "udp"
    setup: Setup | None = None
    ssrc = ""
    types: tuple[int, ...] = ()
    ps_type: int | None = None
    for raw in text.splitlines():
        kind, eq, value = raw.strip().partition("=")
        if not eq or len(kind) != 1:
            continue
        value = value.strip()
        if kind == "s":
            session = value
        elif kind == "o":
            origin_user = value.split(" ", 1)[0]
        elif kind == "c":
            fields = value.split()
            if len(fields) < 3 or fields[1] not in ("IP4", "IP6"):
                raise SipParseError(f"bad connection line {raw.strip()[:80]!r}")
            address = fields[2].split("/", 1)[0]
        elif kind == "m":
            fields = value.split()
            if not fields or fields[0] != "video":
                continue
            if len(fields) < 4 or not fields[1].isdigit() or not 0 < int(fields[1]) < 65536:
                raise SipParseError(f"bad media line {raw.strip()[:80]!r}")
            port = int(fields[1])
            proto = fields[2].upper()
            if proto == "RTP/AVP":
                transport = "udp"
            elif proto in ("TCP/RTP/AVP", "RTP/AVP/TCP"):
                transport = "tcp"
            else:
                raise SipParseError(f"unsupported media transport {fields[2][:20]!r}")
            types = tuple(int(f) for f in fields[3:] if f.isdigit() and int(f) < 128)
        elif kind == "a":
            name, _, arg = value.partition(":")
            if name == "setup" and arg in ("active", "passive"):
                setup = "active" if arg == "active" else "passive"
            elif name == "rtpmap":
                pt_text, _, encoding = arg.partition(" ")
                if pt_text.isdigit() and encoding.upper().startswith("PS/"):
                    ps_type = int(pt_text)
        elif kind == "y":
            ssrc = value
    if port is None:
        raise SipParseError("no video stream in SDP")
    if address is None:
        raise SipParseError("no connection address in SDP")
    if ps_type is None:
        if DEFAULT_PS_PAYLOAD_TYPE not in types:
            raise SipParseError("the offer does not accept PS (payload type 96 or rtpmap PS)")
        ps_type = DEFAULT_PS_PAYLOAD_TYPE
    if ssrc and (not ssrc.isdigit() or len(ssrc) > 10):
        raise SipParseError(f"bad SSRC in y= line {ssrc[:20]!r}")
    if transport == "tcp" and setup is None:
        setup = "passive"  # RFC 4145's default for an offer that does not say: it listens
    return VideoOffer(session, origin_user, address, port, transport, setup, ssrc, ps_type, types)


def ssrc_value(ssrc: str) -> int:
    """The 32-bit RTP SSRC of a ``y=`` value (the decimal number it spells, as platforms do)."""
    return int(ssrc) & 0xFFFFFFFF if ssrc else 0


def build_answer(
    offer: VideoOffer, *, channel_id: str, address: str, port: int, ssrc: str, session_id: int
) -> bytes:
    """Our answer: send-only PS from ``address:port`` with the SSRC the offer gave."""
    family = "IP6" if ":" in address else "IP4"
    proto = "TCP/RTP/AVP" if offer.transport == "tcp" else "RTP/AVP"
    lines = [
        "v=0",
        f"o={channel_id} {session_id} {session_id} IN {family} {address}",
        f"s={offer.session or 'Play'}",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=video {port} {proto} {offer.payload_type}",
        "a=sendonly",
        f"a=rtpmap:{offer.payload_type} PS/90000",
    ]
    if offer.transport == "tcp":
        ours = "passive" if offer.setup == "active" else "active"
        lines += [f"a=setup:{ours}", "a=connection:new"]
    lines.append(f"y={ssrc}")
    lines.append("f=")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
