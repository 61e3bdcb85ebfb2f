"""Runs jobs at intervals with jitter and bounded concurrency.

Each job runs again ``interval × (1 ± jitter)`` after its previous run *finished*, so a slow
device never has two probes in flight. A job with a ``phase`` keeps a slot of its own
instead: it runs again at the next ``phase + k × interval`` (on the scheduler's clock) after
its run finished. Giving the jobs of a pool phases spread evenly over the interval
(:func:`spread`) keeps them spread however they bunched once (a site's video checks all due
when the hub starts), where "interval after finishing" would keep a bunch together.

Each job belongs to a pool: at most ``concurrency`` jobs of the main pool run at once, and
at most ``pools[name]`` of another; the rest wait in due order without holding up jobs of
other pools (video checks, which are heavy, have a pool of their own so they cannot crowd
out the camera probes). Every run is bounded by its
job's ``budget`` (the per-probe timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

log = logging.getLogger(__name__)

MAIN_POOL: Final = "main"


@dataclass(slots=True)
class Job:
    key: str
    interval: float
    run: Callable[[], Awaitable[None]]
    budget: float
    """Seconds a run may take before it is cancelled."""
    pool: str = MAIN_POOL
    """Which concurrency limit the job counts against."""
    phase: float | None = None
    """Seconds into each interval at which the job's runs are due (None: interval ± jitter
    after the previous run finished)."""
    generation: int = 0
    running: bool = False
    again: bool = False
    runs: int = 0
    failures: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


def spread(count: int, interval: float) -> list[float]:
    """Phases for ``count`` jobs sharing ``interval``: evenly spaced, ``interval / count``
    apart, so at any moment about ``count × run time / interval`` of them run."""
    return [i * interval / count for i in range(count)]


def next_slot(now: float, phase: float, interval: float) -> float:
    """The first time after ``now`` of the form ``phase + k × interval`` (k an integer)."""
    return phase + (math.floor((now - phase) / interval) + 1) * interval


class Scheduler:
    """``async with Scheduler(...)``: jobs run until the context exits."""

    def __init__(
        self,
        *,
        concurrency: int,
        jitter: float,
        rng: random.Random | None = None,
        pools: Mapping[str, int] | None = None,
    ) -> None:
        self.jobs: dict[str, Job] = {}
        self.jitter = jitter
        self._rng = rng or random.Random()
        limits = {MAIN_POOL: concurrency, **(pools or {})}
        if min(limits.values()) < 1:
            raise ValueError("every pool needs room for at least one job")
        self._free = dict(limits)
        """Pool → runs it can still start."""
        self._parked: dict[str, deque[tuple[str, int]]] = {p: deque() for p in limits}
        """Pool → (key, generation) of due jobs waiting for room, in due order."""
        self._closing = False
        self._heap: list[tuple[float, int, str, int]] = []
        self._tie = itertools.count()
        self._wake = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.epoch = 0.0
        """Loop time the phases count from: when the scheduler started."""

    async def __aenter__(self) -> Scheduler:
        self.epoch = asyncio.get_running_loop().time()
        self._tg = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._track(self._tg.create_task(self._loop(), name="health-scheduler"))
        return self

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def __aexit__(self, *exc: object) -> None:
        # Cancel the loop and every probe in flight, then wait for them to end.
        self._closing = True  # runs that end now start no parked job
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stack.aclose()
        self._tg = None

    def add(self, job: Job, first_in: float | None = None) -> None:
        """Add a job; its first run is due ``first_in`` from now if given, else in its first
        slot (a job with a phase) or spread over ``[0, interval × jitter]``."""
        if job.pool not in self._free:
            raise ValueError(f"{job.key}: no pool {job.pool!r}")
        self.jobs[job.key] = job
        if first_in is not None:
            delay = first_in
        elif job.phase is not None:
            since = asyncio.get_running_loop().time() - self.epoch
            delay = (job.phase - since) % job.interval
        else:
            delay = self._rng.uniform(0, job.interval * self.jitter)
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

    def next_delay(self, job: Job, now: float) -> float:
        """Seconds from ``now`` (loop time, a run of ``job`` just finished) to its next run."""
        if job.phase is not None:
            since = now - self.epoch
            return next_slot(since, job.phase, job.interval) - since
        spread = job.interval * self.jitter
        return max(0.0, job.interval + self._rng.uniform(-spread, spread))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            now = loop.time()
            while self._heap and self._heap[0][0] <= now:
                _, _, key, generation = heapq.heappop(self._heap)
                self._start(key, generation)
            wait = self._heap[0][0] - now if self._heap else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    def _start(self, key: str, generation: int) -> None:
        """Start a due run, or park it until its pool has room."""
        job = self.jobs.get(key)
        if job is None or generation != job.generation or job.running or self._closing:
            return  # superseded by run_soon, already running, or shutting down
        if self._free[job.pool] <= 0:
            self._parked[job.pool].append((key, generation))
            return
        self._free[job.pool] -= 1
        job.running = True
        assert self._tg is not None
        self._track(self._tg.create_task(self._run(job), name=f"probe:{key}"))

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
            self._free[job.pool] += 1
            job.runs += 1
            job.running = False
            job.done.set()
            job.generation += 1
            now = asyncio.get_running_loop().time()
            self._push(job, 0.0 if job.again else self.next_delay(job, now))
            job.again = False
            parked = self._parked[job.pool]
            while parked and self._free[job.pool] > 0 and not self._closing:
                self._start(*parked.popleft())
