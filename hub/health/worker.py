"""The camera-health worker: the process that talks to the cameras for the hub's health checks.

Why a process: the ONVIF probes (SOAP through zeep), the RTSP DESCRIBE and the video checks
(stream reads, PyAV decoding, the picture checks) are Python work under the GIL. In the hub's
process they take turns with the alarm path on one core; in a process of their own they get
the machine's second core. The hub keeps everything else (scheduling, debouncing, storing,
events, metrics, compliance): it sends this process a camera and what to do, and gets the
probe or the video outcome back (``hub.health.camerawork`` is the hub's side).

Why ``asyncio.create_subprocess_exec(sys.executable, "-m", "hub.health.worker")`` and not
``multiprocessing``: the hub is an asyncio program, and the child's pipes are then ordinary
asyncio streams; its death is the end of its stdout and an exit code; a fresh interpreter
inherits nothing from the hub (no threads forked mid-work, no sockets, no event loop); and
nothing here needs multiprocessing's pickling of functions or its resource tracker.

The protocol is private to the hub and its own child: frames of a 4-byte big-endian length
and a pickled tuple, over the child's stdin (requests) and stdout (answers). Pickle is fine
between a program and its own child over private pipes. Credentials travel only in the
first frame (the camera configs), never on a command line, in the environment or in a log.

hub → worker: ``("init", Init)`` once, first; ``("probe", n, camera id, previous good probe
or None)``; ``("video", n, camera id, the camera's latest good probe)``; ``("cancel", n)``.

worker → hub: ``("done", n, result)`` (a :class:`CameraProbe`, or a :class:`VideoOutcome`
and the baseline it learned as bytes or None); ``("failed", n, text)`` (a bug in the worker,
not a camera's failure); ``("log", level, logger, message, created)``.

The worker's log records go to the hub, which logs them through its own handlers, format and
levels; FFmpeg's messages are routed to debug as in the hub (``adapters.onvif.stream``). Its
stdout carries only frames (stray prints are sent to stderr, which the hub reads and logs at
debug). It ignores SIGINT (a Ctrl-C on the terminal reaches the whole process group: the hub
stops it in order) and ends when its stdin closes, which is also what happens when the hub
dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import pickle
import signal
import struct
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from adapters.onvif.driver import CameraProbe, OnvifCamera
from adapters.onvif.video import Baseline
from hub.config import Camera
from hub.drivers import camera_driver
from hub.health.probes import check_video, probe_camera_once
from hub.health.video import VideoOutcome, VideoProbe
from hub.memory import limit_arenas

log = logging.getLogger(__name__)

HEADER: Final = struct.Struct(">I")
MAX_FRAME: Final = 64 * 1024 * 1024
VIDEO_ARENAS: Final = 2
STOP_WITHIN_S: Final = 3.0
"""The worker's own bound on closing its sessions once its stdin closed (the hub waits a
little longer before it terminates it)."""


@dataclass(frozen=True, slots=True)
class Init:
    """What the worker needs to start: the cameras (with their credentials), the health
    settings it uses, the stored baselines and the hub's log levels."""

    cameras: list[Camera]
    probe_timeout_s: float
    video_concurrency: int
    baselines: dict[str, bytes] = field(default_factory=dict)
    log_level: int = logging.INFO
    logger_levels: dict[str, int] = field(default_factory=dict)
    """Loggers the hub set a level of their own on (the noisy libraries)."""


