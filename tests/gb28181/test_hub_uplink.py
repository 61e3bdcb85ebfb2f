"""The real hub with ``police.gb28181`` against the simulated upper platform and a real broker.

Every configured device is in the catalog with the rule's channel ID; each alarm the hub
forwards over MQTT reaches the upper platform as ``Notify/Alarm`` (how soon after being stored
is measured by ``python -m bench gbalarm``, not asserted here); ResetAlarm acknowledges; the
link is a device state with events, and survives the upper platform's restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from hub.app import Hub
from hub.broker import LocalMosquitto
from hub.config import SiteConfig, load_config, parse_config
from hub.police.gb28181 import GB_LINK_ID, GbUplink
from hub.store.models import DeviceState, Event
from simulators.camera import CameraFarm
from simulators.gb28181_media import invite
from simulators.gb28181_platform import UpperPlatform
from tests.e2e.hubtest import event, police_and_hub
from tests.health.mall import USER, camera_entry, health
from tests.support.sites import site_dict

from ..support.wait import wait_until
from .conftest import PASSWORD, SERVER_ID, by_id

HUB_GB_ID = "41010500002000000001"
DEMO_CONFIG = Path(__file__).parents[2] / "config" / "demo.yaml"


def gb_section(upper: UpperPlatform, **more: Any) -> dict[str, Any]:
    return {
        "server_id": SERVER_ID,
        "host": "127.0.0.1",
        "port": upper.port,
        "password": "${GB_TEST_PASSWORD}",
        "device_id": HUB_GB_ID,
        "local_host": "127.0.0.1",
        "local_port": 0,
        "keepalive_interval_s": 0.3,
        "sip_t1_s": 0.05,
        "retry_max_s": 0.5,
        **more,
    }


def site(broker: LocalMosquitto, tmp_path: Path, upper: UpperPlatform, **more: Any) -> SiteConfig:
    data = site_dict(broker_url=broker.url, data_dir=tmp_path, gb28181=gb_section(upper, **more))
    return parse_config(data, env={"GB_TEST_PASSWORD": PASSWORD})


def uplink(hub: Hub) -> GbUplink:
    part = hub.gb28181
    assert isinstance(part, GbUplink)
    return part


async def link_row(hub: Hub) -> DeviceState | None:
    async with hub.engine.connect() as c:
        row = (
            await c.execute(select(DeviceState).where(DeviceState.device_id == GB_LINK_ID))
        ).first()
        return None if row is None else DeviceState(**row._mapping)


async def hub_events(hub: Hub, kind_prefix: str) -> list[tuple[str, dict[str, Any]]]:
    async with hub.engine.connect() as c:
        rows = await c.execute(
            select(Event.kind, Event.detail)
            .where(Event.kind.startswith(kind_prefix))
            .order_by(Event.seq)
        )
        return [(k, d) for k, d in rows.all()]


async def check_rows(cfg: SiteConfig, tmp_path: Path) -> list[dict[str, Any]]:
    """``mallhub check --json`` on the site (its own process: its own event loop)."""
    path = tmp_path / "check-site.yaml"
    data = cfg.model_dump(mode="json", exclude_none=True)
    data["police"]["gb28181"]["password"] = "${GB_TEST_PASSWORD}"
    await asyncio.to_thread(path.write_text, yaml.safe_dump(data, allow_unicode=True), "utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", "check", "--config", str(path), "--json", "--no-video",
        env={**os.environ, "GB_TEST_PASSWORD": PASSWORD},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode in (0, 1), err.decode()
    rows: list[dict[str, Any]] = json.loads(out)["devices"]
    return rows


async def test_catalog_alarms_reset_and_link_state(broker: LocalMosquitto, tmp_path: Path) -> None:
    async with UpperPlatform(platform_id=SERVER_ID, password=PASSWORD) as upper:
        cfg = site(broker, tmp_path, upper)
        async with police_and_hub(cfg, broker.url) as (police, hub):
            await wait_until(lambda: HUB_GB_ID in upper.registrations, within=15, what="registered")
            items = by_id(await upper.catalog(HUB_GB_ID))
            # Every configured device, with the rule's channel ID: site code + type + serial.
            assert items["4101050000" + "132" + "0000001"]["Name"] == "正门摄像机"
            assert items["41010500001340000001"]["Name"] == "正门一键报警"
            assert items["41010500001340000002"]["Name"] == "值班室一键报警"
            assert len(items) == 3
            assert {i["ParentID"] for i in items.values()} == {HUB_GB_ID}

            stored = await hub.ingest.ingest(event("alarm.panic", "btn-gate-1"))
            await wait_until(lambda: len(upper.alarms) == 1, what="Notify/Alarm")
            (alarm,) = upper.alarms
            assert stored.event_id in uplink(hub).handed_at
            assert alarm.fields["DeviceID"] == "41010500001340000001"
            assert alarm.fields["AlarmPriority"] == "1" and alarm.fields["AlarmMethod"] == "2"
            assert alarm.related == ["41010500001320000001"]
            assert "正门一键报警" in alarm.fields["AlarmDescription"]
            # The same alarm went to the police over MQTT too.
            view = police.view(cfg.site.id)
            await police.wait_for(lambda: stored.event_id in view.events)
            # A fault is not an alarm: not sent upward.
            await hub.ingest.ingest(event("fault.ac_loss", "btn-gate-1"))

            (result,) = await upper.control(
                HUB_GB_ID, "41010500001340000001", "<AlarmCmd>ResetAlarm</AlarmCmd>"
            )
            assert result.findtext("Result") == "OK"

            async def acknowledged() -> bool:
                async with hub.engine.connect() as c:
                    row = (
                        await c.execute(
                            select(Event.state, Event.state_via).where(
                                Event.event_id == stored.event_id
                            )
                        )
                    ).one()
                return tuple(row) == ("acknowledged", "police")

            await wait_until(acknowledged, what="acknowledged")
            assert len(upper.alarms) == 1

            row = await link_row(hub)
            assert row is not None and row.state == "online"
            assert row.detail["server_id"] == SERVER_ID and row.detail["registered"] is True
            # `mallhub check` shows the registration state the running hub recorded.
            (gb_row,) = [r for r in await check_rows(cfg, tmp_path) if r["device_id"] == GB_LINK_ID]
            assert gb_row["state"] == "online" and "registered" in gb_row["reason"]


async def test_survives_the_upper_platform_restarting(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    async with UpperPlatform(platform_id=SERVER_ID, password=PASSWORD) as upper:
        cfg = site(broker, tmp_path, upper)
        async with police_and_hub(cfg, broker.url) as (_, hub):
            await wait_until(lambda: HUB_GB_ID in upper.registrations, within=15, what="registered")
            await upper.stop()
            await wait_until(lambda: not uplink(hub).state.online, within=10, what="offline")
            # An alarm while the upper platform is down is delivered once it is back.
            await hub.ingest.ingest(event("alarm.panic", "btn-duty-1"))
            upper.registrations.clear()
            await upper.start()
            await wait_until(
                lambda: HUB_GB_ID in upper.registrations, within=15, what="registered again"
            )
            await wait_until(lambda: len(upper.alarms) == 1, within=10, what="the alarm")
            assert upper.alarms[0].fields["DeviceID"] == "41010500001340000002"
            assert len(await upper.catalog(HUB_GB_ID)) == 3

            async def restored() -> bool:
                kinds = [k for k, _ in await hub_events(hub, "fault.communication")]
                return kinds == ["fault.communication", "fault.communication.restore"]

            await wait_until(restored, within=10, what="fault and restore events")
            (_, detail), _ = await hub_events(hub, "fault.communication")
            assert "keepalives unanswered" in detail["reason"]
            row = await link_row(hub)
            assert row is not None and row.state == "online"


async def test_refused_registration_is_a_stored_finding(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    async with UpperPlatform(platform_id=SERVER_ID, password=PASSWORD) as upper:
        wrong = "34020000002000000002"
        cfg = site(broker, tmp_path, upper, server_id=wrong)
        async with police_and_hub(cfg, broker.url) as (_, hub):

            async def refused() -> bool:
                row = await link_row(hub)
                return row is not None and "404" in row.reason

            await wait_until(refused, within=15, what="the refusal stored")
            row = await link_row(hub)
            assert row is not None and row.state == "offline"
            assert f"configured {wrong}" in row.reason and f"answered as {SERVER_ID}" in row.reason

            async def one_fault() -> bool:
                return len(await hub_events(hub, "fault.communication")) == 1

            await wait_until(one_fault, what="the fault event")
            ((_, detail),) = await hub_events(hub, "fault.communication")
            assert "404" in detail["reason"] and detail["server_id_seen"] == SERVER_ID
            (gb_row,) = [r for r in await check_rows(cfg, tmp_path) if r["device_id"] == GB_LINK_ID]
            assert gb_row["state"] == "offline" and gb_row["required"]
            assert f"configured {wrong}" in gb_row["reason"] and "server_id" in gb_row["fix"]


async def test_every_demo_button_reaches_the_upper_platform(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    """The demo's site (config/demo.yaml) with an uplink: one press of each of its buttons."""
    raw = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    async with UpperPlatform(platform_id=SERVER_ID, password=PASSWORD) as upper:
        raw["police"]["gb28181"] = gb_section(upper)
        env = {
            "GB_TEST_PASSWORD": PASSWORD,
            "DEMO_BROKER_URL": broker.url,
            "DEMO_DATA_DIR": str(tmp_path),
            "DEMO_HTTP_PORT": "0",
            "DEMO_SIA_PORT": "0",
            "DEMO_PA_PORT": "1",
            "DEMO_CAMERA_PASSWORD": "x",
        }
        path = tmp_path / "demo.yaml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        cfg = load_config(path, env=env)
        buttons = [b.id for p in cfg.devices.alarm_panels for b in p.zones]
        async with police_and_hub(cfg, broker.url) as (_, hub):
            await wait_until(lambda: HUB_GB_ID in upper.registrations, within=15, what="registered")
            assert len(await upper.catalog(HUB_GB_ID)) == len(buttons) + len(cfg.devices.cameras)
            handed: list[str] = []
            for count, button in enumerate(buttons, start=1):
                stored = await hub.ingest.ingest(event("alarm.panic", button))
                handed.append(stored.event_id)
                await wait_until(lambda: len(upper.alarms) == count, what=f"alarm of {button}")  # noqa: B023
            ids = cfg.gb28181_channel_ids()
            assert [a.fields["DeviceID"] for a in upper.alarms] == [ids[b] for b in buttons]
            assert all(event_id in uplink(hub).handed_at for event_id in handed)


