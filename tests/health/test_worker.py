"""The camera checks in the camera-health worker process: probes and video checks answered by
the worker against a simulated camera, a worker killed mid-probe started again without the
camera being judged by it, and no worker left behind when the hub stops."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.app import Hub
from hub.broker import LocalMosquitto
from hub.health.camerawork import CameraWorker
from hub.health.service import HealthService
from hub.store.models import Probe, VideoBaseline
from simulators.camera import CameraFarm
from tests.health.mall import MANUAL, USER, camera_entry, health, video_ready
from tests.health.test_service import changes_of
from tests.support.sites import make_site, write_site
from tests.support.wait import wait_until

CAM = "cam-gate-1"


@pytest.fixture
def password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture
async def farm(password: str) -> AsyncIterator[CameraFarm]:
    async with CameraFarm.uniform(1, username=USER, password=password) as f:
        await video_ready(f)
        yield f


def worker_of(h: HealthService) -> CameraWorker:
    work = h._work
    assert isinstance(work, CameraWorker)
    return work


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()]


def is_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    return b"hub.health.worker" in cmdline


async def test_the_worker_probes_and_checks_the_video_and_finds_a_stopped_camera(
    broker: LocalMosquitto, tmp_path: Path, farm: CameraFarm, password: str
) -> None:
    cfg = make_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=[camera_entry(CAM, farm[0], password)],
        health=health(**MANUAL),
    )
    assert cfg.health.camera_worker == "process"  # the default
    async with Hub(cfg) as hub:
        h = hub.health
        assert isinstance(h, HealthService)
        worker = worker_of(h)
        assert worker.pid is not None and worker.pid != os.getpid() and alive(worker.pid)
        await h.probe_now([CAM])
        [state] = await h.probe_now([CAM])
        assert state["state"] == "online"
        assert state["detail"]["resolution"] == [1920, 1080]
        assert farm[0].calls["GetProfiles"] == 1  # the second probe was the liveness one
        # The hub's own driver of the camera never talked to it: the worker did.
        assert not hub.drivers.cameras[CAM].connected

        await h.scheduler.run_now(f"video:{CAM}")
        async with hub.engine.connect() as c:
            stored = (await c.execute(select(VideoBaseline.camera_id))).scalars().all()
        assert stored == [CAM]
        assert CAM in worker.baselines  # a restarted worker starts from it
        assert h.details[CAM]["findings"] and h.details[CAM]["video_source"]

        farm[0].set_faults(["offline"])
        await h.probe_now([CAM])
        [state] = await h.probe_now([CAM])
        assert state["state"] == "offline" and "unreachable" in state["reason"]
        pid = worker.pid
    assert not alive(pid)  # stopped with the hub


async def test_a_killed_worker_is_started_again_and_its_lost_probe_is_not_judged(
    broker: LocalMosquitto,
    tmp_path: Path,
    farm: CameraFarm,
    password: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = make_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=[camera_entry(CAM, farm[0], password)],
        health=health(**MANUAL, fail_threshold=1),
    )
    async with Hub(cfg) as hub:
        h = hub.health
        assert isinstance(h, HealthService)
        worker = worker_of(h)
        await h.probe_now([CAM])
        await h.probe_now([CAM])
        assert h.machines[CAM].state == "online"

        # A probe in the worker, waiting for a slow camera, when the worker is killed.
        farm[0].set_faults(["slow"], slow_s=2.0)
        first = worker.pid
        assert first is not None
        probing = asyncio.create_task(h.probe_now([CAM]))
        await wait_until(lambda: bool(worker._pending), what="a probe in the worker")
        os.kill(first, signal.SIGKILL)
        [state] = await asyncio.wait_for(probing, 30)
        # One failure would turn it offline (fail_threshold 1): the lost probe is no failure.
        assert state["state"] == "online"
        assert h.machines[CAM].fail_count == 0

        await wait_until(lambda: worker.pid not in (None, first), what="a new worker")
        farm[0].set_faults(clear=["slow"])
        [state] = await h.probe_now([CAM])
        assert state["state"] == "online"
        assert await changes_of(hub, CAM) == ["online"]
        async with hub.engine.connect() as c:
            oks = (await c.execute(select(Probe.ok).where(Probe.device_id == CAM))).scalars()
            assert set(oks) == {True}
    died = [
        r
        for r in caplog.records
        if r.name == "hub.health.camerawork" and r.levelno >= logging.ERROR
    ]
    assert len(died) == 1 and "ended with code -9" in died[0].getMessage()
    assert worker.starts == 2 and worker.deaths == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
async def test_mallhub_run_leaves_no_worker_behind(
    broker: LocalMosquitto, tmp_path: Path, farm: CameraFarm, password: str, sig: signal.Signals
) -> None:
    config = write_site(
        tmp_path / "site.yaml",
        broker_url=broker.url,
        data_dir=tmp_path / "d",
        cameras=[camera_entry(CAM, farm[0], password)],
        health=health(),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub.cli",
        "run",
        "--config",
        str(config),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        await wait_until(
            lambda: any(is_worker(p) for p in children(proc.pid)), what="the worker", within=60
        )
        [worker] = [p for p in children(proc.pid) if is_worker(p)]
        # Probed by the worker: the camera is asked for its clock.
        await wait_until(lambda: farm[0].calls["GetSystemDateAndTime"] >= 2, within=60)
        proc.send_signal(sig)
        code = await asyncio.wait_for(proc.wait(), 30)
        assert code == (-9 if sig == signal.SIGKILL else 0)
        # With the hub gone (even killed), the worker's stdin closes and it ends.
        await wait_until(lambda: not is_worker(worker), what="the worker to end", within=20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.stderr is not None
    err = (await proc.stderr.read()).decode()
    assert "Traceback" not in err
