"""``mallsim broadcast`` as a process: ports, control API and a play over HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from adapters.broadcast import ControllerConfig, ZoneConfig, make_driver

ROOT = Path(__file__).resolve().parents[2]


async def test_mallsim_broadcast_serves_http_sip_and_control() -> None:
    env = {**os.environ, "PA_PASSWORD": "s3cret"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators.cli",
        "broadcast",
        "--zones", "1,2",
        "--user", "pa",
        "--password-env", "PA_PASSWORD",
        "--busy", "2",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        urls: dict[str, str] = {}
        async with asyncio.timeout(30):
            while len(urls) < 3:
                line = (await proc.stdout.readline()).decode()
                assert line, "simulator exited early"
                kind, _, url = line.strip().partition("\t")
                urls[kind] = url
        assert urls["sip"].startswith("sip:127.0.0.1:")
        zones = (ZoneConfig("a", "A", "1"), ZoneConfig("b", "B", "2"))
        cfg = ControllerConfig("pa", urls["http"], "pa", "s3cret", zones)
        async with make_driver("http", cfg) as driver:
            results = await driver.play(["a", "b"], "test")
            status = await driver.status()
        assert [(r.outcome, r.reason) for r in results] == [("played", ""), ("failed", "zone busy")]
        assert dict(status.zones) == {"a": "idle", "b": "busy"}
        control = urls["control"].rsplit("/sim/", 1)[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{control}/sim/plays") as response:
                plays = await response.json()
            async with session.post(f"{control}/sim/faults", json={"busy": []}) as response:
                assert (await response.json())["busy"] == []
        assert [(p["zone"], p["via"], p["message"]) for p in plays] == [("1", "http", "test")]
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
