"""Who talks to the cameras for the health service: the hub's own event loop (``inline``) or
the camera-health worker process (``process``, the default; ``hub.health.worker`` says why).

Both answer the same two questions: probe a camera (in full, or its liveness given its last
good probe), and check its video (with its baseline); the health service judges the answers.
A request lost because the worker process died raises :class:`WorkerLost`: that is not an
answer from the camera, and the service does not judge the camera by it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import sys
import time
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Final, Protocol, Self

from adapters.onvif.driver import CameraProbe, OnvifCamera
from adapters.onvif.video import Baseline
from hub.config import Camera, Health
from hub.drivers import camera_driver
from hub.health.probes import check_video, probe_camera_once
from hub.health.video import VideoOutcome, VideoProbe
from hub.health.worker import MAX_FRAME, VIDEO_ARENAS, Init, encode, read_frame
from hub.memory import limit_arenas

log = logging.getLogger(__name__)

STOP_WITHIN_S: Final = 6.0
RESTART_BACKOFF_S: Final = (0.5, 30.0)
"""First and longest wait before the worker is started again after it died."""
STEADY_S: Final = 30.0
"""A worker that ran this long before it died is started again after the shortest wait."""
STDERR_LINES: Final = 10


class WorkerLost(Exception):
    """The camera-health worker ended (or failed) with the request in it."""


class CameraWork(Protocol):
    async def probe(self, cid: str, previous: CameraProbe | None) -> CameraProbe: ...

    async def video(self, cid: str, probe: CameraProbe) -> tuple[VideoOutcome, bytes | None]: ...


class InlineCameraWork:
    """The camera work in the hub's process: its drivers, video checks in ``executor``."""

    def __init__(
        self,
        drivers: Mapping[str, OnvifCamera],
        videos: Mapping[str, VideoProbe],
        executor: Executor,
        probe_timeout_s: float,
    ) -> None:
        self.drivers = drivers
        self.videos = videos
        self.executor = executor
        self.within = probe_timeout_s

    @classmethod
    def build(
        cls,
        cameras: list[Camera],
        shared: Mapping[str, OnvifCamera],
        baselines: Mapping[str, Baseline],
        health: Health,
        stack: AsyncExitStack,
    ) -> InlineCameraWork:
        """Each camera's driver (the running one in ``shared``, else its own, closed by
        ``stack``) and video checker; the checks' threads, stopped by ``stack``."""
        drivers: dict[str, OnvifCamera] = {}
        videos: dict[str, VideoProbe] = {}
        for c in cameras:
            driver = shared.get(c.id)
            if driver is None:
                driver = camera_driver(c, health.probe_timeout_s)
                stack.push_async_callback(driver.close)
            drivers[c.id] = driver
            password = c.password.get_secret_value() if c.password else None
            videos[c.id] = VideoProbe(c.id, c.username, password, baseline=baselines.get(c.id))
        # Video checks block in stream reads and OpenCV: one thread per check in flight.
        # Their threads share a few malloc arenas instead of one each (hub.memory).
        limit_arenas(VIDEO_ARENAS)
        threads = ThreadPoolExecutor(2 * health.video_concurrency, thread_name_prefix="video-check")
        # A read still in flight was told to stop and ends within its read timeout.
        stack.callback(threads.shutdown, wait=False, cancel_futures=True)
        return cls(drivers, videos, threads, health.probe_timeout_s)

    async def probe(self, cid: str, previous: CameraProbe | None) -> CameraProbe:
        return await probe_camera_once(self.drivers[cid], within=self.within, previous=previous)

    async def video(self, cid: str, probe: CameraProbe) -> tuple[VideoOutcome, bytes | None]:
        return await check_video(
            self.videos[cid],
            self.drivers[cid],
            probe,
            within=3 * self.within,
            executor=self.executor,
        )


