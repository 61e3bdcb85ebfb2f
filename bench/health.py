"""Health-check scale: one full probe cycle over N simulated cameras, and peak memory.

The cameras run in their own process (``python -m simulators.cli camera --count N``), so this
process holds only the hub side. They serve a loop of ``--jpeg-loop`` frames encoded once, as
a camera's hardware encoder costs the host nothing (``--jpeg-loop 0`` renders and encodes
every frame served, which takes the simulator ~30 ms of CPU per camera per check on the
cores the hub is measured on). Each cycle reports the CPU seconds of the hub (this process)
and of the simulator. The hub's ``HealthService`` (inside a real ``Hub`` with its
store and police link) runs one cycle: every camera probe (connect, clock, device info,
profiles, stream and snapshot URIs) and then every video check (frames from the camera,
quality judged with OpenCV). The cycle runs twice: cold (first connects, WSDL parsing, video
baselines learnt) and warm (what every later cycle costs).

Baseline in the same run: a naive sequential loop with onvif-zeep-async directly, one
``ONVIFCamera`` per camera (connect, GetSystemDateAndTime, GetProfiles, GetSnapshotUri, one
snapshot fetch). It runs after the hub, so its memory is reported as the growth it added.

Goals: a cycle ≤ 15 s, the hub process's peak RSS ≤ 400 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Broker, print_machine, site_config, table, verdict

CYCLE_GOAL_S = 15.0
PEAK_GOAL_MB = 400.0
JPEG_LOOP = 10
"""More frames than one video check reads (8 after FFmpeg's probe), so a burst never
repeats a frame."""
USER = "bench"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cameras", type=int, default=500, help="simulated cameras (default 500)")
    p.add_argument(
        "--baseline-cameras",
        type=int,
        default=None,
        help="cameras in the naive sequential loop (default: all)",
    )
    p.add_argument("--concurrency", type=int, default=32, help="health.concurrency (default 32)")
    p.add_argument(
        "--video-concurrency",
        type=int,
        default=None,
        help="health.video_concurrency (default: the config's default)",
    )
    p.add_argument(
        "--jpeg-loop",
        type=int,
        default=JPEG_LOOP,
        help=f"simulated cameras serve a loop of N frames encoded once (default {JPEG_LOOP}; "
        "0: every frame rendered and encoded when served)",
    )


def _peak_mb() -> float:
    """Peak RSS of this process so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds of this process (all its threads) so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds of another process so far (utime + stime from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class CameraProcess:
    """``python -m simulators.cli camera --count N`` and the ports it reports."""

    def __init__(self, count: int, password: str, jpeg_loop: int = 0) -> None:
        self.count = count
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulators.cli",
                "camera",
                "--count",
                str(count),
                "--user",
                USER,
                "--password-env",
                "BENCH_CAMERA_PASSWORD",
                "--jpeg-loop",
                str(jpeg_loop),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "BENCH_CAMERA_PASSWORD": password},
        )
        self.ports: list[int] = []

    async def ready(self) -> list[int]:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        while len(self.ports) < self.count:
            line = await asyncio.to_thread(stdout.readline)
            if not line:
                raise RuntimeError("the camera simulator exited")
            url = line.split("\t")[1]
            self.ports.append(int(url.split(":")[2].split("/")[0]))
        return self.ports

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _camera(i: int, port: int, password: str) -> dict[str, Any]:
    return {
        "id": f"cam-{i:04d}",
        "name": f"{i}号摄像机",
        "host": "127.0.0.1",
        "port": port,
        "username": USER,
        "password": password,
        "events": False,
        "location": {"floor": f"{i % 5 + 1}F", "zone": f"z{i % 40}", "role": "passage"},
    }


async def _hub_cycles(
    ports: list[int],
    password: str,
    concurrency: int,
    video_concurrency: int | None,
    sim_pid: int,
    workdir: Path,
) -> dict[str, Any]:
    from hub.app import Hub
    from hub.config import parse_config
    from hub.health.service import HealthService

    broker = Broker(workdir)
    broker.start()
    try:
        video = {} if video_concurrency is None else {"video_concurrency": video_concurrency}
        data = site_config(
            broker_url=broker.url,
            data_dir=workdir / "data",
            sia_port=0,
            cameras=[_camera(i, p, password) for i, p in enumerate(ports)],
            health={
                "camera_interval_s": 86400,
                "video_interval_s": 86400,
                "jitter": 0,
                "concurrency": concurrency,
                "probe_timeout_s": 10,
                **video,
            },
        )
        cfg = parse_config(data, env={})
        out: dict[str, Any] = {
            "rss_before_mb": _rss_mb(),
            "video_concurrency": cfg.health.video_concurrency,
        }
        async with Hub(cfg) as hub:
            health = hub.parts["health"]
            assert isinstance(health, HealthService)
            ids = [c["id"] for c in data["devices"]["cameras"]]
            for label in ("cold", "warm"):
                cpu0, sim0 = _cpu_s(), _proc_cpu_s(sim_pid)
                started = time.perf_counter()
                await health.probe_now(ids)
                probed = time.perf_counter()
                await asyncio.gather(*(health.scheduler.run_now(f"video:{c}") for c in ids))
                done = time.perf_counter()
                hub_cpu, sim_cpu = _cpu_s() - cpu0, _proc_cpu_s(sim_pid) - sim0
                states: dict[str, int] = {}
                reasons: dict[str, int] = {}
                for c in ids:
                    st = health.machines[c].state
                    states[st] = states.get(st, 0) + 1
                    if st != "online":
                        why = f"{st}: {health.machines[c].reason}"
                        reasons[why] = reasons.get(why, 0) + 1
                outcomes = [health._cameras[c].last_video for c in ids]
                video_ok = sum(1 for v in outcomes if v is not None and v.error is None)
                out[label] = {
                    "probes_s": probed - started,
                    "video_s": done - probed,
                    "cycle_s": done - started,
                    "states": states,
                    "not_online": reasons,
                    "video_ok": video_ok,
                    "rss_mb": _rss_mb(),
                    "peak_mb": _peak_mb(),
                    "hub_cpu_s": hub_cpu,
                    "simulator_cpu_s": sim_cpu,
                    "fps_measured": sorted(
                        v.fps_measured for v in outcomes if v is not None and v.fps_measured
                    ),
                }
                print(
                    f"hub {label} cycle: {done - started:.1f} s "
                    f"(probes {probed - started:.1f} s, video {done - probed:.1f} s), "
                    f"states {states}, video ok {video_ok}/{len(ids)}, "
                    f"CPU: hub {hub_cpu:.1f} s, simulator {sim_cpu:.1f} s; "
                    f"peak {_peak_mb():.0f} MB",
                    flush=True,
                )
                for why, n in sorted(reasons.items()):
                    print(f"  {n} × {why}", flush=True)
        return out
    finally:
        broker.stop()


