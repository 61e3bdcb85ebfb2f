"""Does a busy console or a health cycle slow the alarm path? Alarm bursts, quiet and busy.

Two ``mallhub run`` processes on one broker, alike but for their cameras: hub **Q** has
none; hub **H** has ``--cameras`` simulated cameras (ONVIF + RTSP H.264, in their own
process, ``python -m simulators.cli camera``) probed every ``--camera-interval`` seconds
and video-checked every ``--video-interval`` seconds, so its health scheduler is at work
throughout. Rounds alternate four conditions, each an alarm burst of ``--panels`` panels ×
``--alarms`` alarms (each panel waiting for its ACK, as in ``bench siacompare``):

- **quiet**: hub Q, nothing else;
- **console**: hub Q while ``--clients`` console clients (HTTP, a viewer's API token, in a
  process of their own: ``bench/consoleload.py``) ask for the event list, the devices, the
  compliance status and the metrics back to back;
- **health**: hub H, its health cycle running;
- **both**: hub H with the console clients;
- **health_inline** (with ``--worker both``): hub **I**, like H but with its camera checks
  in the hub's own process (``health.camera_worker: inline``), its health cycle running.

H has its camera checks in its camera-health worker process (``--worker process``, the
default, as ``mallhub run``); ``--worker inline`` runs H's inline. With ``--worker both`` H
and I run side by side throughout, so every condition is measured with both health cycles
in the background. The hub's CPU per alarm is the hub process's alone, not its worker's.

``--conditions`` measures only some of them (e.g. ``quiet,health,health_inline``).
``--shares 1,0.1`` measures every condition once per value of the hubs'
``http.console_share`` (alarms first; 1 turns it off), each on hubs of its own, alternating
within every round: the console's share compared with its baseline in the same run.

Per condition, medians over ``--rounds``: ACK p50/p99, accepted alarms per second, the
hub's CPU per alarm, console requests answered per second and their latency. Goal: neither
a busy console nor a health cycle raises the alarm p99 by more than 20 % over quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    Broker,
    HubProcess,
    percentile,
    print_machine,
    process_cpu_seconds,
    sia_port,
    site_config,
    table,
    verdict,
    workdir,
)
from bench.health import USER, CameraProcess
from bench.siacompare import RESEND_S, Run, drive, round_frames

GOAL = 1.2
CONDITIONS = ("quiet", "console", "health", "both", "health_inline")
HUB_OF = {
    "quiet": "quiet",
    "console": "quiet",
    "health": "health",
    "both": "health",
    "health_inline": "health_inline",
}
"""Condition → the hub it is measured on."""
HUBS = ("quiet", "health", "health_inline")
SHARE = " share="


def _label(name: str, share: float | None) -> str:
    """A condition's (or hub's) name in the run: with its console share when compared."""
    return name if share is None else f"{name}{SHARE}{share:g}"


def _split(label: str) -> tuple[str, float | None]:
    name, _, share = label.partition(SHARE)
    return name, float(share) if share else None


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


def _viewer_token(hub: HubProcess) -> str:
    """A viewer account and its API token, made with the hub's own CLI before it starts."""
    password = secrets.token_urlsafe(18)
    base = [sys.executable, "-m", "hub.cli"]
    config = ["--config", str(hub.path)]
    subprocess.run(
        [*base, "user", "add", "bench", "--role", "viewer", "--password-stdin", *config],
        input=password + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [*base, "token", "create", "bench-console", "--user", "bench", *config],
        text=True,
        check=True,
        capture_output=True,
    ).stdout
    return out.strip().splitlines()[-1].strip()


async def _http_port(hub: HubProcess, within: float = 60.0) -> int:
    """The console's port, from the hub's log line ``web console on http://…:PORT`` (the
    console starts after the SIA receiver, which ``ready`` waits for)."""
    deadline = time.monotonic() + within
    while True:
        for line in hub.tail(200_000).splitlines():
            if "web console on http" in line:
                return int(line.rsplit(":", 1)[1].strip().rstrip("/"))
        if time.monotonic() > deadline:
            raise RuntimeError(f"the hub did not say where its console is:\n{hub.tail()}")
        await asyncio.sleep(0.1)


