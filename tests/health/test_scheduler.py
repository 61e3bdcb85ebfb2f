"""The probe scheduler: repeats, bounded concurrency, per-run budgets, run_now."""

from __future__ import annotations

import asyncio
import random

import pytest

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


async def test_a_full_pool_holds_back_only_its_own_jobs() -> None:
    gate = asyncio.Event()
    running = {"video": 0, "main": 0}
    peak = {"video": 0, "main": 0}
    done: list[str] = []

    def job(key: str, pool: str) -> Job:
        async def run() -> None:
            running[pool] += 1
            peak[pool] = max(peak[pool], running[pool])
            try:
                if pool == "video":
                    await gate.wait()
                else:
                    await asyncio.sleep(0)
            finally:
                running[pool] -= 1
            done.append(key)

        return Job(key, 3600, run, budget=30, pool=pool)

    async with Scheduler(concurrency=3, jitter=0, pools={"video": 2}) as s:
        # Video jobs are due first and fill their pool; the rest of them wait, and the
        # camera probes behind them in due order still run.
        for i in range(5):
            s.add(job(f"video:{i}", "video"), first_in=0)
        for i in range(6):
            s.add(job(f"camera:{i}", "main"), first_in=0)
        await wait_until(lambda: sum(k.startswith("camera:") for k in done) == 6)
        assert running["video"] == 2 and not any(k.startswith("video:") for k in done)
        async with asyncio.timeout(5):
            await s.run_now("camera:0")  # the main pool is not held up either
        gate.set()
        await wait_until(lambda: sum(k.startswith("video:") for k in done) == 5)
    assert peak["video"] == 2 and peak["main"] <= 3


def test_a_job_must_name_a_known_pool() -> None:
    s = Scheduler(concurrency=1, jitter=0, pools={"video": 1})
    with pytest.raises(ValueError, match="no pool"):
        s.add(Job("x", 1, _nothing, budget=1, pool="other"))
    with pytest.raises(ValueError, match="at least one"):
        Scheduler(concurrency=1, jitter=0, pools={"video": 0})


async def _nothing() -> None:
    return None
