"""What the health service asks a camera, and when: the full probe once per video interval and
after a failure, the cheap liveness probe in between; and each camera's video check in a slot
of its own, the slots evenly spaced over the video interval."""

from __future__ import annotations

import itertools
import random
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.app import Hub
from hub.broker import LocalMosquitto
from hub.health.scheduler import Job, Scheduler, next_slot, spread
from hub.health.service import VIDEO_POOL, HealthService
from simulators.camera import CameraFarm
from tests.health.mall import MANUAL, USER, camera_entry, health
from tests.support.sites import make_site

CAM = "cam-gate-1"


@pytest.fixture
def password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture
async def farm(password: str) -> AsyncIterator[CameraFarm]:
    async with CameraFarm.uniform(1, username=USER, password=password) as f:
        yield f


async def test_full_probe_once_per_video_interval_and_after_a_failure(
    broker: LocalMosquitto, tmp_path: Path, farm: CameraFarm, password: str
) -> None:
    sim = farm[0]
    cfg = make_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=[camera_entry(CAM, sim, password)],
        health=health(**MANUAL, probe_timeout_s=2),
    )
    async with Hub(cfg) as hub:
        h = hub.health
        assert isinstance(h, HealthService)
        cam = h._cameras[CAM]

        [first] = await h.probe_now([CAM])
        assert first["state"] == "online" and sim.calls["GetProfiles"] == 1
        [light] = await h.probe_now([CAM])
        assert light["state"] == "online" and sim.calls["GetProfiles"] == 1
        assert cam.last_probe is not None and cam.last_probe.profiles  # carried over
        assert light["detail"]["model"] == first["detail"]["model"]

        assert cam.full_probe_at is not None
        cam.full_probe_at -= cfg.health.video_interval_s  # one video interval later
        await h.probe_now([CAM])
        assert sim.calls["GetProfiles"] == 2

        sim.set_faults(["offline"])
        [down] = await h.probe_now([CAM])  # the liveness probe finds it at once
        assert cam.last_probe is not None and cam.last_probe.error_type == "DeviceUnreachable"
        assert down["detail"].get("stale") is True
        sim.set_faults(clear=["offline"])
        await h.probe_now([CAM])  # back: the full probe again, whatever its age
        assert sim.calls["GetProfiles"] == 3


async def test_every_camera_gets_its_own_video_slot(
    broker: LocalMosquitto, tmp_path: Path, farm: CameraFarm, password: str
) -> None:
    ids = [f"cam-{i}" for i in range(7)]
    cfg = make_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=[camera_entry(c, farm[0], password) for c in ids],
        health=health(**MANUAL),
    )
    async with Hub(cfg) as hub:
        h = hub.health
        assert isinstance(h, HealthService)
        jobs = [j for j in h.scheduler.jobs.values() if j.pool == VIDEO_POOL]
        phases = sorted(j.phase for j in jobs if j.phase is not None)
    assert len(jobs) == len(ids)
    assert phases == spread(len(ids), cfg.health.video_interval_s)


def test_slots_are_evenly_spaced() -> None:
    phases = spread(500, 300.0)
    assert len(phases) == 500 and phases[0] == 0.0 and phases[-1] < 300.0
    assert {round(b - a, 9) for a, b in itertools.pairwise(phases)} == {0.6}
    assert next_slot(0.0, 10.0, 300.0) == 10.0
    assert next_slot(10.0, 10.0, 300.0) == 310.0  # strictly after
    assert next_slot(123.4, 10.0, 300.0) == 310.0
    assert next_slot(905.0, 10.0, 300.0) == 910.0


async def _nothing() -> None:
    return None


def _busiest_window(dues: list[float], width: float) -> int:
    dues = sorted(dues)
    return max(sum(1 for d in dues[i:] if d < start + width) for i, start in enumerate(dues))


@pytest.mark.parametrize("slotted", [True, False])
async def test_checks_that_ran_in_a_burst_are_spread_over_the_next_interval(
    slotted: bool,
) -> None:
    """500 video checks all ran within the first 150 s (a hub starting: every camera answered
    at once, sixteen checked at a time). Where the scheduler puts each one's next run: with
    slots, at most one interval after it finished and evenly spread (no 30 s window holds
    more than its share, 50, plus one); "an interval after it finished" would repeat the
    burst."""
    interval, n = 300.0, 500
    rng = random.Random(13)
    phases = spread(n, interval)
    async with Scheduler(concurrency=1, jitter=0.1, rng=random.Random(1)) as s:
        dues = []
        for i in range(n):
            job = Job(f"video:{i}", interval, _nothing, 30.0, phase=phases[i] if slotted else None)
            finished = rng.uniform(0.0, 150.0)
            due = finished + s.next_delay(job, s.epoch + finished)
            assert finished < due <= finished + interval * (1 + s.jitter)
            if slotted:
                assert due <= finished + interval
            dues.append(due)
    share = n * 30.0 / interval
    if slotted:
        assert _busiest_window(dues, 30.0) <= share + 1
    else:
        assert _busiest_window(dues, 30.0) > 1.2 * share
