"""The SIP paging driver against the simulated paging endpoint (UDP, port 0)."""

from __future__ import annotations

import asyncio
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from adapters.broadcast import make_driver
from adapters.broadcast.audio import MESSAGES_DIR, load_wav, wav_duration_s
from adapters.broadcast.g711 import alaw_decode, ulaw_decode
from adapters.broadcast.sip import SipPagingDriver
from simulators.broadcast import BroadcastSimulator

from ..support.wait import wait_until
from .conftest import TONE_S, sip_config

PACKET_S = 0.02


def expected_packets(seconds: float) -> int:
    return math.ceil(round(seconds * 8000) / 160)


async def test_play_streams_the_file(sim: BroadcastSimulator, messages_dir: Path) -> None:
    async with make_driver("sip", sip_config(sim, messages_dir)) as driver:
        results = await driver.play(["atrium", "parking"], "tone")
    assert [(r.zone, r.outcome, r.reason) for r in results] == [
        ("atrium", "played", ""),
        ("parking", "played", ""),
    ]
    file_s = wav_duration_s(messages_dir / "tone.wav")
    assert file_s == pytest.approx(TONE_S)
    plays = sorted(sim.plays, key=lambda p: p.zone)
    assert [(p.zone, p.via, p.codec) for p in plays] == [("1", "sip", "PCMU"), ("3", "sip", "PCMU")]
    for play, result in zip(plays, results, strict=True):
        assert play.ended  # BYE arrived
        assert play.packets == expected_packets(file_s)
        assert play.sequence_errors == 0
        # Duration from RTP timestamps, against the file: at most one padded packet longer.
        assert file_s <= play.duration_s < file_s + PACKET_S
        assert result.duration_s == pytest.approx(play.duration_s)
    assert sim.sip.counters["BYE 200"] == 2
    assert sim.sip.counters["ACK"] == 2
    assert isinstance(driver, SipPagingDriver)
    reports = {c.zone: c for c in driver.calls}
    assert reports["atrium"].hangup == "bye-ok"
    assert reports["atrium"].codec == "PCMU"


async def test_pcma_when_the_zone_only_takes_a_law(messages_dir: Path) -> None:
    async with (
        BroadcastSimulator(["1", "2", "3"], codecs=["PCMA"]) as sim,
        make_driver("sip", sip_config(sim, messages_dir)) as driver,
    ):
        (result,) = await driver.play(["food_court"], "tone")
    assert result.outcome == "played"
    (play,) = sim.plays
    assert play.codec == "PCMA"
    # What arrived decodes back to the file's audio.
    sent = load_wav(messages_dir / "tone.wav").astype(np.float64)
    heard = alaw_decode(np.frombuffer(bytes(play.audio), np.uint8))[: len(sent)].astype(np.float64)
    assert np.corrcoef(sent, heard)[0, 1] > 0.99


async def test_stored_message_reaches_the_zone_intact(sim: BroadcastSimulator) -> None:
    async with make_driver("sip", sip_config(sim)) as driver:
        result = await driver.test_zone("atrium")
    assert (result.zone, result.outcome) == ("atrium", "played")
    (play,) = sim.plays
    file_s = wav_duration_s(MESSAGES_DIR / "test_zh.wav")
    assert file_s <= play.duration_s < file_s + PACKET_S
    sent = load_wav(MESSAGES_DIR / "test_zh.wav").astype(np.float64)
    heard = ulaw_decode(np.frombuffer(bytes(play.audio), np.uint8))[: len(sent)].astype(np.float64)
    assert np.corrcoef(sent, heard)[0, 1] > 0.99


async def test_digest_challenge(messages_dir: Path) -> None:
    async with BroadcastSimulator(
        ["1", "2", "3"], username="pager", password="s3cret", sip_auth=True
    ) as sim:
        config = sip_config(sim, messages_dir, username="pager", password="s3cret")
        async with make_driver("sip", config) as driver:
            (result,) = await driver.play(["atrium"], "tone")
            assert isinstance(driver, SipPagingDriver)
            report = driver.calls[-1]
        assert result.outcome == "played"
        assert report.authenticated
        assert sim.sip.counters["INVITE 401"] == 1
        assert sim.sip.counters["INVITE 200"] == 1

        wrong = sip_config(sim, messages_dir, username="pager", password="guess")
        async with make_driver("sip", wrong) as driver:
            (result,) = await driver.play(["atrium"], "tone")
        assert (result.outcome, result.reason) == ("failed", "authentication failed")
        assert sim.sip.counters["INVITE 401"] == 3
        assert len(sim.plays) == 1


async def test_busy_zone(sim: BroadcastSimulator, messages_dir: Path) -> None:
    await sim.set_faults(busy=["2"])
    async with make_driver("sip", sip_config(sim, messages_dir)) as driver:
        results = await driver.play(["atrium", "food_court"], "tone")
    assert (results[0].outcome, results[0].reason) == ("played", "")
    assert (results[1].outcome, results[1].reason) == ("failed", "zone busy (486 Busy Here)")
    assert [p.zone for p in sim.plays] == ["1"]


