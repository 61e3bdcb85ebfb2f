"""Fixtures: the broadcast simulator on port 0 and driver configurations pointing at it."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.broadcast import ControllerConfig, ZoneConfig
from simulators.broadcast import BroadcastSimulator

ZONES = (
    ZoneConfig("atrium", "Atrium", "1"),
    ZoneConfig("food_court", "Food court", "2"),
    ZoneConfig("parking", "Parking", "3"),
)

TONE_RATE = 16000
TONE_S = 0.55
"""A short message so SIP tests stream well under a second of real-time audio."""


def write_tone(
    path: Path, rate: int = TONE_RATE, seconds: float = TONE_S, hz: float = 440.0
) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    samples = (np.sin(2 * np.pi * hz * t) * 12000).astype("<i2")
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return path


@pytest.fixture
def messages_dir(tmp_path: Path) -> Path:
    """A site message folder with ``tone`` (16 kHz: the driver must resample it)."""
    folder = tmp_path / "messages"
    folder.mkdir()
    write_tone(folder / "tone.wav")
    (folder / "tone.txt").write_text("440 Hz tone\n", "utf-8")
    return folder


@pytest.fixture
async def sim() -> AsyncIterator[BroadcastSimulator]:
    async with BroadcastSimulator(["1", "2", "3"]) as simulator:
        yield simulator


def http_config(sim: BroadcastSimulator, **options: Any) -> ControllerConfig:
    return ControllerConfig("pa-http", sim.http_url, zones=ZONES, options=options)


def sip_config(
    sim: BroadcastSimulator,
    messages_dir: Path | None = None,
    username: str | None = None,
    password: str | None = None,
    **options: Any,
) -> ControllerConfig:
    opts: dict[str, Any] = {"local_host": "127.0.0.1", "t1_s": 0.25, **options}
    if messages_dir is not None:
        opts["messages_dir"] = str(messages_dir)
    return ControllerConfig(
        "pa-sip",
        f"sip:127.0.0.1:{sim.sip_port}",
        username=username,
        password=password,
        zones=ZONES,
        options=opts,
    )