async def test_live_video_and_ptz_of_a_hub_camera(broker: LocalMosquitto, tmp_path: Path) -> None:
    """The hub learns the camera's RTSP URI over ONVIF and streams it with the camera's
    credentials; a PTZ preset call goes to the camera over ONVIF."""
    password = secrets.token_urlsafe(10)
    farm = CameraFarm.uniform(
        2, username=USER, password=password, width=640, height=360, encoding="H265"
    )
    async with farm, UpperPlatform(platform_id=SERVER_ID, password=PASSWORD) as upper:
        data = site_dict(
            broker_url=broker.url,
            data_dir=tmp_path,
            cameras=[
                camera_entry("cam-a", farm[0], password),
                camera_entry("cam-b", farm[1], password, zone="east", role="entrance"),
            ],
            health=health(),
            gb28181=gb_section(upper),
        )
        cfg = parse_config(data, env={"GB_TEST_PASSWORD": PASSWORD})
        ids = cfg.gb28181_channel_ids()
        async with police_and_hub(cfg, broker.url) as (_, hub):
            await wait_until(lambda: HUB_GB_ID in upper.registrations, within=15, what="registered")
            await wait_until(lambda: "cam-a" in hub.index.stream_uris, within=20, what="stream URI")

            async def camera_on() -> bool:
                items = by_id(await upper.catalog(HUB_GB_ID))
                return items[ids["cam-a"]]["Status"] == "ON"

            await wait_until(camera_on, within=20, what="camera ON in the catalog")
            check = await invite(upper, HUB_GB_ID, ids["cam-a"], mode="tcp-passive", seconds=3.0)
            assert check.ok, check
            assert (check.codec, check.width, check.height) == ("hevc", 640, 360)
            preset = "A50F018200020039"  # call preset 2
            (result,) = await upper.control(HUB_GB_ID, ids["cam-b"], f"<PTZCmd>{preset}</PTZCmd>")
            assert result.findtext("Result") == "OK"
            assert farm[1].last_preset == "2"
