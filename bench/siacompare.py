"""The hub's SIA receiver against pysiaalarm's on the same frames, in one run.

``--panels`` panels (default 50) each send ``--alarms`` alarms (default 100), waiting for
each ACK before the next, as real panels do. The same frames (Contact ID panic and burglary
alarms, the same bytes, timestamps of the round) go to both receivers in every round; rounds
alternate which receiver goes first, and the figures are the medians over ``--rounds``
(default 5) after a warm-up round each.

- **hub**: ``mallhub run`` in its own process; it stores every alarm durably (SQLite WAL,
  fsync'd) before it ACKs and forwards it to a real Mosquitto on a free port. After the
  run every alarm must be in the store and at the subscriber.
- **pysiaalarm** (``bench/siapeer.py``): Home Assistant's receiver in its own process; it
  parses, checks and ACKs and stores nothing (and ACKs before its callback runs).

Per receiver: accept rate (ACKed alarms per second, first send → last ACK), ACK p50/p99 as
each panel sees it (send → ACK), CPU of the receiver's process per alarm (from the first
send until the hub has forwarded the round, plus the same short settle for both) and the
longest garbage-collection pause inside the measured windows (``bench/gcprobe.py``).
The panels are lean asyncio protocols in the benchmark's process (frames built before the
round), so that the receivers, not the load, set the pace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import (
    PREFIX,
    Broker,
    HubProcess,
    Subscriber,
    account,
    percentile,
    print_machine,
    process_cpu_seconds,
    sia_port,
    site_config,
    table,
    verdict,
    workdir,
)
from bench.gcprobe import Pauses
from simulators.panel import build_frame, cid_payload, crc16, dc09_time

GOAL_RATE = 1.0
GOAL_P99 = 2.0
GOAL_GC_MS = 5.0
SETTLE_S = 0.6
"""Idle time after each run before the CPU is read (deferred publication marks land)."""
RESEND_S = 10.0
"""A panel sends a frame again after this long without a reply."""
RECEIVER = "1"
"""Receiver number in the frames: pysiaalarm writes "None" into its reply without one."""


# --- the panels ----------------------------------------------------------------------------


def round_frames(panels: int, alarms: int, round_no: int) -> list[list[bytes]]:
    """The frames of one round: per panel, ``alarms`` alarms with sequence numbers of this
    round (so the hub never takes one round's alarm for a resend of another's)."""
    now = datetime.now(UTC)
    out = []
    for i in range(1, panels + 1):
        acct = account(i)
        frames = []
        for j in range(alarms):
            seq = (round_no * alarms + j) % 9999 + 1
            code = 120 if j % 2 == 0 else 130
            data = f"#{acct}|{cid_payload(1, code, 1, j % 8 + 1)}"
            frames.append(
                build_frame(
                    token="ADM-CID",
                    seq=seq,
                    account=acct,
                    data=data,
                    receiver=RECEIVER,
                    timestamp=now,
                )
            )
        out.append(frames)
    return out


def restamp(frame: bytes) -> bytes:
    """``frame`` with the time now in place of its timestamp (new CRC and length)."""
    body = frame.strip(b"\n\r")[8:]
    span = body[: body.rindex(b"]") + 1] + dc09_time(datetime.now(UTC)).encode("ascii")
    return b"\n" + f"{crc16(span):04X}{len(span):04X}".encode("ascii") + span + b"\r"


def _seq_of(frame: bytes) -> bytes:
    # "ADM-CID"0001R1L0#… : the four digits after the closing quote of the token.
    at = frame.index(b'"', frame.index(b'"') + 1) + 1
    return frame[at : at + 4]


class _Panel(asyncio.Protocol):
    """One panel: writes a frame, waits for the ACK echoing its sequence number, then the
    next. A NAK (timestamp out of the receiver's window) has it send the frame again with
    the time now; any other reply (DUH) counts as refused and the panel goes on. Without a
    reply within ``RESEND_S`` it sends the frame again, as panels do (a receiver that could
    not store stays silent). The latency counts from the first send."""

    def __init__(self, frames: list[bytes], done: asyncio.Future[None]) -> None:
        self.frames = frames
        self.expect = [b'"ACK"' + _seq_of(f) for f in frames]
        self.done = done
        self.latencies: list[float] = []
        self.refused = 0
        self.resends = 0
        self.last_ack = 0.0
        self._i = 0
        self._sent_at = 0.0
        self._buf = b""
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def start(self) -> None:
        self._sent_at = time.perf_counter()
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.transport.write(self.frames[self._i])
        self._timer = asyncio.get_running_loop().call_later(RESEND_S, self._resend)

    def _resend(self) -> None:
        self.resends += 1
        self._send()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while b"\r" in self._buf:
            reply, self._buf = self._buf.split(b"\r", 1)
            if self._i == len(self.frames):
                return  # a late reply to a resent frame
            now = time.perf_counter()
            if self.expect[self._i] in reply:
                self.latencies.append(now - self._sent_at)
                self.last_ack = now
            elif b'"ACK"' in reply:
                continue  # the ACK of an earlier frame sent twice
            elif b'"NAK"' in reply:
                # Its timestamp left the receiver's window (a slow round): a panel sends it
                # again with its clock's time now.
                if self._timer is not None:
                    self._timer.cancel()
                self.frames[self._i] = restamp(self.frames[self._i])
                self._resend()
                continue
            else:
                self.refused += 1
            if self._timer is not None:
                self._timer.cancel()
            self._i += 1
            if self._i == len(self.frames):
                if not self.done.done():
                    self.done.set_result(None)
                return
            self._sent_at = now
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"receiver closed the connection: {exc!r}"))


@dataclass
class Run:
    receiver: str
    alarms: int
    acked: int
    refused: int
    seconds: float
    latencies: list[float]
    cpu_s: float
    window: tuple[float, float]
    resends: int = 0

    @property
    def rate(self) -> float:
        return self.acked / self.seconds

    @property
    def cpu_ms_per_alarm(self) -> float:
        return self.cpu_s / self.alarms * 1e3


async def drive(port: int, frames: list[list[bytes]], within: float) -> Run:
    """Connect every panel, then send all frames; returns once every panel is done."""
    loop = asyncio.get_running_loop()
    panels: list[_Panel] = []
    for f in frames:
        done: asyncio.Future[None] = loop.create_future()
        _, proto = await loop.create_connection(partial(_Panel, f, done), "127.0.0.1", port)
        panels.append(proto)
    t0 = time.perf_counter()
    for p in panels:
        p.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(p.done for p in panels)), within)
    finally:
        for p in panels:
            if p.transport is not None:
                p.transport.close()
    last = max(p.last_ack for p in panels)
    latencies = [x for p in panels for x in p.latencies]
    total = sum(len(f) for f in frames)
    return Run(
        "",
        total,
        len(latencies),
        sum(p.refused for p in panels),
        last - t0,
        latencies,
        0.0,
        (t0, last),
        sum(p.resends for p in panels),
    )


# --- the receivers -------------------------------------------------------------------------


class PeerProcess:
    """``python -m bench.siapeer``: pysiaalarm's receiver in a process of its own."""

    def __init__(self, panels: int, work: Path) -> None:
        self.port = sia_port()
        self.gc_file = work / "pysiaalarm-gc.bin"
        self.log = work / "pysiaalarm.log"
        self.accounts = ",".join(account(i) for i in range(1, panels + 1))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.siapeer",
                    "--port",
                    str(self.port),
                    "--accounts",
                    self.accounts,
                    "--gc-file",
                    str(self.gc_file),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"pysiaalarm's receiver exited: {self.log.read_text()[-2000:]}")
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("pysiaalarm's receiver did not start") from None
                await asyncio.sleep(0.05)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def gc_pauses(self) -> Pauses | None:
        return Pauses.load(self.gc_file) if self.gc_file.exists() else None