def encode(message: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    """The next frame; ``asyncio.IncompleteReadError`` at the end of the stream."""
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    message = pickle.loads(await reader.readexactly(size))
    if not isinstance(message, tuple) or not message:
        raise ValueError("frame is not a message")
    return message


class _Sender:
    """Writes whole frames to the hub from the event loop and from the check threads."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()

    def __call__(self, message: tuple[Any, ...]) -> None:
        data = memoryview(encode(message))
        with self.lock:
            while data:
                data = data[os.write(self.fd, data) :]


class _ToHub(logging.Handler):
    def __init__(self, send: _Sender) -> None:
        super().__init__()
        self.send = send
        self.setFormatter(logging.Formatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + self.formatter.formatException(record.exc_info)  # type: ignore[union-attr]
            self.send(("log", record.levelno, record.name, message, record.created))
        except Exception:
            self.handleError(record)


def _setup_logging(init: Init, send: _Sender) -> None:
    root = logging.getLogger()
    root.handlers[:] = [_ToHub(send)]
    root.setLevel(init.log_level)
    for name, level in init.logger_levels.items():
        logging.getLogger(name).setLevel(level)


class _Worker:
    """The cameras' drivers and video checkers, built from their config."""

    def __init__(self, init: Init) -> None:
        self.within = init.probe_timeout_s
        self.drivers: dict[str, OnvifCamera] = {}
        self.videos: dict[str, VideoProbe] = {}
        for c in init.cameras:
            self.drivers[c.id] = camera_driver(c, init.probe_timeout_s)
            baseline = None
            data = init.baselines.get(c.id)
            if data is not None:
                try:
                    baseline = Baseline.from_bytes(data)
                except ValueError as exc:
                    log.warning("%s: stored video baseline unreadable (%s)", c.id, exc)
            self.videos[c.id] = VideoProbe(
                c.id,
                c.username,
                c.password.get_secret_value() if c.password else None,
                baseline=baseline,
            )
        limit_arenas(VIDEO_ARENAS)
        self.threads = ThreadPoolExecutor(
            2 * init.video_concurrency, thread_name_prefix="video-check"
        )

    async def probe(self, cid: str, previous: CameraProbe | None) -> CameraProbe:
        return await probe_camera_once(self.drivers[cid], within=self.within, previous=previous)

    async def video(self, cid: str, probe: CameraProbe) -> tuple[VideoOutcome, bytes | None]:
        return await check_video(
            self.videos[cid],
            self.drivers[cid],
            probe,
            within=3 * self.within,
            executor=self.threads,
        )

    async def handle(self, message: tuple[Any, ...], send: _Sender) -> None:
        kind, n = message[0], message[1]
        try:
            if kind == "probe":
                result: Any = await self.probe(message[2], message[3])
            elif kind == "video":
                result = await self.video(message[2], message[3])
            else:
                raise ValueError(f"unknown request {kind!r}")
        except Exception as exc:
            log.exception("camera-health worker: %s request failed", kind)
            send(("failed", n, f"{type(exc).__name__}: {exc}"))
            return
        send(("done", n, result))

    async def close(self) -> None:
        for driver in self.drivers.values():
            with contextlib.suppress(Exception):
                await driver.close()
        self.threads.shutdown(wait=False, cancel_futures=True)


def _forget(tasks: dict[int, asyncio.Task[None]], n: int, _: object) -> None:
    tasks.pop(n, None)


async def serve(reader: asyncio.StreamReader, send: _Sender) -> None:
    """Answer the hub's requests until its end of the pipe closes."""
    kind, init = await read_frame(reader)
    if kind != "init":  # (run as __main__, this module's Init is not the hub's class)
        raise ValueError("the first frame must be init")
    _setup_logging(init, send)
    worker = _Worker(init)
    tasks: dict[int, asyncio.Task[None]] = {}
    try:
        while True:
            try:
                message = await read_frame(reader)
            except asyncio.IncompleteReadError:
                break  # the hub stopped (or died)
            if message[0] == "cancel":
                task = tasks.get(message[1])
                if task is not None:
                    task.cancel()
                continue
            n = message[1]
            task = asyncio.create_task(worker.handle(message, send))
            tasks[n] = task
            task.add_done_callback(functools.partial(_forget, tasks, n))
    finally:
        for task in list(tasks.values()):
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_WITHIN_S):
                await asyncio.gather(*tasks.values(), return_exceptions=True)
                await worker.close()


async def _main(out_fd: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_FRAME)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    await serve(reader, _Sender(out_fd))


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out_fd = os.dup(1)
    os.dup2(2, 1)  # stdout carries frames only: anything else printed goes to stderr
    code = 0
    try:
        asyncio.run(_main(out_fd))
    except BaseException:
        logging.getLogger(__name__).exception("camera-health worker stopped")
        code = 1
    logging.shutdown()
    # Threads still blocked in a stream read must not hold the exit up.
    os._exit(code)


if __name__ == "__main__":
    main()