@dataclass
class Console:
    """``bench/consoleload.py`` in its own process, run around one alarm burst."""

    url: str
    token: str
    clients: int
    failed: int = 0

    async def run_during(
        self, burst: Callable[[], Awaitable[Run]]
    ) -> tuple[Run, float, tuple[float, float]]:
        """Start the load, run ``burst`` once it answers, stop; (the burst, answers per s,
        the answers' p50 and p99 in ms)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.consoleload",
            self.url,
            str(self.clients),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "BENCH_CONSOLE_TOKEN": self.token},
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if line.strip() != b"ready":
                raise RuntimeError(f"the console load did not start: {line!r}")
            result = await burst()
        finally:
            if proc.returncode is None:
                proc.terminate()
        out = (await proc.communicate())[0].decode().split()
        answered, failed, seconds = int(out[0]), int(out[1]), float(out[2])
        self.failed += failed
        return result, answered / seconds, (float(out[3]), float(out[4]))


@dataclass
class Result:
    panels: int
    alarms: int
    cameras: int
    clients: int
    camera_worker: str = "process"
    conditions: tuple[str, ...] = CONDITIONS
    """The conditions' labels (with their console share when compared, see ``_label``)."""
    runs: dict[str, list[Run]] = field(default_factory=dict)
    console_rates: dict[str, list[float]] = field(default_factory=dict)
    console_ms: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """The console answers' p50 and p99 (ms) during each burst."""
    console_failed: int = 0
    worker_cores: dict[str, list[float]] = field(default_factory=dict)
    """CPU of the hub's child processes (its camera-health worker) during each burst, in
    cores."""

    def __post_init__(self) -> None:
        for c in self.conditions:
            for d in (self.runs, self.console_rates, self.console_ms, self.worker_cores):
                d.setdefault(c, [])

    def console(self, cond: str, what: str) -> float:
        """Median console answers per second (``rate``), or answer ``p50``/``p99`` in ms."""
        if what == "rate":
            values = self.console_rates[cond]
        else:
            values = [ms[0 if what == "p50" else 1] for ms in self.console_ms[cond]]
        return statistics.median(values) if values else 0.0

    def worker(self, cond: str) -> float:
        values = self.worker_cores[cond]
        return statistics.median(values) if values else 0.0

    def median(self, cond: str, what: str) -> float:
        runs = self.runs[cond]
        if not runs:
            return float("nan")
        values = {
            "p50": [percentile(r.latencies, 50) * 1e3 for r in runs],
            "p99": [percentile(r.latencies, 99) * 1e3 for r in runs],
            "rate": [r.rate for r in runs],
            "cpu": [r.cpu_ms_per_alarm for r in runs],
        }[what]
        return statistics.median(values)

    def raise_of(self, cond: str) -> float:
        """p99 over the quiet condition's with the same console share."""
        return self.median(cond, "p99") / self.median(_label("quiet", _split(cond)[1]), "p99")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "panels": self.panels,
            "alarms_per_panel": self.alarms,
            "cameras": self.cameras,
            "console_clients": self.clients,
            "console_failed": self.console_failed,
            "camera_worker": self.camera_worker,
        }
        for c in self.conditions:
            out[c] = {
                "ack_p50_ms": self.median(c, "p50"),
                "ack_p99_ms": self.median(c, "p99"),
                "accepted_per_s": self.median(c, "rate"),
                "hub_cpu_ms_per_alarm": self.median(c, "cpu"),
                "console_answers_per_s": self.console(c, "rate"),
                "console_p50_ms": self.console(c, "p50"),
                "console_p99_ms": self.console(c, "p99"),
                "p99_over_quiet": self.raise_of(c),
                "worker_cores": self.worker(c),
            }
        return out


