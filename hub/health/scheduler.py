"""Runs jobs at intervals with jitter and bounded concurrency.

Each job runs again ``interval × (1 ± jitter)`` after its previous run *finished*, so a slow
device never has two probes in flight. At most ``concurrency`` jobs run at once; the rest
wait in due order. Every run is bounded by its job's ``budget`` (the per-probe timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Job:
    key: str
    interval: float
    run: Callable[[], Awaitable[None]]
    budget: float
    """Seconds a run may take before it is cancelled."""
    generation: int = 0
    running: bool = False
    again: bool = False
    runs: int = 0
    failures: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Scheduler:
    """``async with Scheduler(...)``: jobs run until the context exits."""

    def __init__(
        self, *, concurrency: int, jitter: float, rng: random.Random | None = None
    ) -> None:
        self.jobs: dict[str, Job] = {}
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._sem = asyncio.Semaphore(concurrency)
        self._heap: list[tuple[float, int, str, int]] = []
        self._tie = itertools.count()
        self._wake = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Scheduler:
        self._tg = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._track(self._tg.create_task(self._loop(), name="health-scheduler"))
        return self

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def __aexit__(self, *exc: object) -> None:
        # Cancel the loop and every probe in flight, then wait for them to end.
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stack.aclose()
        self._tg = None

    def add(self, job: Job, first_in: float | None = None) -> None:
        """Add a job; its first run is spread over ``[0, interval × jitter]`` unless given."""
        self.jobs[job.key] = job
        delay = (
            first_in if first_in is not None else self._rng.uniform(0, job.interval * self.jitter)
        )
        self._push(job, delay)

    def run_soon(self, key: str) -> None:
        """Run the job now (or right after its current run)."""
        job = self.jobs[key]
        if job.running:
            job.again = True
            return
        job.generation += 1
        self._push(job, 0.0)

    async def run_now(self, key: str) -> None:
        """Run the job now and wait until that run has finished."""
        job = self.jobs[key]
        # A run already in progress started before this call: wait for the one after it.
        target = job.runs + (2 if job.running else 1)
        self.run_soon(key)
        while job.runs < target:
            job.done.clear()
            await job.done.wait()

    def _push(self, job: Job, delay: float) -> None:
        due = asyncio.get_running_loop().time() + max(0.0, delay)
        heapq.heappush(self._heap, (due, next(self._tie), job.key, job.generation))
        self._wake.set()

    def _next_delay(self, job: Job) -> float:
        spread = job.interval * self.jitter
        return max(0.0, job.interval + self._rng.uniform(-spread, spread))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            now = loop.time()
            while self._heap and self._heap[0][0] <= now:
                _, _, key, generation = heapq.heappop(self._heap)
                job = self.jobs.get(key)
                if job is None or generation != job.generation or job.running:
                    continue  # superseded by run_soon, or already running
                await self._sem.acquire()
                job.running = True
                assert self._tg is not None
                self._track(self._tg.create_task(self._run(job), name=f"probe:{key}"))
                now = loop.time()
            wait = self._heap[0][0] - now if self._heap else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _run(self, job: Job) -> None:
        try:
            async with asyncio.timeout(job.budget):
                await job.run()
        except TimeoutError:
            job.failures += 1
            log.warning("%s: probe overran its %.1f s budget", job.key, job.budget)
        except Exception:  # a supervisor: one device's bug must not stop the others
            job.failures += 1
            log.exception("%s: probe failed", job.key)
        finally:
            self._sem.release()
            job.runs += 1
            job.running = False
            job.done.set()
            job.generation += 1
            self._push(job, 0.0 if job.again else self._next_delay(job))
            job.again = False
