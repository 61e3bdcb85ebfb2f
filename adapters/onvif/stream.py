"""Read a camera's video stream (RTSP, or HTTP MJPEG) with PyAV and measure it honestly.

Why PyAV and not OpenCV's ``VideoCapture`` (figures in docs/performance.md): both wrap the
same FFmpeg, but only PyAV gives the stream's own timestamps (RTP, 90 kHz) and its codec
parameters, lets a check hand the decoder key frames only, and takes FFmpeg options
(transport, socket time-out) and an open/read time-out that hold. OpenCV hides all of that and
prints FFmpeg's log on stderr.

One :func:`read_stream` call opens the stream (TCP interleaved first, UDP when the camera
refuses TCP), reads it for a short window and closes it. It returns a :class:`StreamSample`:

- the codec and picture size from the stream itself (its SPS), not from what ONVIF claims;
- the frame rate from the stream's timestamps over a window that starts after FFmpeg's
  opening burst (the frames it buffered while probing the stream arrive all at once; a rate
  taken from arrival times there reads 200-400 fps for a 25 fps camera), cross-checked with
  the arrival times over the same window: a stream whose timestamps promise more frames than
  arrive is measured by what arrives;
- decoded pictures, shrunk to ``max_width`` as they are decoded: none (``decode="none"``, the
  frame rate needs only packets), key frames only (``"key"``, a running picture seconds apart,
  what the quality checks need), or frames spaced ``spacing`` apart (``"all"``, to learn a
  baseline).

FFmpeg's own log goes into :mod:`logging` at debug level under this module's logger, with the
device id, never to the terminal.

All of it blocks: callers on the event loop use :func:`sample_stream`, which runs it in an
executor and bounds it with ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import av
import av.error
import av.logging
import numpy as np
from numpy.typing import NDArray

from adapters.errors import AdapterError, AuthFailed, DeviceUnreachable, ProtocolViolation

log = logging.getLogger(__name__)

Frame = NDArray[np.uint8]
Decode = Literal["none", "key", "all"]

SETTLE_S: Final = 0.3
"""Packets arriving this soon after the stream opened are FFmpeg's buffered opening burst."""
MIN_WINDOW_PACKETS: Final = 5
STALL_GAP_S: Final = 2.0
"""No packet for this long inside the window is a stall, even if the stream then goes on (FFmpeg
hands out the frame it held back when its read time-out fires, so a stalled stream does not
always end in a time-out)."""
PROBE_BYTES: Final = 32
"""FFmpeg's ``probesize`` for RTSP (its minimum): the stream's parameters are in the SDP."""
FPS_DISAGREE: Final = 0.15
"""Timestamps and arrivals disagreeing by more than this fraction: the arrivals count."""


# --- FFmpeg's log -------------------------------------------------------------------------


_context = threading.local()
_USERINFO = re.compile(r"//[^/@\s]*@")
"""``user:password@`` in a URL FFmpeg quotes: never into a log."""


class _FfmpegToDebug(logging.Handler):
    """PyAV hands FFmpeg's messages to the ``libav.*`` loggers at FFmpeg's own level; a
    refused connection is an ERROR there. They are the camera's problem, reported as findings,
    so here they become debug lines of this module, naming the device being read."""

    def emit(self, record: logging.LogRecord) -> None:
        device = getattr(_context, "device_id", "-")
        text = _USERINFO.sub("//", record.getMessage())
        log.debug("%s: ffmpeg %s: %s", device, record.name, text)


def route_ffmpeg_log() -> None:
    """Send FFmpeg's warnings and errors to this module's logger at debug (idempotent)."""
    libav = logging.getLogger("libav")
    if any(isinstance(h, _FfmpegToDebug) for h in libav.handlers):
        return
    libav.addHandler(_FfmpegToDebug())
    libav.propagate = False
    libav.setLevel(logging.DEBUG)
    # Below WARNING FFmpeg would format every message only to have it dropped here.
    av.logging.set_level(av.logging.WARNING)


route_ffmpeg_log()


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameRate:
    """The frame rate over the measuring window."""

    fps: float
    """What the stream delivers: the timestamp rate, or the arrival rate when they disagree."""
    by_timestamps: float | None
    by_arrival: float | None
    packets: int
    window_s: float


