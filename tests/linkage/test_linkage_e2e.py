"""Linkage end to end: panel press → hub → police, cameras and broadcast simulators.

A real hub with a real Mosquitto, the SIA receiver fed by the panel simulator, ONVIF camera
simulators and the broadcast simulator. Timings are asserted only through the hub's own
measurement (``elapsed_ms`` against ``compliance.linkage_budget_s``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from hub.app import Hub
from hub.broker import LocalMosquitto
from hub.linkage.service import LinkageService
from hub.linkage.snapshots import load_or_create_secret, verify_token
from hub.store.models import Event, Snapshot
from simulators.broadcast import BroadcastSimulator
from simulators.camera import CameraFarm
from simulators.panel import PanelSimulator
from simulators.police import PolicePlatform, SiteView
from tests.e2e.hubtest import assert_no_violations, police_and_hub
from tests.linkage.site import linkage_site
from tests.support.wait import wait_until

GATE_ZONE = 15


def linkage_items(view: SiteView, event_id: str) -> list[dict[str, Any]]:
    return [i for u in view.updates if u["event_id"] == event_id for i in u.get("linkage", [])]


def attachments(view: SiteView, event_id: str) -> list[dict[str, Any]]:
    return [a for u in view.updates if u["event_id"] == event_id for a in u.get("attachments", [])]


def alarms(view: SiteView) -> list[dict[str, Any]]:
    return [view.events[e] for e in view.event_order if view.events[e]["category"] == "alarm"]


async def press_gate(hub: Hub, police: PolicePlatform, site: str) -> str:
    """Press the main gate's panic button on the panel; return the alarm's event_id."""
    linkage: LinkageService = hub.linkage
    await asyncio.wait_for(linkage.warmed.wait(), 60)  # cameras connected, as in service
    view = police.view(site)
    async with PanelSimulator("127.0.0.1", hub.sia.tcp_port, "1234") as panel:
        panel.press(GATE_ZONE)
        await panel.wait_acked(1, within=10)
    await police.wait_for(lambda: len(alarms(view)) == 1)
    alarm = alarms(view)[0]
    assert alarm["kind"] == "alarm.panic" and alarm["device"]["id"] == "btn-gate-1"
    return str(alarm["event_id"])


def first_arrival(police: PolicePlatform, kind: str, event_id: str) -> int:
    return next(
        i
        for i, r in enumerate(police.received)
        if r.kind == kind and r.body.get("event_id") == event_id
    )


async def test_gate_panic_links_cameras_ptz_siren_and_broadcast(
    broker: LocalMosquitto,
    tmp_path: Path,
    farm: CameraFarm,
    camera_password: str,
    pa: BroadcastSimulator,
) -> None:
    cfg = linkage_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=list(farm),
        camera_password=camera_password,
        pa=pa,
    )
    site = cfg.site.id
    budget_ms = cfg.compliance.linkage_budget_s * 1000
    async with police_and_hub(cfg, broker.url) as (police, hub):
        view = police.view(site)
        alarm_id = await press_gate(hub, police, site)
        # 2 snapshots, the PTZ preset, the relay, 2 broadcast zones.
        await police.wait_for(lambda: len(linkage_items(view, alarm_id)) == 6, within=30)
        items = linkage_items(view, alarm_id)

        # Forward first: the alarm was out before any linkage update.
        assert first_arrival(police, "events", alarm_id) < first_arrival(
            police, "updates", alarm_id
        )

        # Every outcome ok, with its timing, inside the VID-LINKAGE budget.
        assert {(i["type"], i["target"]) for i in items} == {
            ("snapshot", "cam-gate-1"),
            ("snapshot", "cam-gate-2"),
            ("ptz_preset", "cam-gate-2"),
            ("relay_pulse", "cam-gate-2/RelayOutput_1"),
            ("broadcast", "pa-1/pa-1f-hall"),
            ("broadcast", "pa-1/pa-1f-gate"),
        }
        for item in items:
            assert item["outcome"] == "ok", item
            assert item["rule"] == "gate-panic" and item["attempts"] == 1
            assert 0 <= item["elapsed_ms"] <= budget_ms, item
        linkage: LinkageService = hub.linkage
        assert linkage.latency_ms[alarm_id] == max(i["elapsed_ms"] for i in items)

        # Snapshots: JPEGs from both linked cameras; sha256 matches the bytes sent, the file
        # kept and the row stored.
        atts = attachments(view, alarm_id)
        assert sorted(a["camera_id"] for a in atts) == ["cam-gate-1", "cam-gate-2"]
        async with hub.engine.connect() as c:
            rows = {
                r.camera_id: r
                for r in (await c.execute(select(Snapshot).where(Snapshot.event_id == alarm_id)))
            }
        for a in atts:
            data = base64.b64decode(a["data_base64"])
            assert data[:3] == b"\xff\xd8\xff" and a["content_type"] == "image/jpeg"
            assert hashlib.sha256(data).hexdigest() == a["sha256"] and len(data) == a["bytes"]
            row = rows[a["camera_id"]]
            assert row.sha256 == a["sha256"]
            assert await asyncio.to_thread(Path(row.path).read_bytes) == data
            assert Path(row.path).is_relative_to(tmp_path / "snapshots")

        # The PTZ camera went to the gate preset (token "1").
        assert farm[1].last_preset == "1"
        # The siren relay was switched on, and goes off again by itself.
        await wait_until(
            lambda: [c.state for c in farm[1].relay_history] == ["active", "inactive"],
            what="relay pulse",
        )
        # The evacuation message played in the configured zones only.
        played = sorted((p.zone, p.message) for p in pa.plays)
        assert played == [("1", "evacuation"), ("2", "evacuation")]

        # No fault was raised for a linkage that worked.
        assert not any(e["category"] == "fault" for e in view.events.values())
    assert_no_violations(police)


async def test_broadcast_offline_alarm_still_forwarded_and_fault_raised(
    broker: LocalMosquitto,
    tmp_path: Path,
    farm: CameraFarm,
    camera_password: str,
    pa: BroadcastSimulator,
) -> None:
    cfg = linkage_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=list(farm),
        camera_password=camera_password,
        pa=pa,
    )
    site = cfg.site.id
    await pa.set_faults(offline=True)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        view = police.view(site)
        alarm_id = await press_gate(hub, police, site)

        def faults() -> list[dict[str, Any]]:
            return [e for e in view.events.values() if e["kind"] == "fault.broadcast"]

        await police.wait_for(
            lambda: len(linkage_items(view, alarm_id)) == 6 and len(faults()) == 1, within=30
        )
        items = linkage_items(view, alarm_id)
        assert first_arrival(police, "events", alarm_id) < first_arrival(
            police, "updates", alarm_id
        )
        broadcast = [i for i in items if i["type"] == "broadcast"]
        assert len(broadcast) == 2
        for item in broadcast:
            assert item["outcome"] == "failed"
            assert item["detail"]  # the reason
            assert item["attempts"] == 2  # tried again once (retries: 1)
        # The cameras did their part regardless.
        assert all(i["outcome"] == "ok" for i in items if i["type"] != "broadcast")
        assert len(attachments(view, alarm_id)) == 2
        fault = faults()[0]
        assert fault["device"]["id"] == "pa-1"
        assert fault["detail"]["alarm_event_id"] == alarm_id
        assert fault["detail"]["reason"] == broadcast[0]["detail"]
        assert sorted(fault["detail"]["targets"]) == ["pa-1/pa-1f-gate", "pa-1/pa-1f-hall"]
        assert pa.plays == []
    assert_no_violations(police)


async def test_big_snapshots_travel_as_signed_urls_and_dead_camera_is_a_linkage_fault(
    broker: LocalMosquitto,
    tmp_path: Path,
    farm: CameraFarm,
    camera_password: str,
    pa: BroadcastSimulator,
) -> None:
    cfg = linkage_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=list(farm),
        camera_password=camera_password,
        pa=pa,
        inline_snapshot_max_bytes=0,
        rules=[
            {
                "name": "gate-snapshots",
                "match": {"zones": ["main-gate"]},
                "actions": [{"type": "snapshot", "cameras": ["cam-gate-1", "cam-gate-2"]}],
                "timeout_s": 1,
                "retries": 0,
            }
        ],
    )
    cfg = cfg.model_copy(
        update={"http": cfg.http.model_copy(update={"public_url": "https://hub.example"})}
    )
    site = cfg.site.id
    async with police_and_hub(cfg, broker.url) as (police, hub):
        view = police.view(site)
        linkage: LinkageService = hub.linkage
        await asyncio.wait_for(linkage.warmed.wait(), 60)
        await farm[1].stop()  # the second camera dies after the hub connected to it
        alarm_id = await press_gate(hub, police, site)

        def faults() -> list[dict[str, Any]]:
            return [e for e in view.events.values() if e["kind"] == "fault.linkage"]

        await police.wait_for(
            lambda: len(linkage_items(view, alarm_id)) == 2 and len(faults()) == 1, within=30
        )
        items = {i["target"]: i for i in linkage_items(view, alarm_id)}
        assert items["cam-gate-1"]["outcome"] == "ok"
        assert items["cam-gate-2"]["outcome"] == "failed" and items["cam-gate-2"]["detail"]
        assert faults()[0]["device"]["id"] == "cam-gate-2"

        (att,) = attachments(view, alarm_id)
        assert "data_base64" not in att
        url = urlsplit(att["url"])
        assert url.scheme == "https" and url.netloc == "hub.example"
        snap_id = int(url.path.rsplit("/", 1)[1])
        token = parse_qs(url.query)["token"][0]
        secret = load_or_create_secret(tmp_path)  # what the web server reads
        assert verify_token(secret, snap_id, token, event_id=alarm_id).event_id == alarm_id
        async with hub.engine.connect() as c:
            row = (await c.execute(select(Snapshot).where(Snapshot.id == snap_id))).one()
        assert (
            row.sha256
            == att["sha256"]
            == hashlib.sha256(await asyncio.to_thread(Path(row.path).read_bytes)).hexdigest()
        )
        # The alarm itself is unaffected by the failure.
        async with hub.engine.connect() as c:
            state = (
                await c.execute(select(Event.state).where(Event.event_id == alarm_id))
            ).scalar()
        assert state == "new"
    assert_no_violations(police)


async def test_police_snapshot_command_returns_evidence(
    broker: LocalMosquitto,
    tmp_path: Path,
    farm: CameraFarm,
    camera_password: str,
) -> None:
    cfg = linkage_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=list(farm),
        camera_password=camera_password,
    )
    site = cfg.site.id
    async with police_and_hub(cfg, broker.url) as (police, hub):
        resp = await police.command(site, "snapshot", {"camera_id": "cam-gate-1"}, within=30)
        assert resp["ok"] is True, resp
        att = resp["result"]["attachment"]
        data = base64.b64decode(att["data_base64"])
        assert data[:2] == b"\xff\xd8" and att["bytes"] == len(data)  # a JPEG, whole
        assert hashlib.sha256(data).hexdigest() == att["sha256"]
        async with hub.engine.connect() as c:
            row = (
                await c.execute(
                    select(Snapshot).where(Snapshot.event_id == resp["result"]["capture_id"])
                )
            ).one()
        assert row.sha256 == att["sha256"]
        assert await asyncio.to_thread(Path(row.path).read_bytes) == data
        unknown = await police.command(site, "snapshot", {"camera_id": "cam-nope"})
        assert unknown["error"]["code"] == "not_found"
        missing = await police.command(site, "snapshot", {})
        assert missing["error"]["code"] == "invalid"
    assert_no_violations(police)