async def _naive(ports: list[int], password: str, sim_pid: int) -> dict[str, Any]:
    """The obvious loop with onvif-zeep-async: one camera after the other."""
    import aiohttp
    from onvif import ONVIFCamera

    ok = failed = 0
    peak_before = _peak_mb()
    cpu0, sim0 = _cpu_s(), _proc_cpu_s(sim_pid)
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        for port in ports:
            cam = ONVIFCamera("127.0.0.1", port, USER, password, no_cache=True)
            try:
                async with asyncio.timeout(10):
                    await cam.update_xaddrs()
                    device = await cam.create_devicemgmt_service()
                    await device.GetSystemDateAndTime()
                    media = await cam.create_media_service()
                    profiles = await media.GetProfiles()
                    uri = await media.GetSnapshotUri({"ProfileToken": profiles[0].token})
                    async with http.get(uri.Uri, auth=aiohttp.BasicAuth(USER, password)) as r:
                        body = await r.read()
                        if r.status != 200 or not body:
                            raise RuntimeError(f"snapshot HTTP {r.status}")
                ok += 1
            except Exception:  # a benchmark counts failures, it does not stop on them
                failed += 1
            finally:
                await cam.close()
    elapsed = time.perf_counter() - started
    return {
        "cameras": len(ports),
        "ok": ok,
        "failed": failed,
        "cycle_s": elapsed,
        "cpu_s": _cpu_s() - cpu0,
        "simulator_cpu_s": _proc_cpu_s(sim_pid) - sim0,
        "peak_growth_mb": _peak_mb() - peak_before,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    print_machine()
    password = secrets.token_urlsafe(16)
    cams = CameraProcess(args.cameras, password, args.jpeg_loop)
    try:
        t = time.perf_counter()
        ports = await cams.ready()
        print(f"{len(ports)} simulated cameras up in {time.perf_counter() - t:.1f} s", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-health-") as d:
            hub = await _hub_cycles(
                ports, password, args.concurrency, args.video_concurrency, cams.proc.pid, Path(d)
            )
        n_base = len(ports) if args.baseline_cameras is None else args.baseline_cameras
        base = await _naive(ports[:n_base], password, cams.proc.pid)
    finally:
        cams.stop()
    scale = len(ports) / max(base["cameras"], 1)
    naive_full = base["cycle_s"] * scale
    peak = hub["warm"]["peak_mb"]
    rows = [
        [
            "hub cold cycle (connect, learn baselines)",
            len(ports),
            hub["cold"]["probes_s"],
            hub["cold"]["video_s"],
            hub["cold"]["cycle_s"],
            hub["cold"]["hub_cpu_s"],
            hub["cold"]["simulator_cpu_s"],
            hub["cold"]["peak_mb"],
        ],
        [
            "hub warm cycle",
            len(ports),
            hub["warm"]["probes_s"],
            hub["warm"]["video_s"],
            hub["warm"]["cycle_s"],
            hub["warm"]["hub_cpu_s"],
            hub["warm"]["simulator_cpu_s"],
            hub["warm"]["peak_mb"],
        ],
        [
            f"naive sequential onvif-zeep-async ({base['ok']} ok, {base['failed']} failed)",
            base["cameras"],
            base["cycle_s"],
            "-",
            base["cycle_s"],
            base["cpu_s"],
            base["simulator_cpu_s"],
            f"+{base['peak_growth_mb']:.0f}",
        ],
    ]
    print()
    headers = ["path", "cameras", "probes s", "video s", "cycle s", "CPU s", "simulator CPU s"]
    print(table([*headers, "peak RSS MB"], rows))
    print(
        f"(video_concurrency {hub['video_concurrency']}; CPU s = this process: the hub, "
        "or the naive loop)"
    )
    if base["cameras"] != len(ports):
        print(f"(naive loop extrapolated to {len(ports)} cameras: {naive_full:.0f} s)")
    goals = [
        [
            "cycle ≤ 15 s (warm)",
            f"{hub['warm']['cycle_s']:.1f} s",
            verdict(hub["warm"]["cycle_s"] <= CYCLE_GOAL_S),
        ],
        [
            "cycle ≤ 15 s (cold)",
            f"{hub['cold']['cycle_s']:.1f} s",
            verdict(hub["cold"]["cycle_s"] <= CYCLE_GOAL_S),
        ],
        ["peak RSS ≤ 400 MB", f"{peak:.0f} MB", verdict(peak <= PEAK_GOAL_MB)],
    ]
    print()
    print(table(["goal", "measured", "verdict"], goals))
    return {"cameras": len(ports), "hub": hub, "naive": base, "naive_full_s": naive_full}