@dataclass(frozen=True, slots=True)
class StreamSample:
    """What one read of a stream found."""

    url: str
    """Without credentials."""
    transport: str  # "tcp", "udp" or "http"
    codec: str | None  # FFmpeg's name: "h264", "hevc", "mjpeg"
    width: int | None
    height: int | None
    rate: FrameRate | None
    frames: list[Frame] = field(default_factory=list)
    frame_times: list[float] = field(default_factory=list)
    """Stream time (seconds) of each decoded frame, for the frozen check's spacing."""
    arrivals: list[float] = field(default_factory=list)
    """Arrival time (monotonic seconds) of each decoded frame."""
    key_frames: int = 0
    packets: int = 0
    open_s: float = 0.0
    read_s: float = 0.0
    stalled: str | None = None
    """Why reading stopped early (no packet within the read time-out), if it did."""

    @property
    def fps(self) -> float | None:
        return None if self.rate is None else self.rate.fps


def safe_url(url: str) -> str:
    """``url`` without credentials or query, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """``url`` with ``user:password@`` (how FFmpeg takes them; it answers Digest itself)."""
    if username is None:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    userinfo = quote(username, safe="")
    if password is not None:
        userinfo += ":" + quote(password, safe="")
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


# --- measuring ----------------------------------------------------------------------------


def measure_rate(
    stamps: Sequence[tuple[float, float | None]], opened_at: float, settle: float = SETTLE_S
) -> FrameRate | None:
    """Frame rate from (arrival, timestamp) pairs of the video packets, one per frame.

    Packets that arrived within ``settle`` seconds of ``opened_at`` are the opening burst and
    are left out. The rate by timestamps counts distinct timestamps over their span (B-frames
    come out of order); the rate by arrival counts packets over the span of their arrivals.
    """
    window = [(a, t) for a, t in stamps if a >= opened_at + settle]
    if len(window) < MIN_WINDOW_PACKETS:
        return None
    arrivals = [a for a, _ in window]
    span_a = arrivals[-1] - arrivals[0]
    by_arrival = (len(arrivals) - 1) / span_a if span_a > 0 else None
    times = sorted({t for _, t in window if t is not None})
    by_stamps = None
    if len(times) >= MIN_WINDOW_PACKETS and times[-1] > times[0]:
        by_stamps = (len(times) - 1) / (times[-1] - times[0])
    if by_stamps is None and by_arrival is None:
        return None
    if by_stamps is None:
        fps = by_arrival
    elif by_arrival is None or abs(by_arrival - by_stamps) <= FPS_DISAGREE * by_stamps:
        fps = by_stamps
    else:
        # Timestamps that promise another rate than what arrives (a camera stamping 25 fps
        # and sending 10, or a stalled encoder re-sending): the viewer gets what arrives.
        fps = by_arrival
    assert fps is not None
    return FrameRate(fps, by_stamps, by_arrival, len(window), span_a)


def _gap(stamps: list[tuple[float, float | None]], opened_at: float) -> str | None:
    arrivals = [a for a, _ in stamps if a >= opened_at + SETTLE_S]
    gap = max((b - a for a, b in itertools.pairwise(arrivals)), default=0.0)
    return f"no packet for {gap:.1f} s" if gap >= STALL_GAP_S else None


def _measurable(stamps: list[tuple[float, float | None]], opened_at: float) -> bool:
    after = sum(1 for a, _ in stamps if a >= opened_at + SETTLE_S)
    return after >= MIN_WINDOW_PACKETS


# --- reading ------------------------------------------------------------------------------


class _Refused(Exception):
    """The camera refused the transport asked for (RTSP 461 or an unusable SETUP answer)."""


def _convert(device_id: str, where: str, exc: BaseException) -> AdapterError:
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        code = 401 if isinstance(exc, av.error.HTTPUnauthorizedError) else 403
        return AuthFailed(device_id, f"stream {where}: RTSP {code}, credentials refused")
    if isinstance(exc, av.error.HTTPNotFoundError):
        return ProtocolViolation(device_id, f"stream {where}: 404, no such stream")
    if isinstance(exc, av.error.ConnectionRefusedError):
        return DeviceUnreachable(device_id, f"stream {where}: connection refused")
    if isinstance(exc, av.error.ExitError | av.error.TimeoutError | TimeoutError):
        return DeviceUnreachable(device_id, f"stream {where}: no answer in time")
    if isinstance(exc, av.error.HTTPServerError):
        return DeviceUnreachable(device_id, f"stream {where}: server error")
    if isinstance(exc, av.error.FFmpegError | OSError):
        # Not str(exc): FFmpeg's message ends with the URL it was given, credentials included.
        why = exc.strerror or type(exc).__name__
        return ProtocolViolation(device_id, f"stream {where}: {why}")
    return ProtocolViolation(device_id, f"stream {where}: {type(exc).__name__}")


def _open(
    url: str, transport: str, open_timeout: float, read_timeout: float
) -> av.container.InputContainer:
    options = {
        # FFmpeg's socket time-out, in microseconds, so a camera that accepts and then
        # says nothing cannot hold a worker thread.
        "timeout": str(int(read_timeout * 1_000_000)),
    }
    if url.startswith("rtsp"):
        options["rtsp_transport"] = transport
        options["allowed_media_types"] = "video"
        # Codec and picture size come from the SDP (sprop-parameter-sets / sprop-vps/sps/
        # pps), so FFmpeg need not probe the stream: its default probe buffers up to a
        # second of packets and decodes them at full size, ~8 MB and ~15 ms of CPU for a
        # 1920x1080 stream a check does not decode at all (docs/performance.md).
        options["probesize"] = str(PROBE_BYTES)
        options["analyzeduration"] = "0"
    try:
        return av.open(
            url,
            options=options,
            # The decoder FFmpeg opens to probe the stream: one thread, not one per core
            # with a set of full-size frame buffers each, when sixteen checks run at once.
            # PyAV's stub types the parameter list[str]; it takes (and stores) dicts.
            stream_options=[{"threads": "1"}],  # type: ignore[list-item]
            timeout=(open_timeout, read_timeout),
        )
    except (av.error.HTTPOtherClientError, av.error.HTTPBadRequestError) as exc:
        if transport == "tcp":
            raise _Refused from exc
        raise


def _open_with_fallback(
    url: str, open_timeout: float, read_timeout: float
) -> tuple[av.container.InputContainer, str]:
    if not url.startswith("rtsp"):
        return _open(url, "tcp", open_timeout, read_timeout), "http"
    # TCP interleaved first: it passes NAT and firewalls and loses nothing. Only a camera
    # that refuses it (461 Unsupported Transport) is asked for UDP.
    started = time.monotonic()
    try:
        return _open(url, "tcp", open_timeout, read_timeout), "tcp"
    except _Refused:
        left = max(0.5, open_timeout - (time.monotonic() - started))
        return _open(url, "udp", left, read_timeout), "udp"


def read_stream(
    url: str,
    *,
    device_id: str,
    username: str | None = None,
    password: str | None = None,
    window_s: float = 2.5,
    decode: Decode = "key",
    max_frames: int = 3,
    spacing: float = 0.0,
    max_width: int | None = None,
    open_timeout: float = 5.0,
    read_timeout: float = 3.0,
    stop: threading.Event | None = None,
) -> StreamSample:
    """Open ``url``, read it for about ``window_s`` seconds after the opening burst, close it.

    With ``decode="key"`` reading goes on (up to ``window_s + read_timeout``) until
    ``max_frames`` key frames were decoded or the window is over, whichever is later, so a
    check sees two pictures a GOP apart. Raises ``AuthFailed`` (401/403),
    ``DeviceUnreachable`` (refused, no answer) or ``ProtocolViolation`` (no such stream, no
    video in it, undecodable); a stream that stops delivering part-way is a sample with
    ``stalled`` set.
    """
    where = safe_url(url)
    full = with_credentials(url, username, password)
    _context.device_id = device_id
    started = time.monotonic()
    try:
        container, transport = _open_with_fallback(full, open_timeout, read_timeout)
    except Exception as exc:
        cause = exc.__cause__ if isinstance(exc, _Refused) else exc
        if time.monotonic() - started >= 0.9 * open_timeout and isinstance(
            cause, av.error.InvalidDataError | av.error.ExitError
        ):
            # FFmpeg reports a read cut short by the open time-out as invalid data.
            raise DeviceUnreachable(
                device_id, f"stream {where}: no answer in {open_timeout:g} s"
            ) from exc
        raise _convert(device_id, where, cause or exc) from exc
    try:
        return _read(
            container,
            device_id=device_id,
            where=where,
            transport=transport,
            started=started,
            window_s=window_s,
            decode=decode,
            max_frames=max_frames,
            spacing=spacing,
            max_width=max_width,
            read_timeout=read_timeout,
            stop=stop or threading.Event(),
        )
    finally:
        container.close()
        _context.device_id = "-"


def _read(
    container: av.container.InputContainer,
    *,
    device_id: str,
    where: str,
    transport: str,
    started: float,
    window_s: float,
    decode: Decode,
    max_frames: int,
    spacing: float,
    max_width: int | None,
    read_timeout: float,
    stop: threading.Event,
) -> StreamSample:
    opened = time.monotonic()
    if not container.streams.video:
        raise ProtocolViolation(device_id, f"stream {where}: no video in it")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    ctx.thread_count = 1  # one check, one core at most: hundreds run side by side
    if decode == "key":
        ctx.skip_frame = "NONKEY"
    time_base = float(stream.time_base) if stream.time_base else None
    stamps: list[tuple[float, float | None]] = []
    frames: list[Frame] = []
    frame_times: list[float] = []
    arrivals: list[float] = []
    keys = packets = 0
    stalled: str | None = None
    window_end = opened + SETTLE_S + window_s
    hard_end = window_end + (read_timeout if decode == "key" else 0.0)
    try:
        for packet in container.demux(stream):
            now = time.monotonic()
            if packet.size == 0:
                continue  # a flush packet at the end of the stream
            packets += 1
            pts = packet.pts if packet.pts is not None else packet.dts
            stamp = None if pts is None or time_base is None else pts * time_base
            stamps.append((now, stamp))
            if packet.is_keyframe:
                keys += 1
            wanted = decode == "all" or (decode == "key" and packet.is_keyframe)
            if wanted and len(frames) < max_frames:
                for frame in packet.decode():
                    t = frame.time if frame.time is not None else now - opened
                    if frame_times and t - frame_times[-1] < spacing:
                        continue
                    frames.append(_picture(frame, max_width))
                    frame_times.append(t)
                    arrivals.append(now)
            if stop.is_set() or now >= hard_end:
                break
            if decode == "all" and len(frames) >= max_frames and _measurable(stamps, opened):
                break
            if now >= window_end and (decode != "key" or len(frames) >= max_frames):
                break
    except av.error.EOFError:
        stalled = "the stream ended"
    except (av.error.ExitError, av.error.TimeoutError, TimeoutError, OSError) as exc:
        stalled = f"no packet for {read_timeout:g} s ({type(exc).__name__})"
    except av.error.FFmpegError as exc:
        if not packets:
            raise ProtocolViolation(device_id, f"stream {where}: unreadable: {exc}") from exc
        stalled = f"reading failed: {type(exc).__name__}"
    ended = time.monotonic()
    if stalled is None:
        stalled = _gap(stamps, opened)
    codec = ctx.name or None
    width = ctx.width or None
    height = ctx.height or None
    if frames and width is None:
        height, width = frames[0].shape[:2]
    log.debug(
        "%s: stream %s (%s) %s %sx%s: %d packets, %d key, %d decoded in %.2f s",
        device_id,
        where,
        transport,
        codec,
        width,
        height,
        packets,
        keys,
        len(frames),
        ended - opened,
    )
    return StreamSample(
        url=where,
        transport=transport,
        codec=codec,
        width=width,
        height=height,
        rate=measure_rate(stamps, opened),
        frames=frames,
        frame_times=frame_times,
        arrivals=arrivals,
        key_frames=keys,
        packets=packets,
        open_s=opened - started,
        read_s=ended - opened,
        stalled=stalled,
    )


def _picture(frame: av.VideoFrame, max_width: int | None) -> Frame:
    # Scaling in swscale while converting to BGR costs less than converting the full
    # picture and shrinking it afterwards.
    w, h = frame.width, frame.height
    if max_width is not None and w > max_width:
        h = max(2, round(h * max_width / w))
        w = max_width
        return np.asarray(
            frame.reformat(width=w, height=h, format="bgr24", interpolation="AREA").to_ndarray(),
            np.uint8,
        )
    return np.asarray(frame.to_ndarray(format="bgr24"), np.uint8)


async def sample_stream(
    url: str,
    *,
    device_id: str,
    username: str | None = None,
    password: str | None = None,
    window_s: float = 2.5,
    decode: Decode = "key",
    max_frames: int = 3,
    spacing: float = 0.0,
    max_width: int | None = None,
    open_timeout: float = 5.0,
    read_timeout: float = 3.0,
    executor: Executor | None = None,
) -> StreamSample:
    """:func:`read_stream` in ``executor``, bounded by its own time budget."""
    stop = threading.Event()
    budget = 2 * open_timeout + SETTLE_S + window_s + 2 * read_timeout + 1.0
    read = functools.partial(
        read_stream,
        url,
        device_id=device_id,
        username=username,
        password=password,
        window_s=window_s,
        decode=decode,
        max_frames=max_frames,
        spacing=spacing,
        max_width=max_width,
        open_timeout=open_timeout,
        read_timeout=read_timeout,
        stop=stop,
    )
    try:
        async with asyncio.timeout(budget):
            # The thread cannot be interrupted mid-read; on time-out or cancellation it is
            # told to stop and ends within one read time-out.
            return await asyncio.get_running_loop().run_in_executor(executor, read)
    except TimeoutError as exc:
        raise DeviceUnreachable(
            device_id, f"stream {safe_url(url)}: no result in {budget:g} s"
        ) from exc
    finally:
        stop.set()
