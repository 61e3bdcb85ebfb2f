"""The probe scheduler: repeats, bounded concurrency, per-run budgets, run_now."""

from __future__ import annotations

import asyncio
import random

from hub.health.scheduler import Job, Scheduler
from tests.support.wait import wait_until


async def test_jobs_repeat_with_bounded_concurrency() -> None:
    running = 0
    peak = 0
    runs: dict[str, int] = {}

    def job(key: str) -> Job:
        async def run() -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            runs[key] = runs.get(key, 0) + 1
            await asyncio.sleep(0.01)
            running -= 1

        return Job(key, 0.02, run, budget=5)

    async with Scheduler(concurrency=3, jitter=0.2, rng=random.Random(1)) as s:
        for i in range(10):
            s.add(job(f"d{i}"), first_in=0)
        await wait_until(lambda: all(runs.get(f"d{i}", 0) >= 3 for i in range(10)))
    assert peak == 3


async def test_a_run_over_budget_is_cancelled_and_the_job_goes_on() -> None:
    calls = 0
    hang = asyncio.Event()

    async def run() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await hang.wait()  # never set: only the budget ends this run

    async with Scheduler(concurrency=1, jitter=0) as s:
        job = Job("slow", 0.01, run, budget=0.05)
        s.add(job, first_in=0)
        await wait_until(lambda: calls >= 2)
        assert job.failures == 1


async def test_run_now_runs_at_once_and_waits() -> None:
    calls = 0

    async def run() -> None:
        nonlocal calls
        calls += 1

    async with Scheduler(concurrency=2, jitter=0.1) as s:
        s.add(Job("j", 3600, run, budget=1), first_in=3600)
        async with asyncio.timeout(5):
            await s.run_now("j")
        assert calls == 1