@dataclass
class Result:
    panels: int
    alarms: int
    runs: dict[str, list[Run]] = field(default_factory=lambda: {"hub": [], "pysiaalarm": []})
    gc: dict[str, tuple[float, int, int]] = field(default_factory=dict)
    gc_cpu: dict[str, float] = field(default_factory=dict)
    gc_per_generation: dict[str, dict[int, int]] = field(default_factory=dict)
    stored: int = 0
    forwarded: int = 0
    expected_hub: int = 0

    def median(self, who: str, what: str) -> float:
        runs = self.runs[who]
        values = {
            "rate": [r.rate for r in runs],
            "p50": [percentile(r.latencies, 50) * 1e3 for r in runs],
            "p99": [percentile(r.latencies, 99) * 1e3 for r in runs],
            "max": [max(r.latencies) * 1e3 for r in runs],
            "cpu": [r.cpu_ms_per_alarm for r in runs],
            "refused": [float(r.refused) for r in runs],
        }[what]
        return statistics.median(values)

    @property
    def rate_ratio(self) -> float:
        return self.median("hub", "rate") / self.median("pysiaalarm", "rate")

    @property
    def p99_ratio(self) -> float:
        return self.median("hub", "p99") / self.median("pysiaalarm", "p99")

    @property
    def hub_gc_ms(self) -> float:
        return self.gc.get("hub", (float("nan"), -1, 0))[0] * 1e3

    @property
    def complete(self) -> bool:
        return self.stored == self.expected_hub and self.forwarded == self.expected_hub

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"panels": self.panels, "alarms_per_panel": self.alarms}
        for who in ("hub", "pysiaalarm"):
            out[who] = {
                "accept_per_s_median": self.median(who, "rate"),
                "accept_per_s_runs": [r.rate for r in self.runs[who]],
                "ack_p50_ms_median": self.median(who, "p50"),
                "ack_p99_ms_median": self.median(who, "p99"),
                "ack_max_ms_median": self.median(who, "max"),
                "cpu_ms_per_alarm_median": self.median(who, "cpu"),
                "refused_median": self.median(who, "refused"),
                "gc_longest_ms": self.gc.get(who, (float("nan"), -1, 0))[0] * 1e3,
                "gc_longest_generation": self.gc.get(who, (0.0, -1, 0))[1],
                "gc_longest_cpu_ms": self.gc_cpu.get(who, float("nan")) * 1e3,
                "gc_collections": self.gc_per_generation.get(who, {}),
            }
        out.update(
            rate_ratio=self.rate_ratio,
            p99_ratio=self.p99_ratio,
            hub_stored=self.stored,
            hub_forwarded=self.forwarded,
            hub_expected=self.expected_hub,
            goals={
                "rate": self.rate_ratio >= GOAL_RATE and self.complete,
                "p99": self.p99_ratio <= GOAL_P99,
                # None: no collection fell inside the windows, nothing to judge.
                "gc": (
                    self.hub_gc_ms <= GOAL_GC_MS if self.gc.get("hub", (0.0, -1, 0))[2] else None
                ),
            },
        )
        return out


