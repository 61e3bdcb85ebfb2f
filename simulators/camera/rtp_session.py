"""RTP sessions of the camera's RTSP server: where each client is in its loop, paced by the
RTP clock.

Frames are sent at their time: one timer per frame interval drives every playing session of
the process, so a session costs one RTP header per packet and one socket write per frame.
Loop seams keep sequence numbers and timestamps running on.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from simulators.camera import rtp
from simulators.camera.digest import DigestGuard
from simulators.camera.rtsp_protocol import Transport
from simulators.camera.video_loop import LoopKey, VideoLoop

log = logging.getLogger(__name__)

_MAX_CATCH_UP = 5
"""Frames sent at once after a late timer; further behind, the session skips ahead."""
_MAX_BUFFERED = 4 * 1024 * 1024
"""A TCP client this far behind loses frames until the next key frame, as on a camera."""
_SR_EVERY_S = 5.0


class StreamOwner(Protocol):
    """What the RTSP server needs from its camera."""

    @property
    def name(self) -> str: ...

    @property
    def faults(self) -> set[str]: ...

    @property
    def digest(self) -> DigestGuard: ...

    def stream_key(self, profile: str) -> LoopKey | None:
        """The loop to play on ``profile`` with the current faults; None: no such stream."""

    def declared(self, profile: str) -> tuple[str, int, int, int]:
        """What the camera's configuration says of ``profile``: codec, size, frame rate."""

    def play_options(self) -> PlayOptions:
        """Where a new session starts in its loop and when it stalls."""


@dataclass(frozen=True, slots=True)
class PlayOptions:
    start_index: int = 0
    stall_after_s: float | None = None