class CameraWorker:
    """``async with CameraWorker(...)``: the camera-health worker process, kept running.

    Started on entering, started again (after a short wait, longer if it keeps dying at once)
    whenever it dies, which is logged once per death with the end of its stderr; requests in
    it then raise :class:`WorkerLost` and requests made meanwhile wait for the new one. On
    exit its stdin is closed, which ends it; one that does not end within
    ``STOP_WITHIN_S`` is terminated, then killed.
    """

    def __init__(
        self,
        cameras: list[Camera],
        *,
        probe_timeout_s: float,
        video_concurrency: int,
        baselines: Mapping[str, bytes],
    ) -> None:
        self.cameras = cameras
        self.probe_timeout_s = probe_timeout_s
        self.video_concurrency = video_concurrency
        self.baselines = dict(baselines)
        """Kept up to date with what the worker learns: a new worker starts from them."""
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.deaths = 0
        self._up = asyncio.Event()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self._up.is_set() else None

    async def __aenter__(self) -> Self:
        await self._start()
        self._supervisor = asyncio.create_task(self._supervise(), name="camera-worker")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        self._up.clear()
        await self._stop()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._lose("the camera-health worker stopped")

    # --- requests ------------------------------------------------------------------------

    async def probe(self, cid: str, previous: CameraProbe | None) -> CameraProbe:
        result: CameraProbe = await self._request("probe", cid, previous)
        return result

    async def video(self, cid: str, probe: CameraProbe) -> tuple[VideoOutcome, bytes | None]:
        outcome, learned = await self._request("video", cid, probe)
        if learned is not None:
            self.baselines[cid] = learned
        return outcome, learned

    async def _request(self, kind: str, *args: Any) -> Any:
        await self._up.wait()
        proc = self.proc
        assert proc is not None and proc.stdin is not None
        n = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[n] = future
        try:
            try:
                proc.stdin.write(encode((kind, n, *args)))
                await proc.stdin.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise WorkerLost(f"camera-health worker unavailable: {exc}") from None
            return await future
        except asyncio.CancelledError:
            # The scheduler's budget ran out: the worker stops that work too.
            if proc.returncode is None and not proc.stdin.is_closing():
                with contextlib.suppress(ConnectionError, RuntimeError):
                    proc.stdin.write(encode(("cancel", n)))
            raise
        finally:
            self._pending.pop(n, None)

    def _lose(self, why: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerLost(why))
        self._pending.clear()

    # --- the process ---------------------------------------------------------------------

    async def _start(self) -> None:
        self._stderr.clear()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub.health.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=MAX_FRAME,
        )
        assert proc.stdin is not None
        root = logging.getLogger()
        levels = {
            name: logger.level
            for name, logger in root.manager.loggerDict.items()
            if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET
        }
        init = Init(
            self.cameras,
            self.probe_timeout_s,
            self.video_concurrency,
            dict(self.baselines),
            root.getEffectiveLevel(),
            levels,
        )
        proc.stdin.write(encode(("init", init)))
        await proc.stdin.drain()
        self.proc = proc
        self.starts += 1
        self._started_at = time.monotonic()
        self._up.set()
        log.debug("camera-health worker started (pid %d)", proc.pid)

    async def _stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_WITHIN_S):
                await proc.wait()
                return
        log.warning("camera-health worker (pid %d) did not stop; terminating it", proc.pid)
        proc.terminate()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await proc.wait()
                return
        proc.kill()
        await proc.wait()

    async def _supervise(self) -> None:
        wait = RESTART_BACKOFF_S[0]
        while True:
            proc = self.proc
            assert proc is not None and proc.stdout is not None and proc.stderr is not None
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read_stderr(proc.stderr))
                tg.create_task(self._read_answers(proc.stdout))
            code = await proc.wait()
            if self._closing:
                return
            self._up.clear()
            self.deaths += 1
            lost = len(self._pending)
            self._lose(f"the camera-health worker ended with code {code}")
            ran = time.monotonic() - self._started_at
            wait = RESTART_BACKOFF_S[0] if ran >= STEADY_S else min(2 * wait, RESTART_BACKOFF_S[1])
            tail = "".join(f"\n  {line}" for line in self._stderr)
            log.error(
                "camera-health worker (pid %d) ended with code %s after %.0f s; %d request(s) "
                "in it are not judged; starting it again in %.1f s%s",
                proc.pid,
                code,
                ran,
                lost,
                wait,
                tail,
            )
            await asyncio.sleep(wait)
            while True:
                try:
                    await self._start()
                    break
                except OSError as exc:
                    log.error("camera-health worker could not be started: %s", exc)
                    await asyncio.sleep(RESTART_BACKOFF_S[1])

    async def _read_answers(self, stdout: asyncio.StreamReader) -> None:
        while True:
            try:
                message = await read_frame(stdout)
            except asyncio.IncompleteReadError:
                return
            except Exception as exc:  # a broken frame: the worker is not to be trusted
                log.error("camera-health worker sent a broken frame (%s); stopping it", exc)
                if self.proc is not None and self.proc.returncode is None:
                    self.proc.kill()
                return
            self._answer(message)

    def _answer(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "log":
            _, level, name, text, created = message
            logger = logging.getLogger(name)
            if logger.isEnabledFor(level):
                record = logger.makeRecord(name, level, "(worker)", 0, text, (), None)
                record.created = created
                logger.handle(record)
            return
        future = self._pending.get(message[1])
        if future is None or future.done():
            return  # cancelled meanwhile
        if kind == "done":
            future.set_result(message[2])
        else:
            future.set_exception(WorkerLost(f"camera-health worker: {message[2]}"))

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        while line := await stderr.readline():
            text = line.decode(errors="replace").rstrip()
            if text:
                self._stderr.append(text[:500])
                log.debug("camera-health worker: %s", text)
