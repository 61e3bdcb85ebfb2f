"""``mallhub check`` against a simulated mall: cameras, a broadcast controller, the broker."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.broker import LocalMosquitto
from hub.cli import main
from simulators.broadcast import BroadcastSimulator
from simulators.camera import CameraConfig, CameraFarm
from tests.health.mall import USER, camera_entry, health, video_ready
from tests.support.sites import site_dict


def write(path: Path, data: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(path)


async def run_cli(*argv: str) -> int:
    # The CLI runs its own event loop; the simulators keep serving on this one.
    return await asyncio.to_thread(main, list(argv))


def problems(row: dict[str, Any]) -> list[str]:
    # Warnings (a measured frame rate on a busy test machine) are shown but do not fail.
    return [f["check"] for f in row["findings"] if not f["warning"]]


def broadcast_entry(sim: BroadcastSimulator) -> dict[str, Any]:
    return {
        "id": "pa-1",
        "name": "广播主机",
        "driver": "http",
        "url": sim.http_url,
        "location": {"floor": "B1", "zone": "control", "role": "monitoring_room"},
        "zones": [{"id": "z1", "name": "一层", "target": "1"}],
    }


@pytest.fixture
def password() -> str:
    return secrets.token_urlsafe(12)


async def test_check_flags_broken_devices_and_exits_non_zero(
    broker: LocalMosquitto, tmp_path: Path, password: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = [
        CameraConfig(name, USER, password, faults=frozenset(faults), clock_drift_s=3600, seed=i)
        for i, (name, faults) in enumerate(
            [("ok", ()), ("off", ("offline",)), ("drift", ("clock_drift",)), ("cov", ("covered",))]
        )
    ]
    async with CameraFarm(configs) as farm, BroadcastSimulator(("1",)) as pa:
        await video_ready(farm)
        cams = [
            camera_entry("cam-ok", farm[0], password),
            camera_entry("cam-off", farm[1], password, floor="2F", zone="north", role="passage"),
            camera_entry("cam-drift", farm[2], password, floor="2F", zone="north", role="passage"),
            camera_entry("cam-cov", farm[3], password, floor="B1", zone="p1", role="parking"),
        ]
        data = site_dict(
            broker_url=broker.url,
            data_dir=tmp_path / "data",
            cameras=cams,
            broadcast=[broadcast_entry(pa)],
            health=health(),
        )
        path = write(tmp_path / "site.yaml", data)
        assert await run_cli("check", "--config", path, "--json") == 1
        report = json.loads(capsys.readouterr().out)
        rows = {r["device_id"]: r for r in report["devices"]}
        # Every configured device is listed (buttons through their panel).
        assert set(rows) == {
            "cam-ok",
            "cam-off",
            "cam-drift",
            "cam-cov",
            "pa-1",
            "police-link",
            "panel-1",
            "btn-gate-1",
            "btn-duty-1",
        }
        assert rows["cam-ok"]["state"] == "online" and problems(rows["cam-ok"]) == []
        assert rows["cam-ok"]["resolution"] == [1920, 1080] and rows["cam-ok"]["fps_limit"] == 25
        assert rows["cam-off"]["state"] == "offline" and "unreachable" in rows["cam-off"]["reason"]
        assert rows["cam-off"]["fix"]
        assert rows["cam-drift"]["state"] == "degraded"
        assert problems(rows["cam-drift"]) == ["clock"]
        assert rows["cam-drift"]["clock_offset_s"] == pytest.approx(3600, abs=5)
        assert rows["cam-cov"]["state"] == "degraded"
        assert problems(rows["cam-cov"]) == ["video.covered"]
        assert rows["pa-1"]["state"] == "online" and rows["police-link"]["state"] == "online"
        assert rows["panel-1"]["state"] == "unknown"  # no running hub has heard it
        assert sorted(report["failing"]) == ["cam-cov", "cam-drift", "cam-off"]

        # The table: grouped by floor and zone, each problem with the fix to try.
        assert await run_cli("check", "--config", path) == 1
        out = capsys.readouterr().out
        assert "[2F / north]" in out and "[B1 / p1]" in out
        assert "View covered or blocked" in out and "fix: Enable NTP" in out
        assert "FAILED: required device(s) not working: " in out

        # One device, or one floor.
        assert await run_cli("check", "--config", path, "--device", "cam-ok") == 0
        assert "OK: every required device works" in capsys.readouterr().out
        assert await run_cli("check", "--config", path, "--floor", "2F", "--json") == 1
        floor = json.loads(capsys.readouterr().out)
        assert {r["device_id"] for r in floor["devices"]} == {"cam-off", "cam-drift"}


async def test_check_of_a_healthy_mall_exits_zero(
    broker: LocalMosquitto, tmp_path: Path, password: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        CameraFarm.uniform(2, username=USER, password=password) as farm,
        BroadcastSimulator(("1",)) as pa,
    ):
        await video_ready(farm)
        data = site_dict(
            broker_url=broker.url,
            data_dir=tmp_path / "data",
            cameras=[
                camera_entry("cam-a", farm[0], password),
                camera_entry("cam-b", farm[1], password, zone="east", role="entrance"),
            ],
            broadcast=[broadcast_entry(pa)],
            health=health(),
        )
        path = write(tmp_path / "site.yaml", data)
        assert await run_cli("check", "--config", path, "--json") == 0
        report = json.loads(capsys.readouterr().out)
        assert report["ok"] is True and report["failing"] == []
        assert {r["device_id"]: r["state"] for r in report["devices"] if r["required"]} == {
            "cam-a": "online",
            "cam-b": "online",
            "pa-1": "online",
            "police-link": "online",
            "panel-1": "unknown",
        }


async def test_user_mistakes_exit_2_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path / "bad.yaml", {"site": {"id": "x"}, "health": {"fail_threshold": 0}})
    assert await run_cli("check", "--config", bad) == 2
    err = capsys.readouterr().err
    assert "police: Field required" in err and "health.fail_threshold" in err
    assert await run_cli("check", "--config", str(tmp_path / "missing.yaml")) == 2
    good = write(
        tmp_path / "site.yaml",
        site_dict(broker_url="mqtt://127.0.0.1:1", data_dir=tmp_path / "d", cameras=[]),
    )
    assert await run_cli("check", "--config", good, "--device", "nope") == 2
    assert "no configured device matches device 'nope'" in capsys.readouterr().err
    assert "Traceback" not in capsys.readouterr().err


async def test_check_shows_the_camera_and_tests_what_the_config_relies_on(
    broker: LocalMosquitto, tmp_path: Path, password: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with CameraFarm.uniform(2, username=USER, password=password) as farm:
        await video_ready(farm)
        sim = farm[0].config
        good = camera_entry("cam-good", farm[0], password, events=True)
        good |= {"ptz_presets": {"entrance": "1"}, "relays": [sim.relays[0]]}
        bad = camera_entry("cam-bad", farm[1], password, zone="east", role="entrance")
        bad |= {"ptz_presets": {"roof": "99"}, "relays": ["RelayOutput_7"]}
        data = site_dict(
            broker_url=broker.url,
            data_dir=tmp_path / "data",
            cameras=[good, bad],
            health=health(),
        )
        path = write(tmp_path / "site.yaml", data)
        assert await run_cli("check", "--config", path, "--json") == 1
        report = json.loads(capsys.readouterr().out)
        rows = {r["device_id"]: r for r in report["devices"]}
        ok, broken = rows["cam-good"], rows["cam-bad"]
        # What it is, and its main stream as configured and as measured from the stream.
        assert (ok["manufacturer"], ok["model"], ok["firmware"]) == (
            sim.manufacturer,
            sim.model,
            sim.firmware,
        )
        assert (ok["encoding"], ok["resolution"], ok["fps_limit"]) == ("H264", [1920, 1080], 25)
        assert ok["stream"]["codec"] == "H264"
        assert [ok["stream"]["width"], ok["stream"]["height"]] == [1920, 1080]
        assert ok["fps_measured"] is not None and ok["video_source"] == "rtsp_sub"
        # Events, the presets and the relays it is configured with all work: nothing found.
        assert ok["state"] == "online" and problems(ok) == []
        # A preset and a relay the camera does not have: each a finding naming it.
        assert broken["state"] == "degraded"
        assert sorted(problems(broken)) == ["ptz", "relays"]
        text = json.dumps(broken["findings"])
        assert "roof (99)" in text and "RelayOutput_7" in text

        assert await run_cli("check", "--config", path, "--device", "cam-good") == 0
        out = capsys.readouterr().out
        assert f"{sim.manufacturer} {sim.model}, firmware / 固件 {sim.firmware}" in out
        assert "configured / 配置 H264 1920x1080 @ 25 fps; measured / 实测 H264 1920x1080 @" in out
        assert "picture judged from / 画面来源: rtsp_sub" in out
