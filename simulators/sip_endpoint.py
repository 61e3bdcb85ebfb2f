"""A simulated SIP paging endpoint: auto-answers INVITEs per zone and records the RTP it gets.

It behaves like a paging amplifier or gateway that accepts SIP: ``sip:<zone>@host:port``
calls zone ``<zone>``, the answer carries one G.711 codec and a per-zone RTP port, and the
play is recorded when the call ends with BYE. Optional digest authentication (RFC 2617,
qop=auth) and fault switches: offline (silent), busy zones (486), slow (answers after a
delay), reject (403).

SIP parsing and digest checking (``sip_wire``) and RTP parsing are written independently of
the drivers, so that a bug in a driver cannot hide behind the same bug in this fake.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self, cast

from simulators.sip_wire import (
    SipMsg,
    build_response,
    check_digest,
    header_param,
    offered_payload_types,
    parse_sip,
)

log = logging.getLogger(__name__)

T1_S: Final = 0.5
CODEC_NUMBERS: Final = {"PCMU": 0, "PCMA": 8}
CODEC_NAMES: Final = {0: "PCMU", 8: "PCMA"}
ALLOW: Final = "INVITE, ACK, CANCEL, BYE, OPTIONS"


@dataclass
class Faults:
    """Fault switches shared by the HTTP controller and the SIP endpoint."""

    offline: bool = False
    busy: set[str] = field(default_factory=set)
    slow_s: float = 0.0
    reject: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "offline": self.offline,
            "busy": sorted(self.busy),
            "slow_s": self.slow_s,
            "reject": self.reject,
        }


@dataclass
class Play:
    """One message played in one zone, by HTTP command or by a SIP call."""

    zone: str
    via: str
    started_at: datetime
    ended_at: datetime | None = None
    message: str | None = None
    text: str | None = None
    priority: Any = None
    codec: str | None = None
    packets: int = 0
    duration_s: float = 0.0
    call_id: str | None = None
    ssrc: int | None = None
    sequence_errors: int = 0
    audio: bytearray = field(default_factory=bytearray, repr=False)
    _first_ts: int | None = field(default=None, repr=False)
    _last_ts: int = field(default=0, repr=False)
    _last_len: int = field(default=0, repr=False)
    _next_seq: int | None = field(default=None, repr=False)

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def add_rtp(
        self, payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes
    ) -> None:
        """Account one RTP packet; duration comes from the RTP timestamps."""
        if self.ssrc is None:
            self.ssrc = ssrc
        if self.codec is None:
            self.codec = CODEC_NAMES.get(payload_type, str(payload_type))
        if self._next_seq is not None and sequence != self._next_seq:
            self.sequence_errors += 1
        self._next_seq = (sequence + 1) & 0xFFFF
        if self._first_ts is None:
            self._first_ts = timestamp
        self._last_ts = timestamp
        self._last_len = len(payload)
        self.packets += 1
        self.audio += payload
        span = (self._last_ts - self._first_ts) & 0xFFFFFFFF
        self.duration_s = (span + self._last_len) / 8000.0

    def to_json(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "via": self.via,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "message": self.message,
            "text": self.text,
            "priority": self.priority,
            "codec": self.codec,
            "packets": self.packets,
            "duration_s": round(self.duration_s, 4),
            "call_id": self.call_id,
            "sequence_errors": self.sequence_errors,
        }


def now() -> datetime:
    return datetime.now(UTC)


# --- RTP receiver ----------------------------------------------------------------------------


class _RtpPort(asyncio.DatagramProtocol):
    """The RTP port of one zone; packets count for the zone's current SIP call only."""

    def __init__(self) -> None:
        self.play: Play | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.stray = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's UDP transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.play is None or self.play.ended or len(data) < 12 or data[0] >> 6 != 2:
            self.stray += 1
            return
        first, second, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
        offset = 12 + 4 * (first & 0x0F)
        self.play.add_rtp(second & 0x7F, seq, ts, ssrc, data[offset:])


@dataclass
class _Call:
    call_id: str
    zone: str
    to_tag: str
    play: Play
    ok: bytes
    addr: Any
    acked: bool = False
    retransmit: asyncio.TimerHandle | None = None


