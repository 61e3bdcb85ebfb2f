"""A whole simulated mall from a site config: ONVIF cameras, alarm panels, broadcast.

Reads the same YAML the hub reads (with its own small ``${VAR:-default}`` expansion: the
simulators share no code with the hub) and starts one fake per configured device. In the
``demo`` scenario the panels keep themselves supervised and a random emergency button is
pressed every few seconds, then restored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import re
import signal
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import yaml

from simulators.camera import CameraConfig, SimCamera
from simulators.panel import PanelSimulator

log = logging.getLogger(__name__)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(tree: Any, env: Mapping[str, str]) -> Any:
    """``${VAR}`` / ``${VAR:-default}`` in every string; unset without default → ""."""
    if isinstance(tree, str):
        return _VAR.sub(lambda m: env.get(m.group(1), m.group(2) or ""), tree)
    if isinstance(tree, dict):
        return {k: expand(v, env) for k, v in tree.items()}
    if isinstance(tree, list):
        return [expand(v, env) for v in tree]
    return tree


def _key_bytes(text: str, fmt: str) -> bytes:
    return text.encode("ascii") if fmt == "ascii" else bytes.fromhex(text)


@dataclass(slots=True)
class Button:
    name: str
    device_id: str
    panel: PanelSimulator
    zone: int
    kind: str


@dataclass(slots=True)
class MallSimulator:
    """Starts every configured device's fake. An async context manager."""

    site: dict[str, Any]
    hub_host: str = "127.0.0.1"
    bind: str = "127.0.0.1"
    camera_codec: str = "h264"
    """Main-stream codec of the cameras: h264, h265, or mixed (every second camera H.265,
    as in a mall with two generations of cameras); sub-streams are H.264."""
    cameras: dict[str, SimCamera] = field(default_factory=dict)
    panels: dict[str, PanelSimulator] = field(default_factory=dict)
    buttons: list[Button] = field(default_factory=list)
    broadcast: dict[str, Any] = field(default_factory=dict)
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    @classmethod
    def from_file(
        cls,
        path: Path,
        env: Mapping[str, str] | None = None,
        hub_host: str = "127.0.0.1",
        bind: str = "127.0.0.1",
        camera_codec: str = "h264",
    ) -> MallSimulator:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a site config")
        return cls(expand(data, os.environ if env is None else env), hub_host, bind, camera_codec)

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        devices = self.site.get("devices") or {}
        for i, cam in enumerate(devices.get("cameras") or []):
            presets = {str(tok): str(name) for name, tok in (cam.get("ptz_presets") or {}).items()}
            sim = SimCamera(
                CameraConfig(
                    name=str(cam["id"]),
                    username=str(cam.get("username") or ""),
                    password=str(cam.get("password") or ""),
                    host=self.bind,
                    port=int(cam.get("port", 0)),
                    presets=presets or {"1": "Home"},
                    relays=tuple(cam.get("relays") or ("RelayOutput_1",)),
                    seed=i,
                    encoding=self._codec(i),
                )
            )
            await self._stack.enter_async_context(sim)
            self.cameras[str(cam["id"])] = sim
        # Cameras play shared encoded loops: have them ready before the hub asks.
        for codec in sorted({sim.config.encoding for sim in self.cameras.values()}):
            await next(s for s in self.cameras.values() if s.config.encoding == codec).video_ready()
        receiver = self.site.get("alarm_receiver") or {}
        port = int(receiver.get("tcp_port", 10001))
        for p in devices.get("alarm_panels") or []:
            key = p.get("key")
            interval = p.get("supervision_interval_s")
            panel = PanelSimulator(
                self.hub_host,
                port,
                str(p["account"]),
                key=_key_bytes(str(key), str(p.get("key_format", "hex"))) if key else None,
                supervision_every=float(interval) / 2 if interval else None,
                reconnect_max=2.0,
            )
            await self._stack.enter_async_context(panel)
            self.panels[str(p["id"])] = panel
            for z in p.get("zones") or []:
                self.buttons.append(
                    Button(
                        str(z["name"]),
                        str(z["id"]),
                        panel,
                        int(z["zone"]),
                        str(z.get("type", "alarm_button")),
                    )
                )
        for b in devices.get("broadcast") or []:
            await self._start_broadcast(b)

    def _codec(self, index: int) -> str:
        if self.camera_codec == "mixed":
            return "H265" if index % 2 else "H264"
        return self.camera_codec.upper()

    async def _start_broadcast(self, ctrl: dict[str, Any]) -> None:
        from simulators.broadcast import BroadcastSimulator

        url = urlsplit(str(ctrl.get("url", "")))
        zones = [str(z.get("target") or z["id"]) for z in ctrl.get("zones") or []]
        kwargs: dict[str, Any] = {"zones": zones, "host": self.bind}
        if ctrl.get("driver", "http") == "http":
            kwargs["http_port"] = url.port or 80
        else:
            kwargs["sip_port"] = url.port or 5060
        sim = BroadcastSimulator(**kwargs)
        await self._stack.enter_async_context(sim)
        self.broadcast[str(ctrl["id"])] = sim

    def press_random(self, rng: random.Random) -> Button | None:
        buttons = [b for b in self.buttons if b.kind == "alarm_button"]
        if not buttons:
            return None
        button = rng.choice(buttons)
        button.panel.press(button.zone)
        return button


async def demo_scenario(mall: MallSimulator, every: float, first_after: float) -> None:
    """Press a random button every ``every`` seconds (restored five seconds later)."""
    rng = random.Random()
    await asyncio.sleep(first_after)
    while True:
        button = mall.press_random(rng)
        if button is None:
            return
        print(f"mall: 按下 {button.name} ({button.device_id})", flush=True)
        await asyncio.sleep(min(5.0, every / 2))
        button.panel.restore(button.zone)
        await asyncio.sleep(max(0.5, every - min(5.0, every / 2)))


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, help="site config (YAML)")
    p.add_argument("--hub", default="127.0.0.1", help="address of the hub's alarm receiver")
    p.add_argument("--bind", default="127.0.0.1", help="address the fake devices listen on")
    p.add_argument(
        "--scenario", choices=("demo", "quiet"), default="quiet", help="what the mall does"
    )
    p.add_argument("--press-every", type=float, default=20.0, help="demo: seconds between presses")
    p.add_argument("--first-press", type=float, default=3.0, help="demo: first press after S")
    p.add_argument("--duration", type=float, help="stop after S seconds")
    p.add_argument(
        "--camera-codec",
        choices=("h264", "h265", "mixed"),
        default="h264",
        help="cameras' main streams: H.264, H.265, or every second camera H.265",
    )


async def run(args: argparse.Namespace) -> int:
    try:
        mall = MallSimulator.from_file(
            args.config, hub_host=args.hub, bind=args.bind, camera_codec=args.camera_codec
        )
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"mallsim mall: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with mall:
            print(
                f"mall: {len(mall.cameras)} cameras, {len(mall.panels)} panels "
                f"({len(mall.buttons)} zones), {len(mall.broadcast)} broadcast controller(s)",
                flush=True,
            )
            async with asyncio.TaskGroup() as tg:
                scenario = None
                if args.scenario == "demo":
                    scenario = tg.create_task(
                        demo_scenario(mall, args.press_every, args.first_press), name="scenario"
                    )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(args.duration):
                        await stop.wait()
                if scenario is not None:
                    scenario.cancel()
    except OSError as exc:
        print(f"mallsim mall: cannot start a device: {exc}", file=sys.stderr)
        return 1
    return 0
