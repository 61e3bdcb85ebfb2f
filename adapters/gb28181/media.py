"""One live stream: pull a camera's RTSP with PyAV (demux only), mux PS, send RTP.

No decoding and no transcoding: the camera's H.264/H.265 access units are copied into PS
packs as they arrive. The RTSP reader runs in a thread of its own (PyAV blocks) and hands
packets to the event loop through a bounded queue; when the sender falls behind, packets are
dropped up to the next key frame rather than queued without end, so the picture resumes
cleanly. The RTP side is UDP to the offered address, or RFC 4571 over TCP — we connect
(offer ``setup:passive``) or we listen and the platform connects (``setup:active``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final, cast

import av

from adapters.gb28181.model import StreamSource
from adapters.gb28181.ps import (
    Codec,
    RtpPacketizer,
    annexb_extradata,
    frame_rfc4571,
    has_parameter_sets,
    mux_access_unit,
)
from adapters.gb28181.sdp import VideoOffer

log = logging.getLogger(__name__)

CODECS: Final[dict[str, Codec]] = {"h264": "h264", "hevc": "h265"}
QUEUE_SIZE: Final = 120
OPEN_TIMEOUT_S: Final = 10.0
READ_TIMEOUT_S: Final = 5.0


class MediaError(Exception):
    """The stream cannot be served (source unreachable, codec not H.264/H.265, peer gone)."""


@dataclass(frozen=True, slots=True)
class _Unit:
    data: bytes
    pts: int
    dts: int | None
    key: bool


_END: Final = object()


class RtspReader:
    """Demuxes one RTSP source in a thread; ``units`` yields 90 kHz access units."""

    def __init__(self, source: StreamSource) -> None:
        self.source = source
        self.codec: Codec = "h264"
        self._container: Any = None
        self._stream: Any = None
        self._extradata = b""
        self._queue: asyncio.Queue[object] = asyncio.Queue()  # bounded by the drop rule in _run
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.error: str | None = None

    async def open(self) -> None:
        """Connect and find the video stream (in a thread: PyAV blocks)."""
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        options = {"rtsp_transport": "tcp", "timeout": str(int(READ_TIMEOUT_S * 1e6))}
        options.update(dict(self.source.options))
        try:
            container = av.open(
                self.source.url, options=options, timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S)
            )
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot open the camera's stream: {exc}") from exc
        videos = [s for s in container.streams if s.type == "video"]
        if not videos:
            container.close()
            raise MediaError("the camera's stream has no video")
        stream = videos[0]
        name = stream.codec_context.name
        if name not in CODECS:
            container.close()
            raise MediaError(f"the camera sends {name}, not H.264 or H.265")
        self.codec = CODECS[name]
        self._extradata = annexb_extradata(self.codec, bytes(stream.codec_context.extradata or b""))
        self._container, self._stream = container, stream

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._thread = threading.Thread(target=self._run, args=(loop,), daemon=True)
        self._thread.start()

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        waiting_for_key = False
        base = self._stream.time_base or Fraction(1, 90000)
        try:
            for packet in self._container.demux(self._stream):
                if self._stop.is_set():
                    break
                if packet.size == 0:
                    continue
                key = bool(packet.is_keyframe)
                if waiting_for_key and not key:
                    self.dropped += 1
                    continue
                data = bytes(packet)
                if key and self._extradata and not has_parameter_sets(self.codec, data):
                    data = self._extradata + data
                pts = int((packet.pts or 0) * base * 90000)
                dts = int(packet.dts * base * 90000) if packet.dts is not None else None
                unit = _Unit(data, pts, dts, key)
                if self._queue.qsize() >= QUEUE_SIZE - 1:
                    waiting_for_key = True
                    self.dropped += 1
                    continue
                waiting_for_key = False
                loop.call_soon_threadsafe(self._queue.put_nowait, unit)
        except (av.FFmpegError, OSError) as exc:
            self.error = str(exc)
        finally:
            with contextlib.suppress(av.FFmpegError, OSError):
                self._container.close()
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(self._queue.put_nowait, _END)

    async def next_unit(self) -> _Unit | None:
        item = await self._queue.get()
        return None if item is _END else cast(_Unit, item)

    async def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # The demux loop notices the flag at the next packet (or the read timeout).
            await asyncio.to_thread(self._thread.join, READ_TIMEOUT_S + 1)
        elif self._container is not None:
            await asyncio.to_thread(self._container.close)


class _UdpOut(asyncio.DatagramProtocol):
    pass


class RtpOutput:
    """Where the RTP goes: a UDP socket, or a TCP connection (either direction)."""

    def __init__(self, offer: VideoOffer, local_host: str) -> None:
        self.offer = offer
        self.local_host = local_host
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._accepted: asyncio.Future[asyncio.StreamWriter] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def prepare(self) -> None:
        """Bind what the answer must name: the UDP source port or the TCP listening port."""
        loop = asyncio.get_running_loop()
        if self.offer.transport == "udp":
            transport, _ = await loop.create_datagram_endpoint(
                _UdpOut, local_addr=(self.local_host, 0)
            )
            self._udp = transport
            self.port = int(transport.get_extra_info("sockname")[1])
        elif self.offer.setup == "active":
            accepted: asyncio.Future[asyncio.StreamWriter] = loop.create_future()

            def on_connect(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                if accepted.done():
                    writer.close()  # one connection per stream
                else:
                    accepted.set_result(writer)

            self._accepted = accepted
            self._server = await asyncio.start_server(on_connect, self.local_host, 0)
            self.port = int(self._server.sockets[0].getsockname()[1])
        else:
            self.port = 9  # RFC 4145: an active TCP endpoint names the discard port

    async def connect(self, within_s: float) -> None:
        """For TCP: have the connection (accept it or open it) within ``within_s``."""
        if self.offer.transport != "tcp":
            return
        try:
            async with asyncio.timeout(within_s):
                if self._accepted is not None:
                    self._writer = await self._accepted
                else:
                    _, self._writer = await asyncio.open_connection(
                        self.offer.address, self.offer.port
                    )
        except (TimeoutError, OSError) as exc:
            raise MediaError(f"no TCP media connection with {self.offer.address}: {exc}") from exc

    async def send(self, packets: list[bytes]) -> None:
        if self._udp is not None:
            for packet in packets:
                self._udp.sendto(packet, (self.offer.address, self.offer.port))
            return
        if self._writer is None:
            raise MediaError("no media connection")
        self._writer.write(b"".join(frame_rfc4571(p) for p in packets))
        try:
            await self._writer.drain()
        except OSError as exc:
            raise MediaError(f"media connection lost: {exc}") from exc

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
        if self._accepted is not None and not self._accepted.done():
            self._accepted.cancel()


async def pump(
    reader: RtspReader,
    output: RtpOutput,
    ssrc: int,
    payload_type: int,
    on_sent: Callable[[int], None] | None = None,
) -> str:
    """Copy access units from the camera to the platform until the source ends.

    Returns why it ended (the source's error, or ``source ended``); cancelled by BYE.
    """
    packetizer = RtpPacketizer(ssrc=ssrc, payload_type=payload_type)
    started = False
    while (unit := await reader.next_unit()) is not None:
        if not started and not unit.key:
            continue  # a decoder needs the first pack to carry parameter sets and an IDR
        started = True
        pack = mux_access_unit(reader.codec, unit.data, unit.pts, unit.dts, unit.key)
        packets = packetizer.packets(pack, unit.pts)
        await output.send(packets)
        if on_sent is not None:
            on_sent(len(packets))
    return reader.error or "source ended"