class SipPagingEndpoint(asyncio.DatagramProtocol):
    """The SIP side of the simulated controller. ``async with`` binds its sockets."""

    def __init__(
        self,
        zones: Sequence[str],
        faults: Faults,
        plays: list[Play],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str | None = None,
        password: str | None = None,
        realm: str = "mallsim",
        codecs: Sequence[str] = ("PCMU", "PCMA"),
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.zones = list(zones)
        self.faults = faults
        self.plays = plays
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.realm = realm
        self.codecs = [CODEC_NUMBERS[c] for c in codecs]
        self._on_change = on_change
        self.counters: Counter[str] = Counter()
        """Requests by method and outcome, e.g. ``INVITE 486``, ``dropped offline``."""
        self._transport: asyncio.DatagramTransport | None = None
        self._rtp: dict[str, _RtpPort] = {}
        self._calls: dict[str, _Call] = {}
        self._answered: dict[tuple[str, str, str], bytes] = {}
        self._pending: dict[tuple[str, str], tuple[asyncio.TimerHandle | None, SipMsg, Any]] = {}
        self._nonces: set[str] = set()
        self._timers: set[asyncio.TimerHandle] = set()

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, self.port)
        )
        try:
            for zone in self.zones:
                _, rtp = await loop.create_datagram_endpoint(_RtpPort, local_addr=(self.host, 0))
                self._rtp[zone] = rtp
        except BaseException:
            transport.close()
            for rtp in self._rtp.values():
                if rtp.transport is not None:
                    rtp.transport.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for pending, _, _ in self._pending.values():
            if pending is not None:
                pending.cancel()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for rtp in self._rtp.values():
            if rtp.transport is not None:
                rtp.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's UDP transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)
        self.port = int(transport.get_extra_info("sockname")[1])

    def rtp_port(self, zone: str) -> int:
        rtp = self._rtp[zone]
        assert rtp.transport is not None
        return int(rtp.transport.get_extra_info("sockname")[1])

    def busy_zones(self) -> set[str]:
        """Zones with a SIP call in progress."""
        return {call.zone for call in self._calls.values()}

    # --- receiving ------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.faults.offline:
            self.counters["dropped offline"] += 1
            return
        if not data.strip():
            return
        try:
            msg = parse_sip(data)
            if not msg.is_request:
                return  # we never send requests that expect answers
            method = msg.method
        except (UnicodeDecodeError, ValueError, IndexError):
            self.counters["unparsable"] += 1
            return
        handler = {
            "INVITE": self._invite,
            "ACK": self._ack,
            "BYE": self._bye,
            "CANCEL": self._cancel,
            "OPTIONS": self._options,
        }.get(method)
        if handler is None:
            self._send(build_response(msg, 501, "Not Implemented"), addr, method, 501)
            return
        handler(msg, addr)

    def _send(self, data: bytes, addr: Any, method: str, code: int) -> None:
        self.counters[f"{method} {code}"] += 1
        if self._transport is not None:
            self._transport.sendto(data, addr)

    def _later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()

        def run() -> None:
            self._timers.discard(handle)
            callback()

        handle = loop.call_later(delay, run)
        self._timers.add(handle)
        return handle

    def _options(self, msg: SipMsg, addr: Any) -> None:
        self._send(build_response(msg, 200, "OK", extra=[("Allow", ALLOW)]), addr, "OPTIONS", 200)

    def _invite(self, msg: SipMsg, addr: Any) -> None:
        call_id = msg.header("call-id") or ""
        cseq = msg.header("cseq") or ""
        key = (call_id, cseq, header_param(msg.header("via") or "", "branch") or "")
        if key in self._answered:
            self.counters["INVITE retransmission"] += 1
            self._transport_send(self._answered[key], addr)
            return
        if (call_id, cseq) in self._pending:
            self.counters["INVITE retransmission"] += 1
            return
        if call_id in self._calls:
            self._final(key, build_response(msg, 488, "Not Acceptable Here"), addr, 488)
            return
        if self.faults.slow_s > 0:
            handle = self._later(self.faults.slow_s, lambda: self._process_invite(msg, addr, key))
            self._pending[(call_id, cseq)] = (handle, msg, addr)
            return
        self._process_invite(msg, addr, key)

    def _transport_send(self, data: bytes, addr: Any) -> None:
        if self._transport is not None and not self.faults.offline:
            self._transport.sendto(data, addr)

    def _final(self, key: tuple[str, str, str], data: bytes, addr: Any, code: int) -> None:
        self._answered[key] = data
        self._send(data, addr, "INVITE", code)

    def _process_invite(self, msg: SipMsg, addr: Any, key: tuple[str, str, str]) -> None:
        self._pending.pop(key[:2], None)
        if self.faults.offline:
            return
        to_tag = secrets.token_hex(4)
        if self.faults.reject:
            self._final(key, build_response(msg, 403, "Forbidden", to_tag=to_tag), addr, 403)
            return
        if self.username is not None:
            authorization = msg.header("authorization")
            if not check_digest(
                authorization,
                method="INVITE",
                username=self.username,
                password=self._password or "",
                realm=self.realm,
                nonces=self._nonces,
            ):
                # A wrong answer gets a fresh challenge, as a real registrar would send.
                nonce = secrets.token_hex(16)
                self._nonces.add(nonce)
                challenge = (
                    f'Digest realm="{self.realm}", nonce="{nonce}", qop="auth", '
                    f'algorithm=MD5, opaque="{secrets.token_hex(4)}"'
                )
                reply = build_response(
                    msg,
                    401,
                    "Unauthorized",
                    to_tag=to_tag,
                    extra=[("WWW-Authenticate", challenge)],
                )
                self._final(key, reply, addr, 401)
                return
        user = msg.uri.split(":", 1)[-1].split("@", 1)[0] if "@" in msg.uri else ""
        if user not in self._rtp:
            self._final(key, build_response(msg, 404, "Not Found", to_tag=to_tag), addr, 404)
            return
        if user in self.faults.busy or user in self.busy_zones():
            self._final(key, build_response(msg, 486, "Busy Here", to_tag=to_tag), addr, 486)
            return
        offered = offered_payload_types(msg.body)
        chosen = next((pt for pt in offered if pt in self.codecs), None)
        if chosen is None:
            self._final(
                key, build_response(msg, 488, "Not Acceptable Here", to_tag=to_tag), addr, 488
            )
            return
        self._send(build_response(msg, 100, "Trying"), addr, "INVITE", 100)
        self._send(build_response(msg, 180, "Ringing", to_tag=to_tag), addr, "INVITE", 180)
        session = secrets.randbelow(10**9)
        sdp = (
            f"v=0\r\no=mallsim {session} {session} IN IP4 {self.host}\r\ns=paging\r\n"
            f"c=IN IP4 {self.host}\r\nt=0 0\r\n"
            f"m=audio {self.rtp_port(user)} RTP/AVP {chosen}\r\n"
            f"a=rtpmap:{chosen} {CODEC_NAMES[chosen]}/8000\r\na=recvonly\r\n"
        ).encode()
        contact = f"<sip:{user}@{self.host}:{self.port}>"
        ok = build_response(
            msg, 200, "OK", to_tag=to_tag, extra=[("Contact", contact), ("Allow", ALLOW)], body=sdp
        )
        play = Play(zone=user, via="sip", started_at=now(), call_id=msg.header("call-id"))
        call = _Call(
            call_id=msg.header("call-id") or "",
            zone=user,
            to_tag=to_tag,
            play=play,
            ok=ok,
            addr=addr,
        )
        self._calls[call.call_id] = call
        self._rtp[user].play = play
        self.plays.append(play)
        self._final(key, ok, addr, 200)
        self._schedule_ok(call, T1_S, 0.0)
        self._changed()

    def _schedule_ok(self, call: _Call, interval: float, elapsed: float) -> None:
        """Retransmit the 2xx until the ACK (RFC 3261 13.3.1.4), giving up after 64·T1."""
        if elapsed >= 64 * T1_S:
            log.info("zone %s: no ACK for call %s, dropping it", call.zone, call.call_id)
            self._end_call(call)
            return

        def again() -> None:
            if call.acked or call.call_id not in self._calls:
                return
            self.counters["INVITE 200 retransmission"] += 1
            self._transport_send(call.ok, call.addr)
            self._schedule_ok(call, min(interval * 2, 4.0), elapsed + interval)

        call.retransmit = self._later(interval, again)

    def _ack(self, msg: SipMsg, addr: Any) -> None:
        call = self._calls.get(msg.header("call-id") or "")
        self.counters["ACK"] += 1
        if call is not None and not call.acked:
            call.acked = True
            if call.retransmit is not None:
                call.retransmit.cancel()
                self._timers.discard(call.retransmit)

    def _bye(self, msg: SipMsg, addr: Any) -> None:
        call = self._calls.get(msg.header("call-id") or "")
        if call is None:
            ended = any(p.call_id == msg.header("call-id") for p in self.plays)
            # A retransmitted BYE for a call we already ended still gets its 200.
            code, reason = (200, "OK") if ended else (481, "Call/Transaction Does Not Exist")
            self._send(build_response(msg, code, reason), addr, "BYE", code)
            return
        self._send(build_response(msg, 200, "OK"), addr, "BYE", 200)
        self._end_call(call)

    def _end_call(self, call: _Call) -> None:
        if call.retransmit is not None:
            call.retransmit.cancel()
            self._timers.discard(call.retransmit)
        self._calls.pop(call.call_id, None)
        call.play.ended_at = now()
        rtp = self._rtp.get(call.zone)
        if rtp is not None and rtp.play is call.play:
            rtp.play = None
        self._changed()

    def _cancel(self, msg: SipMsg, addr: Any) -> None:
        call_id = msg.header("call-id") or ""
        cseq_num = (msg.header("cseq") or "").split(" ", 1)[0]
        invite_cseq = f"{cseq_num} INVITE"
        pending = self._pending.pop((call_id, invite_cseq), None)
        if pending is None:
            self._send(
                build_response(msg, 481, "Call/Transaction Does Not Exist"), addr, "CANCEL", 481
            )
            return
        handle, invite, invite_addr = pending
        if handle is not None:
            handle.cancel()
            self._timers.discard(handle)
        self._send(build_response(msg, 200, "OK"), addr, "CANCEL", 200)
        key = (call_id, invite_cseq, header_param(invite.header("via") or "", "branch") or "")
        self._final(
            key,
            build_response(invite, 487, "Request Terminated", to_tag=secrets.token_hex(4)),
            invite_addr,
            487,
        )

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()