async def measure(args: argparse.Namespace, work: Path) -> Result:
    broker = Broker(work)
    broker.start()
    password = secrets.token_urlsafe(16)
    cams = CameraProcess(args.cameras, password)
    hubs: dict[str, HubProcess] = {}
    tokens: dict[str, str] = {}
    conditions = _conditions(args)
    shares = _shares(args)
    labels = tuple(_label(c, sh) for sh in shares for c in conditions)
    result = Result(args.panels, args.alarms, args.cameras, args.clients, args.worker, labels)
    wanted = {HUB_OF[c] for c in conditions} | {"quiet"}
    modes = {
        "quiet": "inline",
        "health": "process" if args.worker == "both" else args.worker,
        "health_inline": "inline",
    }
    try:
        ports = await cams.ready()
        for name, share in ((n, sh) for sh in shares for n in HUBS if n in wanted):
            key = _label(name, share)
            cameras = [] if name == "quiet" else ports
            sub = work / key.replace(SHARE, "-share-").replace(".", "_")
            sub.mkdir()
            cfg = site_config(
                broker_url=broker.url,
                data_dir=sub / "data",
                sia_port=sia_port(),
                panels=args.panels,
                cameras=[_camera(i, p, password) for i, p in enumerate(cameras)],
                health={
                    "camera_interval_s": args.camera_interval,
                    "video_interval_s": args.video_interval,
                    "jitter": 0.1,
                    "camera_worker": modes[name],
                },
            )
            cfg["site"]["id"] = f"bench-{sub.name}"
            if share is not None:
                cfg["http"]["console_share"] = share
            hub = HubProcess(cfg, sub)
            tokens[key] = _viewer_token(hub)
            hub.start()
            hubs[key] = hub
            await hub.ready()
        consoles = {
            key: Console(f"http://127.0.0.1:{await _http_port(hub)}", tokens[key], args.clients)
            for key, hub in hubs.items()
        }
        within = max(120.0, args.panels * args.alarms / 20)

        async def one(label: str, r: int, measured: bool) -> None:
            cond, share = _split(label)
            name = HUB_OF[cond]
            key = _label(name, share)
            hub = hubs[key]
            # Fresh frames (timestamps in the window however long the round), numbered so
            # that no hub ever takes them for a resend of earlier ones (a hub has at most
            # two conditions).
            mine = [c for c in CONDITIONS if HUB_OF[c] == name]
            frames = round_frames(args.panels, args.alarms, r * 2 + mine.index(cond))
            cpu0 = process_cpu_seconds(hub.pid)
            child0 = _children_cpu_seconds(hub.pid)

            async def burst() -> Run:
                nonlocal cpu0, child0
                cpu0 = process_cpu_seconds(hub.pid)
                child0 = _children_cpu_seconds(hub.pid)
                return await drive(hub.sia_port, frames, within)

            ms = (0.0, 0.0)
            if cond in ("console", "both"):
                run, rate, ms = await consoles[key].run_during(burst)
            else:
                run, rate = await burst(), 0.0
            run.cpu_s = process_cpu_seconds(hub.pid) - cpu0
            children = _children_cpu_seconds(hub.pid) - child0
            run.receiver = label
            if measured:
                result.runs[label].append(run)
                result.worker_cores[label].append(max(0.0, children) / run.seconds)
                result.console_rates[label].append(rate)
                if cond in ("console", "both"):
                    result.console_ms[label].append(ms)

        # The health hub's first cycle (WSDL parsing, first connections) is not typical.
        await asyncio.sleep(args.warmup)
        for r in range(args.rounds + 1):
            order = labels if r % 2 == 0 else tuple(reversed(labels))
            for cond in order:
                await one(cond, r, measured=r > 0)
        result.console_failed = sum(c.failed for c in consoles.values())
    finally:
        for hub in hubs.values():
            hub.stop()
        cams.stop()
        broker.stop()
    return result


def _children_cpu_seconds(pid: int | None) -> float:
    """CPU time used so far by the live child processes of ``pid`` (its camera-health
    worker; one that died and was replaced counts from zero again, hence the clamp)."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    return sum(process_cpu_seconds(int(k)) for k in kids)


def _shares(args: argparse.Namespace) -> list[float | None]:
    """The console shares compared (``--shares``), or the hub's default alone."""
    given = [float(x) for x in args.shares.split(",") if x.strip()] if args.shares else []
    if any(not 0 < x <= 1 for x in given):
        raise SystemExit("--shares: each share must be > 0 and ≤ 1")
    return [*given] if given else [None]


