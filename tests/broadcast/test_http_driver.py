"""The HTTP/JSON driver against the simulated controller (port 0, fault switches)."""

from __future__ import annotations

import pytest

from adapters.broadcast import ControllerConfig, make_driver
from adapters.broadcast.audio import MESSAGES_DIR, wav_duration_s
from adapters.broadcast.http import BodyTemplate, HttpBroadcastDriver
from adapters.errors import DeviceUnreachable
from simulators.broadcast import BroadcastSimulator

from ..support.wait import wait_until
from .conftest import ZONES, http_config

EVACUATION_ZH = (MESSAGES_DIR / "evacuation_zh.txt").read_text("utf-8").strip()


async def test_play_is_recorded_by_the_controller(sim: BroadcastSimulator) -> None:
    async with make_driver("http", http_config(sim)) as driver:
        results = await driver.play(["atrium", "food_court"], "evacuation")
    assert [(r.zone, r.outcome, r.reason) for r in results] == [
        ("atrium", "played", ""),
        ("food_court", "played", ""),
    ]
    assert results[0].duration_s == pytest.approx(
        wav_duration_s(MESSAGES_DIR / "evacuation_zh.wav")
    )
    assert [(p.zone, p.via, p.message, p.text, p.priority) for p in sim.plays] == [
        ("1", "http", "evacuation", EVACUATION_ZH, 1),
        ("2", "http", "evacuation", EVACUATION_ZH, 1),
    ]
    assert sim.requests[0][2] == {
        "zones": ["1", "2"],
        "message": "evacuation",
        "text": EVACUATION_ZH,
        "priority": 1,
    }


async def test_free_text_goes_as_text(sim: BroadcastSimulator) -> None:
    async with make_driver("http", http_config(sim)) as driver:
        (result,) = await driver.play(["parking"], "请车主尽快挪车")
    assert result.outcome == "played"
    assert [(p.zone, p.message, p.text) for p in sim.plays] == [("3", None, "请车主尽快挪车")]


async def test_busy_zone_fails_and_the_others_still_play(sim: BroadcastSimulator) -> None:
    await sim.set_faults(busy=["2"])
    async with make_driver("http", http_config(sim)) as driver:
        results = await driver.play(["atrium", "food_court", "parking"], "evacuation")
    assert [(r.zone, r.outcome, r.reason) for r in results] == [
        ("atrium", "played", ""),
        ("food_court", "failed", "zone busy"),
        ("parking", "played", ""),
    ]
    assert sorted(p.zone for p in sim.plays) == ["1", "3"]


async def test_offline_controller(sim: BroadcastSimulator) -> None:
    async with make_driver("http", http_config(sim, timeout_s=2)) as driver:
        await sim.set_faults(offline=True)
        (result,) = await driver.play(["atrium"], "evacuation")
        assert result.outcome == "failed"
        assert result.reason.startswith("unreachable")
        status = await driver.status()
        assert not status.reachable
        assert status.error_type == "DeviceUnreachable"
        assert dict(status.zones) == dict.fromkeys(["atrium", "food_court", "parking"], "unknown")
        with pytest.raises(DeviceUnreachable):
            await driver.stop(["atrium"])
        assert sim.plays == []

        await sim.set_faults(offline=False)
        (result,) = await driver.play(["atrium"], "evacuation")
        assert result.outcome == "played"
        assert (await driver.status()).reachable


async def test_slow_controller_beyond_the_timeout(sim: BroadcastSimulator) -> None:
    await sim.set_faults(slow_s=3)
    async with make_driver("http", http_config(sim, timeout_s=0.3)) as driver:
        (result,) = await driver.play(["atrium"], "evacuation")
        status = await driver.status()
    assert (result.outcome, result.reason) == ("failed", "timeout")
    assert not status.reachable
    assert status.error == "timeout"


async def test_status_per_zone_and_stop() -> None:
    async with BroadcastSimulator(["1", "2", "3"], http_play_s=600) as sim:
        await sim.set_faults(busy=["2"])
        async with make_driver("http", http_config(sim)) as driver:
            status = await driver.status()
            assert status.reachable and status.error is None
            assert status.latency_s is not None and status.latency_s >= 0
            assert dict(status.zones) == {"atrium": "idle", "food_court": "busy", "parking": "idle"}

            (result,) = await driver.play(["atrium"], "test")
            assert result.outcome == "played"
            assert (await driver.status()).zones["atrium"] == "busy"
            (again,) = await driver.play(["atrium"], "test")
            assert (again.outcome, again.reason) == ("failed", "zone busy")

            await driver.stop(["atrium"])
            assert (await driver.status()).zones["atrium"] == "idle"
            assert sim.plays[0].ended
            with pytest.raises(ValueError):
                await driver.stop(["nowhere"])


