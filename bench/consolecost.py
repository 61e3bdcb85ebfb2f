"""What one console request costs the hub's process in CPU, request by request.

One ``mallhub run`` with ``--cameras`` simulated cameras (health probes and video checks
running) and a store filled with ``--panels`` × ``--alarms`` alarms first. Then, for each of
the requests ``bench busy`` loads the console with (the event list, the devices, the
compliance status, ``/metrics``), ``--requests`` of them one after another from one client,
each timed by the hub's process CPU (all its threads, from ``/proc``) and the client's wall
clock. The health scheduler keeps running meanwhile, so its own CPU is part of each figure:
an idle round (no requests, same duration) measures that share and is subtracted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.busy import _camera, _http_port, _viewer_token
from bench.common import (
    Broker,
    HubProcess,
    print_machine,
    process_cpu_seconds,
    sia_port,
    site_config,
    table,
    workdir,
)
from bench.consoleload import PATHS
from bench.health import CameraProcess
from bench.siacompare import drive, round_frames


async def _idle_cpu_per_s(pid: int, seconds: float) -> float:
    cpu0, t0 = process_cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    return (process_cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    broker = Broker(work)
    broker.start()
    password = secrets.token_urlsafe(16)
    cams = CameraProcess(args.cameras, password)
    hub: HubProcess | None = None
    out: dict[str, Any] = {}
    try:
        ports = await cams.ready()
        cfg = site_config(
            broker_url=broker.url,
            data_dir=work / "data",
            sia_port=sia_port(),
            panels=args.panels,
            cameras=[_camera(i, p, password) for i, p in enumerate(ports)],
            health={"camera_interval_s": 10.0, "video_interval_s": 30.0, "jitter": 0.1},
        )
        hub = HubProcess(cfg, work)
        token = _viewer_token(hub)
        hub.start()
        await hub.ready()
        url = f"http://127.0.0.1:{await _http_port(hub)}"
        run = await drive(hub.sia_port, round_frames(args.panels, args.alarms, 0), 600.0)
        out["stored_alarms"] = len(run.latencies)
        # The first health cycle (WSDL parsing, first connections) is not typical.
        await asyncio.sleep(args.warmup)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            for path in PATHS:
                cpu_ms: list[float] = []
                wall_ms: list[float] = []
                size = 0
                for i in range(args.requests + 3):
                    cpu0, t0 = process_cpu_seconds(hub.pid), time.perf_counter()
                    async with session.get(url + path) as resp:
                        body = await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"{path}: HTTP {resp.status}: {body[:200]!r}")
                    wall, cpu = time.perf_counter() - t0, process_cpu_seconds(hub.pid) - cpu0
                    if i >= 3:  # the first answers warm caches and imports
                        wall_ms.append(wall * 1e3)
                        cpu_ms.append(cpu * 1e3)
                    size = len(body)
                    await asyncio.sleep(args.gap)
                out[path] = {
                    "cpu_ms_mean": statistics.fmean(cpu_ms),
                    "wall_ms_median": statistics.median(wall_ms),
                    "bytes": size,
                }
        # The hub's own background CPU (health cycle) over as long as the requests took.
        out["background_cpu_ms_per_s"] = await _idle_cpu_per_s(hub.pid, 10.0) * 1e3
    finally:
        if hub is not None:
            hub.stop()
        cams.stop()
        broker.stop()
    return out


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    print(
        f"Console requests on a hub with {args.cameras} cameras and {r['stored_alarms']} "
        f"stored alarms; {args.requests} requests each, one at a time, {args.gap * 1e3:.0f} ms "
        "apart"
    )
    bg = r["background_cpu_ms_per_s"] / 1e3
    rows = [
        [
            p,
            r[p]["cpu_ms_mean"],
            r[p]["cpu_ms_mean"] - bg * r[p]["wall_ms_median"],
            r[p]["wall_ms_median"],
            r[p]["bytes"],
        ]
        for p in PATHS
    ]
    headers = ["request", "hub CPU ms (mean)", "less background", "wall ms (median)", "bytes"]
    print(table(headers, rows))
    print(
        f"the hub's background CPU (health cycle), idle: {r['background_cpu_ms_per_s']:.1f} ms/s "
        '(part of each figure above; "less background" takes out its share of the wall time)'
    )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cameras", type=int, default=50, help="cameras (default 50)")
    p.add_argument("--panels", type=int, default=50, help="panels (default 50)")
    p.add_argument("--alarms", type=int, default=80, help="alarms stored per panel (default 80)")
    p.add_argument("--requests", type=int, default=40, help="requests per kind (default 40)")
    p.add_argument("--gap", type=float, default=0.02, help="seconds between requests")
    p.add_argument("--warmup", type=float, default=20.0, help="seconds before measuring")
    p.add_argument("--keep", action="store_true", help="keep the working directory")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    print_machine()
    with workdir("consolecost", args.keep) as work:
        r = await measure(args, work)
    report(args, r)
    return r
