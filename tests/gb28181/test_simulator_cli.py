"""``mallsim gb28181`` as a technician runs it: a platform the hub registers to, in a process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

from adapters.gb28181.manscdp import AlarmNotice
from adapters.gb28181.model import PlatformHooks
from adapters.gb28181.platform import LowerPlatform

from ..support.wait import wait_until
from .conftest import HUB_ID, channels, config_at
from .test_platform import notice

PASSWORD = "cli-test-secret"


async def read_lines(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode("utf-8", "replace").rstrip())


async def test_platform_simulator_cli() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators.cli", "gb28181", "--port", "0", "--duration", "60",
        env={**os.environ, "MALLSIM_GB28181_PASSWORD": PASSWORD},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.TaskGroup() as group:
        reader = group.create_task(read_lines(proc.stdout, lines))
        try:
            await wait_until(
                lambda: any("listening on" in x for x in lines), within=20, what="start"
            )
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", "\n".join(lines))
            assert match, lines
            cfg = config_at(int(match.group(1)), password=PASSWORD)
            async with LowerPlatform(cfg, PlatformHooks(channels=lambda: channels())) as platform:
                await wait_until(lambda: platform.registered, what="registered")
                await wait_until(lambda: any("channels" in x for x in lines), what="catalog")
                alarm: AlarmNotice = notice("cli-1")
                platform.alarms.send(alarm)
                await wait_until(
                    lambda: any(x.startswith("alarm from") for x in lines), what="alarm"
                )
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                await proc.wait()
            await reader
    text = "\n".join(lines)
    assert f"registered: {HUB_ID}" in text
    assert f"catalog of {HUB_ID}: 4 channels" in text
    assert "34020000001340000001" in text and "紧急按钮报警 2F" in text
    assert proc.returncode == 0


async def test_simulator_cli_refuses_without_a_password() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLSIM_GB28181_PASSWORD"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators.cli", "gb28181", "--port", "0",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"MALLSIM_GB28181_PASSWORD" in err and b"Traceback" not in err