async def test_rejected_and_unknown_zone(sim: BroadcastSimulator) -> None:
    await sim.set_faults(reject=True)
    async with make_driver("http", http_config(sim)) as driver:
        results = await driver.play(["atrium", "lobby"], "evacuation")
    assert results[0].outcome == "failed"
    assert results[0].reason.startswith("rejected (HTTP 403)")
    assert (results[1].zone, results[1].outcome, results[1].reason) == (
        "lobby",
        "failed",
        "unknown zone",
    )


@pytest.mark.parametrize("mode", ["basic", "digest"])
async def test_authentication(mode: str) -> None:
    async with BroadcastSimulator(
        ["1", "2", "3"], username="pa", password="s3cret", http_auth=mode
    ) as sim:
        good = ControllerConfig("pa-http", sim.http_url, "pa", "s3cret", ZONES, {"auth": mode})
        async with make_driver("http", good) as driver:
            (result,) = await driver.play(["atrium"], "test")
            assert result.outcome == "played"
            assert (await driver.status()).reachable
        bad = ControllerConfig("pa-http", sim.http_url, "pa", "wrong", ZONES, {"auth": mode})
        async with make_driver("http", bad) as driver:
            (result,) = await driver.play(["atrium"], "test")
            status = await driver.status()
        assert result.outcome == "failed"
        assert result.reason.startswith("authentication failed (HTTP 401)")
        assert status.reachable
        assert status.error_type == "AuthFailed"
        assert len(sim.plays) == 1


async def test_site_specific_endpoint_and_template(sim: BroadcastSimulator) -> None:
    options = {
        "play_template": (
            '{"zones": ${zones}, "message": ${message}, "vendor": {"prio": ${priority}}}'
        ),
        "zone_format": "int",
        "priority": 2,
        "message_map": {"evacuation": "clip-07"},
    }
    async with make_driver("http", http_config(sim, **options)) as driver:
        results = await driver.play(["food_court", "parking"], "evacuation")
    assert all(r.outcome == "played" for r in results)
    assert sim.requests[0][2] == {"zones": [2, 3], "message": "clip-07", "vendor": {"prio": 2}}
    assert [(p.zone, p.message) for p in sim.plays] == [("2", "clip-07"), ("3", "clip-07")]


async def test_wrong_endpoint_path(sim: BroadcastSimulator) -> None:
    async with make_driver("http", http_config(sim, play_path="/cgi-bin/play")) as driver:
        (result,) = await driver.play(["atrium"], "test")
    assert result.outcome == "failed"
    assert result.reason.startswith("not found (HTTP 404)")


async def test_simulator_control_api(sim: BroadcastSimulator) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sim.control_url}/sim/faults", json={"offline": True}) as r:
            assert (await r.json())["offline"] is True
        async with make_driver("http", http_config(sim)) as driver:
            assert not (await driver.status()).reachable
        async with session.post(
            f"{sim.control_url}/sim/faults", json={"offline": False, "busy": ["3"]}
        ) as r:
            assert await r.json() == {
                "offline": False,
                "busy": ["3"],
                "slow_s": 0.0,
                "reject": False,
            }
        async with make_driver("http", http_config(sim)) as driver:
            await driver.play(["atrium", "parking"], "test")
        await wait_until(lambda: len(sim.plays) == 1, what="one play recorded")
        async with session.get(f"{sim.http_url}/sim/plays") as r:
            plays = await r.json()
    assert [(p["zone"], p["via"], p["message"]) for p in plays] == [("1", "http", "test")]


def test_body_template_forms() -> None:
    values = {"zones": ["1"], "message": None, "text": 'say "hi"', "priority": 1, "language": "zh"}
    assert BodyTemplate('{"z": ${zones}, "t": ${text}}').render(values) == {
        "z": ["1"],
        "t": 'say "hi"',
    }
    assert BodyTemplate({"cmd": "play ${language}", "z": "${zones}", "n": [3]}).render(values) == {
        "cmd": "play zh",
        "z": ["1"],
        "n": [3],
    }
    with pytest.raises(ValueError):
        BodyTemplate('{"z": ${zone}}')
    with pytest.raises(ValueError):
        BodyTemplate('{"z": ${zones}')


def test_configuration_errors() -> None:
    with pytest.raises(ValueError):
        make_driver("modbus", ControllerConfig("pa", "http://x", zones=ZONES))
    with pytest.raises(ValueError):
        HttpBroadcastDriver(ControllerConfig("pa", "ftp://x", zones=ZONES))
    with pytest.raises(ValueError):
        HttpBroadcastDriver(
            ControllerConfig("pa", "http://x", zones=ZONES, options={"timeout_s": 0})
        )
    with pytest.raises(ValueError):
        HttpBroadcastDriver(ControllerConfig("pa", "http://x", zones=(*ZONES, ZONES[0])))
    assert "s3cret" not in repr(ControllerConfig("pa", "http://x", "u", "s3cret", ZONES))