def _count_events(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


async def measure(panels: int, alarms: int, rounds: int, work: Path) -> Result:
    loop = asyncio.get_running_loop()
    broker = Broker(work)
    broker.start()
    config = site_config(
        broker_url=broker.url, data_dir=work / "data", sia_port=sia_port(), panels=panels
    )
    hub = HubProcess(config, work)
    peer = PeerProcess(panels, work)
    sub = Subscriber(broker.port, [f"{PREFIX}/events/#"], loop, keep=True)
    result = Result(panels, alarms)
    within = max(120.0, panels * alarms / 50)
    forwarded: set[str] = set()
    seen = [0]
    try:
        hub.start()
        peer.start()
        sub.start()
        await hub.ready()
        await peer.ready()

        async def wait_forwarded(count: int) -> None:
            deadline = time.monotonic() + within
            while True:
                arrivals = sub.arrivals[seen[0] :]
                seen[0] += len(arrivals)
                for a in arrivals:
                    forwarded.add(json.loads(a.payload)["event_id"])
                if len(forwarded) >= count or time.monotonic() > deadline:
                    return
                await asyncio.sleep(0.01)

        async def one(who: str, frames: list[list[bytes]], measured: bool) -> None:
            port, pid = (hub.sia_port, hub.pid) if who == "hub" else (peer.port, peer.pid)
            cpu0 = process_cpu_seconds(pid)
            run = await drive(port, frames, within)
            if who == "hub":
                await wait_forwarded(result.expected_hub + run.acked)
                result.expected_hub += run.acked
            await asyncio.sleep(SETTLE_S)
            run.cpu_s = process_cpu_seconds(pid) - cpu0
            run.receiver = who
            if measured:
                result.runs[who].append(run)

        # Round 0 warms both up (the hub's police link, connections, caches).
        for r in range(rounds + 1):
            frames = round_frames(panels, alarms, r)
            order = ("hub", "pysiaalarm") if r % 2 == 0 else ("pysiaalarm", "hub")
            for who in order:
                await one(who, frames, measured=r > 0)
        result.forwarded = len(forwarded)
    finally:
        sub.stop()
        hub.stop()
        peer.stop()
        broker.stop()
    result.stored = _count_events(work / "data" / "mallhub.db")
    for who, pauses in (("hub", hub.gc_pauses()), ("pysiaalarm", peer.gc_pauses())):
        if pauses is None:
            continue
        windows = [r.window for r in result.runs[who]]
        result.gc[who] = pauses.longest_in(windows)
        result.gc_cpu[who] = pauses.longest_cpu_in(windows)
        result.gc_per_generation[who] = pauses.per_generation(windows)
    return result


def report(r: Result) -> None:
    print(
        f"SIA receivers on the same frames: {r.panels} panels × {r.alarms} alarms, each panel "
        f"waiting for its ACK; medians of {len(r.runs['hub'])} alternating rounds"
    )
    rows: list[list[object]] = []
    for who, what in (
        ("hub", "hub (store durably, ACK, forward over MQTT)"),
        ("pysiaalarm", "pysiaalarm 3.2.2 (parse, ACK; stores nothing)"),
    ):
        gc_s, gen, _ = r.gc.get(who, (float("nan"), -1, 0))
        rows.append(
            [
                what,
                r.median(who, "rate"),
                r.median(who, "p50"),
                r.median(who, "p99"),
                r.median(who, "max"),
                r.median(who, "cpu"),
                (
                    f"{gc_s * 1e3:.2f} (gen {gen}; CPU {r.gc_cpu[who] * 1e3:.2f})"
                    if gen >= 0
                    else "none"
                ),
                int(r.median(who, "refused")),
            ]
        )
    print(
        table(
            [
                "receiver",
                "accepted/s",
                "ACK p50 ms",
                "ACK p99 ms",
                "ACK max ms",
                "CPU ms/alarm",
                "longest GC ms",
                "refused",
            ],
            rows,
        )
    )
    print()
    for who in ("hub", "pysiaalarm"):
        runs = ", ".join(f"{x.rate:,.0f}" for x in r.runs[who])
        resent = sum(x.resends for x in r.runs[who])
        print(f"{who} accepted/s per round: {runs} (frames resent: {resent})")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    gens = r.gc_per_generation.get("hub", {})
    print(
        f"hub collections in the measured windows: gen0 {gens.get(0, 0)}, gen1 {gens.get(1, 0)},"
        f" gen2 {gens.get(2, 0)}"
    )
    print(
        f"hub stored {r.stored} of {r.expected_hub} ACKed alarms, forwarded {r.forwarded} "
        "to the broker"
    )
    print(
        f"accept rate hub / pysiaalarm = {r.rate_ratio:.2f} (goal ≥ {GOAL_RATE}, all stored and "
        f"forwarded): {verdict(r.rate_ratio >= GOAL_RATE and r.complete)}"
    )
    print(
        f"ACK p99 hub / pysiaalarm = {r.p99_ratio:.2f} (goal ≤ {GOAL_P99}): "
        f"{verdict(r.p99_ratio <= GOAL_P99)}"
    )
    gc_cpu_ms = r.gc_cpu.get("hub", float("nan")) * 1e3
    if r.gc.get("hub", (0.0, -1, 0))[2] == 0:
        print("hub: no garbage collection inside the measured windows (GC goal not shown)")
        return
    print(
        f"hub longest GC pause {r.hub_gc_ms:.2f} ms wall (goal ≤ {GOAL_GC_MS}): "
        f"{verdict(r.hub_gc_ms <= GOAL_GC_MS)}; the collector's own work at most "
        f"{gc_cpu_ms:.2f} ms of CPU: {verdict(gc_cpu_ms <= GOAL_GC_MS)} (wall − CPU: the "
        "process was descheduled meanwhile)"
    )


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--panels", type=int, default=50, help="panels at once (default 50)")
    p.add_argument("--alarms", type=int, default=100, help="alarms per panel (default 100)")
    p.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5)")
    p.add_argument("--keep", action="store_true", help="keep the working directory")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.rounds < 1 or args.panels < 1 or args.alarms < 1:
        raise SystemExit("--panels, --alarms and --rounds must be at least 1")
    if (args.rounds + 1) * args.alarms > 9999:
        raise SystemExit("(--rounds + 1) × --alarms must stay within 9999 sequence numbers")
    print_machine()
    with workdir("siacompare", args.keep) as work:
        r = await measure(args.panels, args.alarms, args.rounds, work)
    report(r)
    return r.as_dict()
