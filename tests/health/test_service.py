"""The health service in a real hub against simulated cameras, a real broker and the police
simulator: debounce, events, retained availability, state rows, video findings."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hub.app import Hub
from hub.broker import LocalMosquitto
from hub.health.service import HealthService
from hub.store.models import DeviceState, DeviceStateChange, Event, Probe, VideoBaseline
from simulators.camera import CameraFarm
from simulators.police import PolicePlatform
from tests.e2e.hubtest import assert_no_violations, police_and_hub
from tests.health.mall import MANUAL, USER, camera_entry, health
from tests.support.sites import make_site
from tests.support.wait import wait_until

CAM = "cam-gate-1"


@pytest.fixture
def password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture
async def farm(password: str) -> AsyncIterator[CameraFarm]:
    async with CameraFarm.uniform(1, username=USER, password=password) as f:
        yield f


def svc(hub: Hub) -> HealthService:
    service = hub.health
    assert isinstance(service, HealthService)
    return service


async def events_of(hub: Hub, device: str) -> list[tuple[str, dict[str, Any]]]:
    async with hub.engine.connect() as c:
        rows = await c.execute(
            select(Event.kind, Event.detail).where(Event.device_id == device).order_by(Event.seq)
        )
        return [(k, d) for k, d in rows.all()]


async def changes_of(hub: Hub, device: str) -> list[str]:
    async with hub.engine.connect() as c:
        rows = await c.execute(
            select(DeviceStateChange.state)
            .where(DeviceStateChange.device_id == device)
            .order_by(DeviceStateChange.id)
        )
        return list(rows.scalars())


def police_kinds(police: PolicePlatform, site: str, device: str) -> list[str]:
    view = police.view(site)
    return [
        view.events[e]["kind"] for e in view.event_order if view.events[e]["device"]["id"] == device
    ]


async def test_gate_camera_goes_offline_after_debounce_and_recovers(
    broker: LocalMosquitto, tmp_path: Path, farm: CameraFarm, password: str
) -> None:
    cfg = make_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=[camera_entry(CAM, farm[0], password)],
        health=health(),
    )
    site = cfg.site.id
    async with police_and_hub(cfg, broker.url) as (police, hub):
        h = svc(hub)
        view = police.view(site)

        def availability() -> str | None:
            return view.availability.get(CAM, {}).get("state")

        await police.wait_for(lambda: availability() == "online")
        assert h.machines[CAM].state == "online"

        farm[0].set_faults(["offline"])
        await police.wait_for(
            lambda: (
                availability() == "offline"
                and "fault.device_offline" in police_kinds(police, site, CAM)
            )
        )
        state = h.device(CAM)
        assert state["state"] == "offline"
        assert "unreachable" in state["reason"]
        assert state["last_seen"] is not None
        offline_msg = view.availability[CAM]
        assert offline_msg["reason"] == state["reason"]
        assert offline_msg["location"] == {"floor": "1F", "zone": "main-gate", "role": "gate"}

        farm[0].set_faults(clear=["offline"])
        await police.wait_for(
            lambda: (
                availability() == "online"
                and "info.device_online" in police_kinds(police, site, CAM)
            )
        )
        assert police_kinds(police, site, CAM) == ["fault.device_offline", "info.device_online"]
        assert await changes_of(hub, CAM) == ["online", "offline", "online"]
        async with hub.engine.connect() as c:
            row = (await c.execute(select(DeviceState).where(DeviceState.device_id == CAM))).one()
            probes = (await c.execute(select(Probe.ok).where(Probe.device_id == CAM))).scalars()
            assert row.state == "online" and row.last_seen is not None
            assert row.detail["resolution"] == [1920, 1080]
            assert abs(row.detail["clock_offset_s"]) < 2
            assert row.detail["fps_limit"] == 25
            assert "latency_ms" in row.detail
            assert {True, False} <= set(probes)
        assert hub.index.stream_uris[CAM].startswith("rtsp://127.0.0.1")
    assert_no_violations(police)


async def test_a_single_failed_probe_does_not_flap(
    broker: LocalMosquitto, tmp_path: Path, farm: CameraFarm, password: str
) -> None:
    cfg = make_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=[camera_entry(CAM, farm[0], password)],
        health=health(**MANUAL),
    )
    async with Hub(cfg) as hub:
        h = svc(hub)
        await h.probe_now([CAM])
        await h.probe_now([CAM])
        assert h.machines[CAM].state == "online"
        farm[0].set_faults(["offline"])
        await h.probe_now([CAM])
        assert h.machines[CAM].fail_count == 1
        assert h.machines[CAM].state == "online"
        farm[0].set_faults(clear=["offline"])
        await h.probe_now([CAM])
        assert h.machines[CAM].state == "online" and h.machines[CAM].fail_count == 0
        assert await changes_of(hub, CAM) == ["online"]
        assert [k for k, _ in await events_of(hub, CAM)] == []


async def test_covered_camera_raises_video_quality_fault_with_the_finding(
    broker: LocalMosquitto, tmp_path: Path, farm: CameraFarm, password: str
) -> None:
    cfg = make_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=[camera_entry(CAM, farm[0], password)],
        health=health(**MANUAL),
    )
    site = cfg.site.id
    async with police_and_hub(cfg, broker.url) as (police, hub):
        h = svc(hub)
        await h.probe_now([CAM])
        await h.probe_now([CAM])
        assert h.machines[CAM].state == "online"
        # The first video check after the camera answered learns its baseline.
        await h.scheduler.run_now(f"video:{CAM}")
        async with hub.engine.connect() as c:
            stored = (await c.execute(select(VideoBaseline.camera_id))).scalars().all()
        assert stored == [CAM]

        farm[0].set_faults(["covered"])
        await h.scheduler.run_now(f"video:{CAM}")
        await h.probe_now([CAM])
        assert h.machines[CAM].state == "degraded"
        findings = h.details[CAM]["findings"]
        covered = next(f for f in findings if f["check"] == "covered")
        assert covered["ok"] is False and covered["score"] > covered["threshold"]
        await police.wait_for(lambda: "fault.video_quality" in police_kinds(police, site, CAM))
        event = next(
            e for e in police.view(site).events.values() if e["kind"] == "fault.video_quality"
        )
        assert [f["check"] for f in event["detail"]["findings"]] == ["covered"]
        await police.wait_for(
            lambda: police.view(site).availability.get(CAM, {}).get("findings") == ["video.covered"]
        )

        farm[0].set_faults(clear=["covered"])
        await h.scheduler.run_now(f"video:{CAM}")
        await h.probe_now([CAM])
        assert h.machines[CAM].state == "online"
        await police.wait_for(
            lambda: "fault.video_quality.restore" in police_kinds(police, site, CAM)
        )
        assert await changes_of(hub, CAM) == ["online", "degraded", "online"]
    assert_no_violations(police)


async def test_state_survives_a_restart_and_probes_are_bounded(
    broker: LocalMosquitto, tmp_path: Path, farm: CameraFarm, password: str
) -> None:
    cfg = make_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=[camera_entry(CAM, farm[0], password)],
        health=health(**MANUAL, probe_retention_days=1),
    )
    async with Hub(cfg) as hub:
        h = svc(hub)
        await h.probe_now([CAM])
        await h.probe_now([CAM])
        assert h.machines[CAM].state == "online"
    async with Hub(cfg) as hub:
        h = svc(hub)
        # Known from the store at once, before any probe of this run.
        assert h.machines[CAM].state == "online"
        await wait_until(lambda: h.scheduler.jobs[f"camera:{CAM}"].runs >= 1)
        await h.maintenance()
        async with hub.engine.connect() as c:
            n = len((await c.execute(select(Probe.id))).all())
        assert n >= 3  # recent probes are kept in full


async def test_a_video_check_that_ends_after_a_failed_probe_does_not_reset_the_debounce(
    broker: LocalMosquitto,
    tmp_path: Path,
    farm: CameraFarm,
    password: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from hub.health.video import VideoProbe

    cfg = make_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=[camera_entry(CAM, farm[0], password)],
        # The video check is held in the hub's own process, where the test can hold it.
        health=health(**MANUAL, camera_worker="inline"),
    )
    async with Hub(cfg) as hub:
        h = svc(hub)
        await h.probe_now([CAM])
        await h.probe_now([CAM])
        assert h.machines[CAM].state == "online"

        looking = asyncio.Event()
        release = asyncio.Event()
        real_run = VideoProbe.run

        async def slow_run(self: VideoProbe, *args: Any, **kwargs: Any) -> Any:
            outcome = await real_run(self, *args, **kwargs)
            looking.set()
            await release.wait()  # the picture was fine, but the answer is late
            return outcome

        monkeypatch.setattr(VideoProbe, "run", slow_run)
        video = asyncio.create_task(h._video_camera(CAM))
        await asyncio.wait_for(looking.wait(), 30)
        farm[0].set_faults(["offline"])
        await h.probe_now([CAM])
        assert h.machines[CAM].fail_count == 1
        release.set()
        await asyncio.wait_for(video, 30)
        # The late "picture ok" is not an answer from the camera as it is now.
        assert h.machines[CAM].fail_count == 1
        await h.probe_now([CAM])
        assert h.machines[CAM].fail_count == 2
