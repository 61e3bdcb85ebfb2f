"""Health-check scale over RTSP: N simulated cameras streaming H.264, the hub's liveness cycle
and video checks on its own schedule, CPU and peak memory, against a naive baseline measured
in the same run.

The cameras run in their own process (``python -m simulators.cli camera --count N``), so this
process holds only the hub side. Each camera serves ONVIF, a 1920x1080 H.264 main stream and
a 640x360 sub-stream over RTSP (Digest), 25 fps, GOP 2 s, from loops encoded once (a camera's
hardware encoder costs the host nothing). A real ``Hub`` (store, police link) runs its
``HealthService`` with the default intervals: liveness every 60 s, video every 300 s.

Phases, in order:

- *start*: the hub starts; every camera gets its first (full) probe and, once it answered,
  its first video check (baselines learnt from decoded frames), as fast as the video pool
  allows: the burst a hub restart causes;
- *full probe cycle*: every camera's full probe at once (clock, device information,
  profiles, stream and snapshot URIs, DESCRIBE), as the hub runs it once per video interval;
- *liveness cycle*: every camera's liveness probe at once (clock and DESCRIBE), the goal;
- *steady*: one video interval of the hub left to its scheduler (the video checks in their
  slots, the liveness probes every 60 s): every camera's picture must be judged within it,
  and the hub's CPU over it is the average the goal is about.

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
CAMERA_INTERVAL_S = 60.0
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
        "--video-interval",
        type=float,
        default=VIDEO_INTERVAL_S,
        help=f"health.video_interval_s, the steady phase's length (default {VIDEO_INTERVAL_S:g})",
    )
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


def _states(health: Any, ids: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """(state → cameras, "state: reason" → cameras not online)."""
    states: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for c in ids:
        m = health.machines[c]
        states[m.state] = states.get(m.state, 0) + 1
        if m.state != "online":
            why = f"{m.state}: {m.reason}"
            reasons[why] = reasons.get(why, 0) + 1
    return states, reasons


def _report(label: str, phase: dict[str, Any], reasons: dict[str, int]) -> None:
    print(
        f"hub {label}: {phase['wall_s']:.1f} s, CPU {phase['cpu_s']:.1f} s, "
        f"states {phase['states']}, peak {phase['peak_mb']:.0f} MB",
        flush=True,
    )
    for why, n in sorted(reasons.items()):
        print(f"  {n} × {why}", flush=True)


async def _probe_cycle(health: Any, ids: list[str], *, full: bool) -> dict[str, Any]:
    """Every camera probed at once: the full probe (``full``) or the liveness probe."""
    if full:
        for c in ids:
            health._cameras[c].full_probe_at = None  # due: as once per video interval
    before = {c: health._cameras[c].full_probe_at for c in ids}
    cpu0, t0 = _cpu_s(), time.perf_counter()
    await health.probe_now(ids)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    kinds = sum(1 for c in ids if health._cameras[c].full_probe_at != before[c])
    states, reasons = _states(health, ids)
    out = {"wall_s": wall, "cpu_s": cpu, "states": states, "peak_mb": _peak_mb()}
    out["full_probes"] = kinds
    _report("full probe cycle" if full else "liveness cycle", out, reasons)
    return out


async def _start(health: Any, ids: list[str], limit_s: float) -> dict[str, Any]:
    """From the hub's start until every camera was probed and its picture judged once."""
    cpu0, t0 = _cpu_s(), time.perf_counter()
    cams = health._cameras

    def judged() -> bool:
        return all(
            cams[c].last_video is not None
            or (cams[c].last_probe is not None and cams[c].last_probe.error is not None)
            for c in ids
        )

    probed_s = None
    while not judged() and time.perf_counter() - t0 < limit_s:
        if probed_s is None and all(cams[c].last_probe is not None for c in ids):
            probed_s = time.perf_counter() - t0
        await asyncio.sleep(0.5)
    states, reasons = _states(health, ids)
    out = {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": _cpu_s() - cpu0,
        "probed_s": probed_s,
        "judged": sum(1 for c in ids if cams[c].last_video is not None),
        "states": states,
        "peak_mb": _peak_mb(),
    }
    _report("start (first probe and video check of every camera)", out, reasons)
    return out


