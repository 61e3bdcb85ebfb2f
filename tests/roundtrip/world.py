"""The round trip's world: the demo mall's devices in their own process (``mallsim mall`` on
free ports), a real hub whose police link is the MQTT listener of a real nats-server with
JetStream, the real patrol service (workers and web) on the same NATS, and a police-platform
simulator on the same listener that validates every message the hub sends against the
published schemas.

The hub reads ``config/demo.yaml`` as ``mallhub demo`` does, with one change: it looks at
the cameras' pictures (its video checks) when the test asks, not every minute, so a camera's
picture is judged exactly when the test has covered or uncovered it. Devices are still probed
on the demo's schedule, which keeps the panels' supervision current.

Every process started here is stopped when the world closes, whether the test passed or not.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from hub.app import Hub
from hub.broker import free_port
from hub.config import SiteConfig, parse_config
from patrol.auth import add_user
from patrol.natsnode import NatsCluster
from patrol.service import PatrolService
from simulators.camera import CameraConfig, SimCamera
from simulators.police import PolicePlatform
from tests.notices.mall import cameras_warm
from tests.patrol.citytest import patrol_config
from tests.support.wait import wait_until
from tests.web.webtest import add_users

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "demo.yaml"
SITE = "demo-mall"
CAMERAS = 8
COVERED = "cam-gate-north"
"""The camera the officer finds covered: the north gate, a required place."""
COVERED_FAULT = "covered"
OFFICER = {"name": "李警官", "id": "110101", "unit": "金水分局"}
OFFICER_LOGIN = "li"
ORPHAN_LIMIT_S = 1800
"""The simulated mall stops by itself after this long (longer than any test's timeout)."""
MALL_START_S = 90.0
"""How long the simulated mall may take to open every camera port on a loaded machine."""


def demo_env(data_dir: Path, broker_url: str) -> dict[str, str]:
    """The variables ``config/demo.yaml`` reads, with free loopback ports and a camera
    password made for this run (as ``mallhub demo`` does)."""
    http_port = free_port()
    env = dict(os.environ)
    env.update(
        DEMO_DATA_DIR=str(data_dir),
        DEMO_HTTP_PORT=str(http_port),
        # Snapshot URLs in the hub's messages name its console.
        DEMO_PUBLIC_URL=f"http://127.0.0.1:{http_port}",
        DEMO_SIA_PORT=str(free_port()),
        DEMO_PA_PORT=str(free_port()),
        DEMO_CAMERA_PASSWORD=secrets.token_urlsafe(12),
        DEMO_BROKER_URL=broker_url,
        # Debian's nats-server speaks MQTT 3.1.1 only (docs/patrol.md).
        DEMO_MQTT_PROTOCOL="3.1.1",
        PYTHONUNBUFFERED="1",
    )
    for i in range(1, CAMERAS + 1):
        env[f"DEMO_CAM{i}_PORT"] = str(free_port())
    return env


def demo_site(path: Path) -> dict[str, Any]:
    """The demo mall's config with video checks on demand, written to ``path`` (the mall
    simulator reads the same file) and returned as data."""
    data = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    data["health"] = {**data.get("health", {}), "video_interval_s": 3600}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return dict(data)


async def warm_video(faults: Sequence[str]) -> None:
    """Encode the video loops a demo camera plays with ``faults`` into the simulators' file
    cache now. Encoding a covered 1080p loop takes the mall process tens of seconds on a
    loaded machine; done while it serves, it would stall every camera and panel in it."""
    cam = SimCamera(
        CameraConfig(name="warm-up", username="", password="", faults=frozenset(faults))
    )
    await cam.video_ready()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@asynccontextmanager
async def mall_process(
    config: Path, env: dict[str, str], ports: Sequence[int], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``mallsim mall --config CONFIG`` (the quiet scenario: panels supervised, nobody presses
    a button) until every camera port accepts connections; stopped (SIGTERM, then SIGKILL)
    on the way out whatever happened."""
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "simulators.cli",
            "mall",
            "--config",
            str(config),
            # Should this process be killed before it can stop the mall, the mall still ends.
            "--duration",
            str(ORPHAN_LIMIT_S),
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        waiting = list(ports)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MALL_START_S
        while waiting:
            if proc.returncode is not None:
                raise RuntimeError(f"mallsim mall exited with {proc.returncode}:\n{_tail(log)}")
            if loop.time() > deadline:
                raise RuntimeError(f"mallsim mall: port {waiting[0]} not open:\n{_tail(log)}")
            if await asyncio.to_thread(_port_open, waiting[0]):
                waiting.pop(0)
            else:
                await asyncio.sleep(0.2)
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@dataclass
class RoundTrip:
    """Everything of one round trip, started and settled."""

    nats: NatsCluster
    hub: Hub
    patrol: PatrolService
    police: PolicePlatform
    env: dict[str, str]
    officer_password: str

    @property
    def patrol_url(self) -> str:
        assert self.patrol.web is not None
        return self.patrol.web.url

    def camera_port(self, camera_id: str) -> int:
        cam = next(c for c in self.hub.config.devices.cameras if c.id == camera_id)
        return int(cam.port)

    async def camera_faults(
        self, camera_id: str, set_: Sequence[str] = (), clear: Sequence[str] = ()
    ) -> list[str]:
        """Switch a simulated camera's faults through its control API (``/sim/faults``);
        returns the faults it has now."""
        url = f"http://127.0.0.1:{self.camera_port(camera_id)}/sim/faults"
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, json={"set": list(set_), "clear": list(clear)}) as r,
        ):
            assert r.status == 200, await r.text()
            return list((await r.json())["faults"])

    async def look_at(self, camera_id: str) -> str:
        """The hub looks at the camera's picture now (its video check, then a probe), as its
        schedule would; returns the camera's state afterwards."""
        await self.hub.health.scheduler.run_now(f"video:{camera_id}")
        await self.hub.health.probe_now([camera_id])
        return self.hub.health.machines[camera_id].state

    async def statuses(self) -> dict[str, str]:
        """Rule → status, evaluated now."""
        result = await self.hub.compliance.evaluate_now()
        return {r.rule_id: str(r.status) for r in result.rules}

    async def command(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A command as the police platform sends it, over NATS's MQTT listener."""
        return await self.police.command(SITE, name, body, within=90)


async def _settle(hub: Hub) -> None:
    """Every device answered once, every camera gave a picture and had its picture looked at
    once (the first look learns its baseline), so what follows starts from a steady state."""
    health = hub.health
    cameras = tuple(c.id for c in hub.config.devices.cameras)

    async def all_online() -> bool:
        states = {d["device_id"]: d["state"] for d in await health.probe_now()}
        return all(s == "online" for s in states.values())

    await wait_until(all_online, within=120, interval=1, what="every demo device online")
    # A simulated camera builds its scene at its first picture: slow on a loaded machine,
    # and not what the round trip is about.
    await cameras_warm(hub, cameras)
    await asyncio.gather(*(health.scheduler.run_now(f"video:{c}") for c in cameras))
    await wait_until(
        lambda: all("findings" in health.details.get(c, {}) for c in cameras),
        within=60,
        what="every camera's first video check",
    )


@asynccontextmanager
async def round_trip(
    nats: NatsCluster,
    tmp_path: Path,
    *,
    more_malls: Sequence[dict[str, str]] = (),
    **patrol_settings: Any,
) -> AsyncIterator[RoundTrip]:
    """Start the patrol service (``patrol_settings``: more of its config; ``more_malls``:
    malls it knows besides the demo mall, without a hub), the demo mall, the hub and the
    police simulator on ``nats``; settle; yield. Stops everything in the reverse order."""
    env = demo_env(tmp_path / "hub", nats.mqtt_urls[0])
    config_path = tmp_path / "demo-mall.yaml"
    data = demo_site(config_path)
    cfg: SiteConfig = parse_config(data, env=env)
    ports = [int(c.port) for c in cfg.devices.cameras]
    pc = patrol_config(
        nats,
        tmp_path,
        malls=[
            {
                "site_id": SITE,
                "name": cfg.site.name,
                "district": "金水区",
                "console_url": env["DEMO_PUBLIC_URL"],
            },
            *more_malls,
        ],
        **patrol_settings,
    )
    password = secrets.token_urlsafe(12)
    for faults in ((), (COVERED_FAULT,)):
        await warm_video(faults)
    async with AsyncExitStack() as stack:
        patrol = await stack.enter_async_context(PatrolService(pc))
        assert patrol.store is not None
        await add_user(patrol.store.engine, OFFICER_LOGIN, "officer", password, OFFICER["name"])
        await stack.enter_async_context(
            mall_process(config_path, env, ports, tmp_path / "mall.log")
        )
        # The patrol service sends the receipts; the simulator only watches and commands.
        police = await stack.enter_async_context(
            PolicePlatform(nats.mqtt_urls[0], site=SITE, receipts=False)
        )
        await asyncio.wait_for(police.connected.wait(), 30)
        hub = await stack.enter_async_context(Hub(cfg))
        await wait_until(lambda: hub.police.state.connected, within=30, what="police link up")
        await add_users(hub)
        await _settle(hub)
        yield RoundTrip(nats, hub, patrol, police, env, password)
