"""Health-check scale over RTSP: N simulated cameras streaming H.264, the hub's liveness cycle
and video checks, CPU and peak memory, against a naive baseline measured in the same run.

The cameras run in their own process (``python -m simulators.cli camera --count N``), so this
process holds only the hub side. Each camera serves ONVIF, a 1920x1080 H.264 main stream and
a 640x360 sub-stream over RTSP (Digest), 25 fps, GOP 2 s, from loops encoded once (a camera's
hardware encoder costs the host nothing). The hub's ``HealthService`` (inside a real ``Hub``
with its store and police link) runs:

- the liveness cycle: every camera probe (ONVIF connect, clock, device info, profiles, stream
  and snapshot URIs, and an RTSP DESCRIBE of the main stream);
- every camera's video check: the main stream measured (frame rate from its timestamps,
  codec, size; nothing decoded) and the picture judged on the sub-stream's key frames.

Both run twice: cold (first connects, WSDL parsing, video baselines learnt from decoded
frames) and warm (what every later cycle costs). From the warm video checks' CPU the bench
projects the hub's average CPU with every camera's picture judged once per 300 s.

Baseline in the same run: the naive way, one OpenCV ``VideoCapture`` open-read-close of each
camera's main RTSP stream after the other (``--baseline-cameras`` of them, extrapolated).

Goals: liveness cycle ≤ 15 s; every picture judged within 300 s with the hub's CPU under one
core on average; the hub process's peak RSS ≤ 500 MB.
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
VIDEO_INTERVAL_S = 300.0
CPU_GOAL_CORES = 1.0
PEAK_GOAL_MB = 500.0
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
        self.rtsp: list[str] = []

    async def ready(self) -> list[int]:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        while len(self.ports) < self.count:
            line = await asyncio.to_thread(stdout.readline)
            if not line:
                raise RuntimeError("the camera simulator exited")
            fields = line.split("\t")
            self.ports.append(int(fields[1].split(":")[2].split("/")[0]))
            self.rtsp.append(fields[2])
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
            health = hub.health
            assert isinstance(health, HealthService)
            ids = [c["id"] for c in data["devices"]["cameras"]]
            for label in ("cold", "warm"):
                cpu0, sim0 = _cpu_s(), _proc_cpu_s(sim_pid)
                started = time.perf_counter()
                await health.probe_now(ids)
                probed = time.perf_counter()
                probe_cpu = _cpu_s() - cpu0
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
                    "probe_cpu_s": probe_cpu,
                    "video_cpu_s": hub_cpu - probe_cpu,
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


def _naive_read(url: str) -> bool:
    import cv2

    cap = cv2.VideoCapture(
        url,
        cv2.CAP_FFMPEG,
        [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 10000],
    )
    try:
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        return bool(ok) and frame is not None
    finally:
        cap.release()


async def _naive(urls: list[str], password: str, sim_pid: int) -> dict[str, Any]:
    """The obvious loop: OpenCV opens each camera's main stream, reads a frame, closes it."""
    ok = failed = 0
    peak_before = _peak_mb()
    cpu0, sim0 = _cpu_s(), _proc_cpu_s(sim_pid)
    started = time.perf_counter()
    for url in urls:
        full = url.replace("rtsp://", f"rtsp://{USER}:{password}@", 1)
        if await asyncio.to_thread(_naive_read, full):
            ok += 1
        else:
            failed += 1
    elapsed = time.perf_counter() - started
    return {
        "cameras": len(urls),
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
        base = await _naive(cams.rtsp[:n_base], password, cams.proc.pid)
    finally:
        cams.stop()
    n = len(ports)
    scale = n / max(base["cameras"], 1)
    naive_full = base["cycle_s"] * scale
    warm = hub["warm"]
    peak = max(hub["cold"]["peak_mb"], warm["peak_mb"])
    per_check_cpu = warm["video_cpu_s"] / max(n, 1)
    per_check_s = warm["video_s"] * hub["video_concurrency"] / max(n, 1)
    naive_cpu = base["cpu_s"] / max(base["cameras"], 1)
    naive_s = base["cycle_s"] / max(base["cameras"], 1)
    # Every camera judged once per VIDEO_INTERVAL_S: the hub's average CPU from video checks,
    # plus one liveness cycle per camera_interval (60 s by default).
    video_cores = per_check_cpu * n / VIDEO_INTERVAL_S
    probe_cores = warm["probe_cpu_s"] / 60.0
    rows = [
        [
            f"hub {label} cycle",
            n,
            hub[label]["probes_s"],
            hub[label]["probe_cpu_s"],
            hub[label]["video_s"],
            hub[label]["video_cpu_s"],
            hub[label]["simulator_cpu_s"],
            hub[label]["peak_mb"],
        ]
        for label in ("cold", "warm")
    ]
    rows.append(
        [
            f"naive OpenCV open-read-close, in sequence ({base['ok']} ok, {base['failed']} failed)",
            base["cameras"],
            "-",
            "-",
            base["cycle_s"],
            base["cpu_s"],
            base["simulator_cpu_s"],
            f"+{base['peak_growth_mb']:.0f}",
        ]
    )
    print()
    headers = ["path", "cameras", "liveness s", "liveness CPU s", "video s", "video CPU s"]
    print(table([*headers, "simulator CPU s", "peak RSS MB"], rows))
    print(
        f"(video_concurrency {hub['video_concurrency']}; CPU s = this process: the hub, "
        "or the naive loop)"
    )
    print(
        f"per camera: hub video check {per_check_cpu * 1e3:.0f} ms CPU, "
        f"{per_check_s:.1f} s wall; naive read {naive_cpu * 1e3:.0f} ms CPU, {naive_s:.1f} s wall"
    )
    if base["cameras"] != n:
        print(f"(naive loop extrapolated to {n} cameras: {naive_full:.0f} s)")
    within = warm["video_s"] <= VIDEO_INTERVAL_S
    goals = [
        [
            "liveness cycle ≤ 15 s (warm)",
            f"{warm['probes_s']:.1f} s",
            verdict(warm["probes_s"] <= CYCLE_GOAL_S),
        ],
        [
            "every picture judged within 300 s",
            f"{warm['video_s']:.1f} s (naive: {naive_full:.0f} s)",
            verdict(within),
        ],
        [
            "hub CPU < 1 core on average (video every 300 s + liveness every 60 s)",
            f"{video_cores + probe_cores:.2f} cores",
            verdict(video_cores + probe_cores < CPU_GOAL_CORES),
        ],
        ["peak RSS ≤ 500 MB", f"{peak:.0f} MB", verdict(peak <= PEAK_GOAL_MB)],
    ]
    print()
    print(table(["goal", "measured", "verdict"], goals))
    return {
        "cameras": n,
        "hub": hub,
        "naive": base,
        "naive_full_s": naive_full,
        "per_check_cpu_s": per_check_cpu,
        "naive_per_camera_cpu_s": naive_cpu,
        "projected_cores": video_cores + probe_cores,
    }