def _watch_video(health: Any, ids: list[str]) -> dict[str, list[tuple[float, float]]]:
    """Camera → (start, end) of each video check from now on (each job's run wrapped)."""
    runs: dict[str, list[tuple[float, float]]] = {c: [] for c in ids}
    for c in ids:
        job = health.scheduler.jobs[f"video:{c}"]

        async def run(inner: Any = job.run, mine: list[tuple[float, float]] = runs[c]) -> None:
            started = time.perf_counter()
            try:
                await inner()
            finally:
                mine.append((started, time.perf_counter()))

        job.run = run
    return runs


async def _steady(health: Any, ids: list[str], interval: float, sim_pid: int) -> dict[str, Any]:
    """One video interval of the hub on its own schedule: which cameras had a check start in
    it (waiting for the last ones to end), the hub's CPU over exactly that interval."""
    jobs = health.scheduler.jobs
    runs = _watch_video(health, ids)
    probes0 = sum(jobs[f"camera:{c}"].runs for c in ids)
    cpu0, sim0, t0 = _cpu_s(), _proc_cpu_s(sim_pid), time.perf_counter()
    await asyncio.sleep(interval)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    sim_cpu = _proc_cpu_s(sim_pid) - sim0
    liveness = sum(jobs[f"camera:{c}"].runs for c in ids) - probes0
    started = {c for c in ids if jobs[f"video:{c}"].running}
    deadline = time.perf_counter() + 60
    # The checks that started in the interval end (the bench polls the scheduler's jobs).
    while any(jobs[f"video:{c}"].running for c in started) and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    cams = health._cameras
    checked = [c for c in ids if any(t0 <= a < t0 + wall for a, _ in runs[c])]
    judged = [c for c in checked if (v := cams[c].last_video) is not None and v.error is None]
    durations = sorted(b - a for c in ids for a, b in runs[c])
    states, reasons = _states(health, ids)
    out = {
        "wall_s": wall,
        "cpu_s": cpu,
        "simulator_cpu_s": sim_cpu,
        "cores": cpu / wall,
        "video_checks": sum(1 for c in ids for a, _ in runs[c] if t0 <= a < t0 + wall),
        "cameras_checked": len(checked),
        "cameras_judged": len(judged),
        "check_s_median": durations[len(durations) // 2] if durations else None,
        "liveness_probes": liveness,
        "states": states,
        "peak_mb": _peak_mb(),
        "rss_mb": _rss_mb(),
        "fps_measured": sorted(
            v.fps_measured for c in ids if (v := cams[c].last_video) and v.fps_measured
        ),
    }
    _report(f"steady, one video interval ({interval:g} s)", out, reasons)
    print(
        f"  {out['video_checks']} video checks started, {len(judged)}/{len(ids)} cameras "
        f"judged, {liveness} liveness probes; hub {out['cores']:.2f} cores on average",
        flush=True,
    )
    return out


async def _hub_cycles(
    ports: list[int], password: str, args: argparse.Namespace, sim_pid: int, workdir: Path
) -> dict[str, Any]:
    from hub.app import Hub
    from hub.config import parse_config
    from hub.health.service import HealthService

    broker = Broker(workdir)
    broker.start()
    try:
        vc = args.video_concurrency
        video = {} if vc is None else {"video_concurrency": vc}
        data = site_config(
            broker_url=broker.url,
            data_dir=workdir / "data",
            sia_port=0,
            cameras=[_camera(i, p, password) for i, p in enumerate(ports)],
            health={
                "camera_interval_s": CAMERA_INTERVAL_S,
                "video_interval_s": args.video_interval,
                "concurrency": args.concurrency,
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
            out["start"] = await _start(health, ids, 2 * args.video_interval)
            out["full"] = await _probe_cycle(health, ids, full=True)
            out["liveness"] = await _probe_cycle(health, ids, full=False)
            out["steady"] = await _steady(health, ids, args.video_interval, sim_pid)
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
            hub = await _hub_cycles(ports, password, args, cams.proc.pid, Path(d))
        n_base = len(ports) if args.baseline_cameras is None else args.baseline_cameras
        base = await _naive(cams.rtsp[:n_base], password, cams.proc.pid)
    finally:
        cams.stop()
    print(f"load average at the end   {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    n = len(ports)
    naive_full = base["cycle_s"] * n / max(base["cameras"], 1)
    start, full, live, steady = hub["start"], hub["full"], hub["liveness"], hub["steady"]
    peak = max(start["peak_mb"], full["peak_mb"], live["peak_mb"], steady["peak_mb"])
    naive_cpu = base["cpu_s"] / max(base["cameras"], 1)
    rows = [
        ["hub start: every camera probed and judged once", n, start["wall_s"], start["cpu_s"]],
        ["hub full probe cycle (4 SOAP calls + DESCRIBE)", n, full["wall_s"], full["cpu_s"]],
        ["hub liveness cycle (clock + DESCRIBE)", n, live["wall_s"], live["cpu_s"]],
        [
            f"hub steady, one video interval ({steady['video_checks']} video checks, "
            f"{steady['liveness_probes']} liveness probes)",
            n,
            steady["wall_s"],
            steady["cpu_s"],
        ],
        [
            f"naive OpenCV open-read-close, in sequence ({base['ok']} ok, {base['failed']} failed)",
            base["cameras"],
            base["cycle_s"],
            base["cpu_s"],
        ],
    ]
    print()
    print(table(["phase", "cameras", "wall s", "CPU s (this process)"], rows))
    print(
        f"(video_concurrency {hub['video_concurrency']}; peak RSS {peak:.0f} MB, "
        f"{hub['rss_before_mb']:.0f} MB before the hub started; simulator CPU in the steady "
        f"interval {steady['simulator_cpu_s']:.1f} s)"
    )
    per_check = start["cpu_s"] / n
    print(
        f"per camera: liveness probe {live['cpu_s'] / n * 1e3:.1f} ms CPU, full probe "
        f"{full['cpu_s'] / n * 1e3:.1f} ms; first probe + video check (learning) "
        f"{per_check * 1e3:.0f} ms; steady {steady['cpu_s'] / n * 1e3:.0f} ms per camera per "
        f"interval; naive read {naive_cpu * 1e3:.0f} ms CPU, "
        f"{base['cycle_s'] / max(base['cameras'], 1):.2f} s wall"
    )
    if base["cameras"] != n:
        print(f"(naive loop extrapolated to {n} cameras: {naive_full:.0f} s)")
    print(
        f"every camera judged: hub {start['wall_s']:.0f} s from a cold start "
        f"({naive_full / max(start['wall_s'], 1e-9):.1f}x faster than the naive loop's "
        f"{naive_full:.0f} s)"
    )
    all_judged = steady["cameras_judged"] == n
    goals = [
        [
            f"liveness cycle of {n} ≤ 15 s",
            f"{live['wall_s']:.1f} s",
            verdict(live["wall_s"] <= CYCLE_GOAL_S),
        ],
        [
            f"every picture judged within {args.video_interval:g} s",
            f"{steady['cameras_judged']}/{n} in the steady interval (naive: {naive_full:.0f} s)",
            verdict(all_judged),
        ],
        [
            "hub CPU < 1 core on average over that interval",
            f"{steady['cores']:.2f} cores",
            verdict(steady["cores"] < CPU_GOAL_CORES),
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
        "peak_mb": peak,
        "load_end": os.getloadavg(),
    }