async def test_offline_endpoint_times_out(sim: BroadcastSimulator, messages_dir: Path) -> None:
    await sim.set_faults(offline=True)
    config = sip_config(sim, messages_dir, invite_timeout_s=1.0, timeout_s=1.0)
    async with make_driver("sip", config) as driver:
        (result,) = await driver.play(["atrium"], "tone")
        # T1 = 0.25 s: the INVITE was sent again before Timer B (1 s) fired.
        assert sim.sip.counters["dropped offline"] >= 2
        status = await driver.status()
    assert result.outcome == "failed"
    assert result.reason == "timeout: no response to INVITE"
    assert not status.reachable
    assert status.error_type == "DeviceUnreachable"
    assert sim.plays == []


async def test_rejected_and_unknown_extension(sim: BroadcastSimulator, messages_dir: Path) -> None:
    config = sip_config(sim, messages_dir)
    config = type(config)(
        config.device_id,
        config.url,
        zones=(*config.zones, type(config.zones[0])("roof", "Roof", "99")),
        options=config.options,
    )
    async with make_driver("sip", config) as driver:
        (missing,) = await driver.play(["roof"], "tone")
        await sim.set_faults(reject=True)
        (rejected,) = await driver.play(["atrium"], "tone")
    assert missing.reason == "extension not found (404 Not Found)"
    assert rejected.reason == "forbidden (403 Forbidden)"
    assert sim.plays == []


async def test_slow_answer_is_waited_for_without_duplicate_calls(
    sim: BroadcastSimulator, messages_dir: Path
) -> None:
    await sim.set_faults(slow_s=0.8)
    async with make_driver("sip", sip_config(sim, messages_dir)) as driver:
        (result,) = await driver.play(["atrium"], "tone")
    assert result.outcome == "played"
    assert sim.sip.counters["INVITE retransmission"] >= 1
    assert len(sim.plays) == 1


async def test_stop_hangs_up_and_status_shows_busy(
    sim: BroadcastSimulator, messages_dir: Path
) -> None:
    driver = SipPagingDriver(sip_config(sim, messages_dir))
    async with driver, asyncio.TaskGroup() as group:
        playing = group.create_task(driver.play(["atrium"], "evacuation"))
        await wait_until(lambda: bool(sim.plays) and sim.plays[0].packets >= 5, what="RTP")
        status = await driver.status()
        assert status.reachable
        assert dict(status.zones) == {"atrium": "busy", "food_court": "idle", "parking": "idle"}
        assert sim.zone_states()["1"] == "busy"
        (second,) = await driver.play(["atrium"], "tone")
        assert (second.outcome, second.reason) == ("failed", "already paging this zone")
        await driver.stop(["atrium"])
        assert playing.done()
    (result,) = playing.result()
    assert (result.outcome, result.reason) == ("played", "stopped")
    (play,) = sim.plays
    assert play.ended
    assert play.duration_s < wav_duration_s(MESSAGES_DIR / "evacuation_zh.wav")
    assert result.duration_s == pytest.approx(play.duration_s)
    assert sim.zone_states()["1"] == "idle"


async def test_free_text_without_speech_synthesis(
    sim: BroadcastSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    async with make_driver("sip", sip_config(sim)) as driver:
        results = await driver.play(["atrium", "lobby"], "Please move your car")
    assert [(r.zone, r.outcome, r.reason) for r in results] == [
        ("atrium", "failed", "no audio for free text"),
        ("lobby", "failed", "unknown zone"),
    ]
    assert sim.plays == []


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
async def test_free_text_is_spoken(sim: BroadcastSimulator) -> None:
    async with make_driver("sip", sip_config(sim)) as driver:
        (result,) = await driver.play(["parking"], "Drill")
    assert result.outcome == "played"
    (play,) = sim.plays
    assert play.packets > 10
    assert play.duration_s == pytest.approx(result.duration_s)


def test_configuration_errors() -> None:
    from adapters.broadcast import ControllerConfig

    from .conftest import ZONES

    with pytest.raises(ValueError):
        SipPagingDriver(ControllerConfig("pa", "sip:", zones=ZONES))
    with pytest.raises(ValueError):
        SipPagingDriver(ControllerConfig("pa", "sip:h", zones=ZONES, options={"codecs": ["G729"]}))
    driver = make_driver("sip", ControllerConfig("pa", "sip:10.0.0.1", zones=ZONES))
    assert isinstance(driver, SipPagingDriver)
    assert (driver.host, driver.port) == ("10.0.0.1", 5060)


async def test_overall_play_timeout_hangs_up(sim: BroadcastSimulator, messages_dir: Path) -> None:
    config = sip_config(sim, messages_dir, play_timeout_s=0.3)
    async with make_driver("sip", config) as driver:
        (result,) = await driver.play(["atrium"], "evacuation")
    assert (result.outcome, result.reason) == ("failed", "timeout: call took over 0.3 s")
    (play,) = sim.plays
    await wait_until(lambda: play.ended, what="BYE after the timeout")
    assert 0 < play.packets < expected_packets(wav_duration_s(MESSAGES_DIR / "evacuation_zh.wav"))