def _conditions(args: argparse.Namespace) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(c.strip() for c in args.conditions.split(",") if c.strip()))
    unknown = set(names) - set(CONDITIONS)
    if unknown:
        raise SystemExit(f"unknown conditions {sorted(unknown)}; known: {', '.join(CONDITIONS)}")
    if "health_inline" in names and args.worker != "both":
        raise SystemExit("health_inline needs --worker both")
    if args.worker == "both" and "health_inline" not in names:
        names += ("health_inline",)
    return ("quiet", *(n for n in names if n != "quiet"))


def report(r: Result) -> None:
    print(
        f"Alarm bursts ({r.panels} panels × {r.alarms} alarms) with a busy console "
        f"({r.clients} clients) and a health cycle ({r.cameras} cameras, camera checks: "
        f"{r.camera_worker}); medians of {len(r.runs[r.conditions[0]])} alternating rounds"
    )
    rows: list[list[object]] = []
    for c in r.conditions:
        rows.append(
            [
                c,
                r.median(c, "p50"),
                r.median(c, "p99"),
                r.raise_of(c),
                r.median(c, "rate"),
                r.median(c, "cpu"),
                r.console(c, "rate"),
                r.console(c, "p50"),
                r.console(c, "p99"),
                r.worker(c),
            ]
        )
    print(
        table(
            [
                "condition",
                "ACK p50 ms",
                "ACK p99 ms",
                "p99 / quiet",
                "accepted/s",
                "hub CPU ms/alarm",
                "console answers/s",
                "console p50 ms",
                "console p99 ms",
                "worker cores",
            ],
            rows,
        )
    )
    refused = {c: sum(x.refused for x in r.runs[c]) for c in r.conditions}
    resent = {c: sum(x.resends for x in r.runs[c]) for c in r.conditions}
    print(f"console requests failed: {r.console_failed}; alarms refused: {refused}")
    print(f"frames resent after {RESEND_S:.0f} s without a reply: {resent}")
    for c in r.conditions:
        if _split(c)[0] == "quiet":
            continue
        ok = r.raise_of(c) <= GOAL
        print(f"{c}: alarm p99 {r.raise_of(c):.2f} × quiet (goal ≤ {GOAL}): {verdict(ok)}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--panels", type=int, default=50, help="panels at once (default 50)")
    p.add_argument("--alarms", type=int, default=100, help="alarms per panel (default 100)")
    p.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5)")
    p.add_argument("--cameras", type=int, default=100, help="cameras of hub H (default 100)")
    p.add_argument("--camera-interval", type=float, default=10.0, help="liveness every S s")
    p.add_argument("--video-interval", type=float, default=30.0, help="video check every S s")
    p.add_argument("--clients", type=int, default=8, help="console clients (default 8)")
    p.add_argument(
        "--warmup",
        type=float,
        default=60.0,
        help="seconds before the first round (the first health cycle connects every camera)",
    )
    p.add_argument(
        "--worker",
        choices=("process", "inline", "both"),
        default="process",
        help="where hub H runs its camera checks (health.camera_worker); both: H in its "
        "worker process and a hub I inline, measured alternately (default process)",
    )
    p.add_argument(
        "--conditions",
        default="quiet,console,health,both",
        help=f"comma-separated, of {', '.join(CONDITIONS)} (default all but health_inline; "
        "--worker both adds it)",
    )
    p.add_argument(
        "--shares",
        default="",
        help="compare console shares: every condition once per http.console_share, on hubs "
        "of its own, e.g. 1,0.1 (1 = off; default: the hub's default only)",
    )
    p.add_argument("--keep", action="store_true", help="keep the working directory")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    _conditions(args), _shares(args)  # a bad selection is refused before anything starts
    if 2 * (args.rounds + 1) * args.alarms > 9999:
        raise SystemExit("2 × (--rounds + 1) × --alarms must stay within 9999 sequence numbers")
    print_machine()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with workdir("busy", args.keep) as work:
        r = await measure(args, work)
    report(r)
    return r.as_dict()