class _Ticker:
    """Calls ``frame_due`` on every session of one frame interval, on a shared time grid."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.sessions: set[Session] = set()
        self.t0 = loop.time()
        self.k = 0
        self._handle: asyncio.TimerHandle | None = None

    def next_tick(self) -> int:
        return int((self.loop.time() - self.t0) / self.interval) + 1

    def add(self, session: Session) -> None:
        self.sessions.add(session)
        if self._handle is None:
            self.k = self.next_tick()
            self._handle = self.loop.call_at(self.t0 + self.k * self.interval, self._tick)

    def discard(self, session: Session) -> None:
        self.sessions.discard(session)
        if not self.sessions and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        now_k = int((self.loop.time() - self.t0) / self.interval)
        for session in list(self.sessions):
            try:
                session.frames_due(now_k)
            except Exception:  # one broken client must not stop every other stream
                log.exception("%s: RTP send failed", session.owner.name)
                session.close()
        if not self.sessions:
            self._handle = None
            return
        self.k = now_k + 1
        self._handle = self.loop.call_at(self.t0 + self.k * self.interval, self._tick)


_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Ticker]] = (
    weakref.WeakKeyDictionary()
)


def _ticker(fps: int) -> _Ticker:
    loop = asyncio.get_running_loop()
    per_loop = _tickers.setdefault(loop, {})
    ticker = per_loop.get(fps)
    if ticker is None:
        ticker = per_loop[fps] = _Ticker(loop, 1.0 / fps)
    return ticker


class _UdpSink(asyncio.DatagramProtocol):
    def __init__(self, on_packet: Callable[[], None]) -> None:
        self.on_packet = on_packet

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        # RTCP receiver reports (and NAT-opening packets) prove the client still listens.
        self.on_packet()


class Session:
    """One client's stream: where it is in its loop, its RTP counters and its transport."""

    def __init__(
        self,
        owner: StreamOwner,
        profile: str,
        transport: Transport,
        writer: asyncio.StreamWriter,
        timeout_s: float,
    ) -> None:
        self.owner = owner
        self.profile = profile
        self.transport = transport
        self.writer = writer
        self.id = secrets.token_hex(8).upper()
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.ts = secrets.randbits(32)
        self.timeout_s = timeout_s
        self.last_seen = time.monotonic()
        self.video: VideoLoop | None = None
        self.index = 0
        self.playing = False
        self.closed = False
        self.need_key = False
        self.next_k = 0
        self.started = 0.0
        self.stall_after_s: float | None = None
        self.packets_sent = 0
        self.octets_sent = 0
        self._last_sr = 0.0
        self._ticker: _Ticker | None = None
        self._udp: list[asyncio.DatagramTransport] = []
        self._udp_dest: tuple[str, int, int] | None = None
        self.on_close: Callable[[Session], None] | None = None

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    @property
    def expired(self) -> bool:
        return time.monotonic() - self.last_seen > self.timeout_s

    async def open_udp(self, host: str, peer: str) -> tuple[int, int]:
        """Bind the server's RTP/RTCP port pair for a UDP session; returns the ports."""
        loop = asyncio.get_running_loop()
        rtp_t, _ = await loop.create_datagram_endpoint(
            lambda: _UdpSink(self.touch), local_addr=(host, 0)
        )
        self._udp.append(rtp_t)
        rtp_port = int(rtp_t.get_extra_info("sockname")[1])
        try:
            rtcp_t, _ = await loop.create_datagram_endpoint(
                lambda: _UdpSink(self.touch), local_addr=(host, rtp_port + 1)
            )
        except OSError:
            rtcp_t, _ = await loop.create_datagram_endpoint(
                lambda: _UdpSink(self.touch), local_addr=(host, 0)
            )
        self._udp.append(rtcp_t)
        a, b = self.transport.client_ports
        self._udp_dest = (peer, a, b)
        return rtp_port, int(rtcp_t.get_extra_info("sockname")[1])

    def play(self, video: VideoLoop, options: PlayOptions) -> tuple[int, int]:
        """Start (or resume) sending; returns the first sequence number and timestamp."""
        if self.video is None or not self.playing:
            self.video = video
            self.index = options.start_index % len(video.units)
            self.started = time.monotonic()
            self.stall_after_s = options.stall_after_s
        self.playing = True
        self._move_to(_ticker(video.key.fps))
        return self.seq & 0xFFFF, self.ts & 0xFFFFFFFF

    def pause(self) -> None:
        self.playing = False
        self.need_key = True
        self._leave_ticker()

    def switch(self, video: VideoLoop) -> None:
        """Play ``video`` from its next key frame on (the camera's picture changed)."""
        if self.video is None or self.video.key == video.key:
            return
        self.video = video
        self.index = 0
        if self.playing:
            self._move_to(_ticker(video.key.fps))

    def _move_to(self, ticker: _Ticker) -> None:
        if self._ticker is not ticker:
            self._leave_ticker()
            self._ticker = ticker
            self.next_k = ticker.next_tick()
            ticker.add(self)

    def _leave_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.discard(self)
            self._ticker = None

    def frames_due(self, now_k: int) -> None:
        """Send every frame due by tick ``now_k`` (called by the ticker)."""
        if self.closed or self.video is None:
            return
        if now_k - self.next_k >= _MAX_CATCH_UP:
            self.next_k = now_k - _MAX_CATCH_UP + 1
        while self.next_k <= now_k:
            self.next_k += 1
            self._send_frame()

    def _silent(self) -> bool:
        faults = self.owner.faults
        if "offline" in faults:
            return True
        if "stall" in faults and self.stall_after_s is not None:
            return time.monotonic() - self.started >= self.stall_after_s
        return False

    def _send_frame(self) -> None:
        video = self.video
        assert video is not None
        unit = video.units[self.index]
        self.index = (self.index + 1) % len(video.units)
        timestamp = self.ts
        self.ts = (self.ts + video.ts_step) & 0xFFFFFFFF
        if self._silent() or self._congested():
            self.need_key = True
            return
        if self.need_key and not unit.key:
            return
        self.need_key = False
        packets = rtp.packets(list(unit.payloads), self.seq, timestamp, self.ssrc)
        self.seq = (self.seq + len(packets)) & 0xFFFF
        self.packets_sent += len(packets)
        self.octets_sent += sum(len(p) for p in unit.payloads)
        now = time.monotonic()
        report = None
        if now - self._last_sr >= _SR_EVERY_S:
            self._last_sr = now
            report = rtp.sender_report(
                self.ssrc, time.time(), timestamp, self.packets_sent, self.octets_sent
            )
        self._send(packets, report)

    def _congested(self) -> bool:
        if not self.transport.tcp:
            return False
        if self.writer.transport.is_closing():
            self.close()
            return True
        return self.writer.transport.get_write_buffer_size() > _MAX_BUFFERED

    def _send(self, packets: list[bytes], report: bytes | None) -> None:
        if self.transport.tcp:
            rtp_ch, rtcp_ch = self.transport.channels
            chunks = [b"$" + bytes((rtp_ch,)) + len(p).to_bytes(2, "big") + p for p in packets]
            if report is not None:
                chunks.append(b"$" + bytes((rtcp_ch,)) + len(report).to_bytes(2, "big") + report)
            self.writer.write(b"".join(chunks))
            return
        if self._udp_dest is None or len(self._udp) < 2:
            return
        host, rtp_port, rtcp_port = self._udp_dest
        for packet in packets:
            self._udp[0].sendto(packet, (host, rtp_port))
        if report is not None:
            self._udp[1].sendto(report, (host, rtcp_port))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.playing = False
        self._leave_ticker()
        for transport in self._udp:
            transport.close()
        self._udp.clear()
        if self.on_close is not None:
            self.on_close(self)
