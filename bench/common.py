"""What every benchmark shares: the machine, a broker, the hub as a process, a subscriber,
a site config with many panels, percentiles and a table printer.

The hub always runs as its own process (``mallhub run``), exactly as in production, so its
event loop is not shared with the simulators that load it. Every timestamp on the receiving
side is taken by the same subscriber (a paho-mqtt client on its own network thread) for the
hub and for the baseline, so both paths are measured with the same ruler.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.gcprobe import Pauses
from hub.broker import free_port, mosquitto_path

SITE = "bench-mall"
PREFIX = f"mallhub/v1/{SITE}"


# --- the machine ---------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures came from: CPUs, model, memory, Python, Mosquitto, load."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
                break
    except OSError:
        pass
    exe = mosquitto_path() or "mosquitto"
    try:
        out = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=5).stdout
        mosq = out.splitlines()[0].strip() if out else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        mosq = "unknown"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cpus (nproc)": str(os.cpu_count()),
        "cpu model": model,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "broker": mosq,
        "load average at start": load,
    }


def print_machine() -> None:
    info = machine()
    width = max(len(k) for k in info)
    print("machine:")
    for k, v in info.items():
        print(f"  {k:<{width}}  {v}")
    print()


# --- numbers and tables --------------------------------------------------------------------


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``samples``."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(samples: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / max of samples in seconds, as milliseconds."""
    return {
        "p50": percentile(samples, 50) * 1e3,
        "p99": percentile(samples, 99) * 1e3,
        "max": (max(samples) if samples else float("nan")) * 1e3,
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain Markdown table (pastes straight into docs/performance.md)."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for r in text:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


# --- a broker ------------------------------------------------------------------------------


class Broker:
    """A private Mosquitto on a free loopback port (persistence on, as the hub expects)."""

    def __init__(self, workdir: Path) -> None:
        from hub.broker import LocalMosquitto

        self._m = LocalMosquitto(workdir / "mosquitto")

    @property
    def url(self) -> str:
        return self._m.url

    @property
    def port(self) -> int:
        return self._m.port

    @property
    def pid(self) -> int | None:
        return self._m.proc.pid if self._m.proc is not None else None

    def start(self) -> None:
        self._m.start()

    def stop(self) -> None:
        self._m.stop()


# --- site config ---------------------------------------------------------------------------


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU time process ``pid`` used so far (all its threads); NaN if unknown."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def account(i: int) -> str:
    """Account number of panel ``i`` (1-based): 4 hex digits."""
    return f"{0x1000 + i:04X}"


def site_config(
    *,
    broker_url: str,
    data_dir: Path,
    sia_port: int,
    panels: int = 1,
    cameras: list[dict[str, Any]] | None = None,
    health: dict[str, Any] | None = None,
    police: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A mall with ``panels`` panels, each with zones 1..8 (one button each)."""
    panel_list = []
    for i in range(1, panels + 1):
        panel_list.append(
            {
                "id": f"panel-{i}",
                "name": f"{i}号报警主机",
                "account": account(i),
                "location": {"floor": "1F", "zone": f"area-{i}", "role": "duty_room"},
                "zones": [
                    {
                        "zone": z,
                        "id": f"btn-{i}-{z}",
                        "name": f"{i}号主机{z}防区",
                        "location": {"floor": "1F", "zone": f"area-{i}", "role": "passage"},
                    }
                    for z in range(1, 9)
                ],
            }
        )
    data: dict[str, Any] = {
        "site": {
            "id": SITE,
            "name": "基准测试商场",
            "address": "郑州市金水区测试路1号",
            "floor_area_m2": 45000,
            "guards": 45,
        },
        "storage": {"data_dir": str(data_dir)},
        "police": {
            "url": broker_url,
            "receipts": "optional",
            "heartbeat_s": 60,
            "reconnect_max_s": 1,
            **(police or {}),
        },
        "http": {"port": 0},
        # Thousands of bench alarms nobody acknowledges would each escalate 120 s later, in
        # the middle of later rounds: real work, but it would fall unevenly on what is compared.
        "alarms": {"escalate_after_s": 86400},
        "alarm_receiver": {"host": "127.0.0.1", "tcp_port": sia_port, "udp_port": None},
        "devices": {"alarm_panels": panel_list, "cameras": cameras or [], "broadcast": []},
    }
    if health is not None:
        data["health"] = health
    return data


# --- the hub as a process ------------------------------------------------------------------


class HubProcess:
    """``mallhub run --config`` as a child process; its log goes to a file."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.workdir = workdir
        self.path = workdir / "site.yaml"
        self.path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        self.log = workdir / "hub.log"
        self.sia_port = int(config["alarm_receiver"]["tcp_port"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.gc_file = workdir / "hub-gc.bin"
        """Where the hub's garbage collections are recorded (``bench.gcprobe``)."""

    def start(self) -> None:
        # BENCH_PROFILE=FILE runs the hub under cProfile (written when it stops).
        # BENCH_TRACEMALLOC=DIR traces its allocations instead (see bench/tracemem.py).
        profile = os.environ.get("BENCH_PROFILE")
        prof = ["-m", "cProfile", "-o", profile] if profile else []
        # Every collection of the hub is recorded (bench/gcprobe.py) for the GC pause figure.
        entry = ["-m", "bench.gcprobe", "--run-hub", str(self.gc_file)]
        if os.environ.get("BENCH_TRACEMALLOC"):
            prof, entry = [], ["-m", "bench.tracemem", "--run-hub"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *prof, *entry, "run", "--config", str(self.path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    async def ready(self, within: float = 60.0) -> None:
        """Wait until the SIA port listens (the hub is up and migrated)."""
        deadline = time.monotonic() + within
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited:\n{self.tail()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.sia_port)) == 0:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the hub did not start within {within} s:\n{self.tail()}")
            await asyncio.sleep(0.05)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def memory(self) -> tuple[float, float]:
        """(current RSS, peak RSS) of the hub process in MiB, from /proc."""
        rss = hwm = 0.0
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
        except OSError:
            pass
        return rss, hwm

    def cpu_seconds(self) -> float:
        """User + system CPU time the hub process used so far."""
        return process_cpu_seconds(self.pid)

    def gc_pauses(self) -> Pauses | None:
        """The hub's garbage collections, once it has stopped (None without a record)."""
        if not self.gc_file.exists():
            return None
        return Pauses.load(self.gc_file)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- the subscriber ------------------------------------------------------------------------


@dataclass(slots=True)
class Arrival:
    at: float
    """``time.perf_counter()`` on the subscriber's network thread."""
    topic: str
    payload: bytes


@dataclass
class Subscriber:
    """A QoS 1 paho subscriber on its own thread, timestamping every arrival.

    ``on_arrival`` (if set) is called on the event loop for each message; every arrival is
    also kept in ``arrivals`` for checks after the run.
    """

    port: int
    topics: Sequence[str]
    loop: asyncio.AbstractEventLoop
    on_arrival: Callable[[Arrival], None] | None = None
    arrivals: list[Arrival] = field(default_factory=list)
    keep: bool = True
    _connected: threading.Event = field(default_factory=threading.Event)
    _client: paho.Client | None = None

    def start(self) -> None:
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-sub-{os.getpid()}-{id(self)}",
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.connect("127.0.0.1", self.port, keepalive=30)
        c.loop_start()
        self._client = c
        if not self._connected.wait(10):
            raise RuntimeError("subscriber could not connect")

    def _on_connect(self, client: paho.Client, *_args: Any) -> None:
        for t in self.topics:
            client.subscribe(t, qos=1)
        # A subscription is active once its SUBACK is back; ping with a marker to be sure.
        self._connected.set()

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        arrival = Arrival(time.perf_counter(), msg.topic, bytes(msg.payload))
        if self.keep:
            self.arrivals.append(arrival)
        if self.on_arrival is not None:
            self.loop.call_soon_threadsafe(self.on_arrival, arrival)

    def stop(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()
            self._client = None


class Publisher:
    """A plain paho-mqtt QoS 1 publisher: the baseline's sending side."""

    def __init__(self, port: int, *, max_inflight: int = 64) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-pub-{os.getpid()}-{id(self)}",
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self._up = threading.Event()
        self.client.on_connect = lambda *_a: self._up.set()
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self._up.wait(10):
            raise RuntimeError("publisher could not connect")

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def wait_subscribed(sub: Subscriber, pub: Publisher, topic: str, within: float = 10) -> None:
    """Publish markers on ``topic`` until the subscriber sees one (its SUBACK is in)."""
    deadline = time.monotonic() + within
    seen = len(sub.arrivals)
    while True:
        pub.publish(topic, b"marker")
        for _ in range(20):
            if any(a.payload == b"marker" for a in sub.arrivals[seen:]):
                return
            await asyncio.sleep(0.01)
        if time.monotonic() > deadline:
            raise RuntimeError("the subscriber never received its marker")


def sample_event_payload() -> bytes:
    """A payload the size of a real event message (what the hub publishes per alarm)."""
    body = {
        "schema": "mallhub/event/1",
        "event_id": "01a20f2f-7a0d-7000-91c5-4c716d2fb54a",
        "seq": 1842,
        "site": {"id": SITE, "name": "基准测试商场", "address": "郑州市金水区测试路1号"},
        "kind": "alarm.panic",
        "category": "alarm",
        "priority": 1,
        "occurred_at": "2026-11-22T08:00:00.123Z",
        "received_at": "2026-11-22T08:00:00.131Z",
        "device": {
            "id": "btn-1-1",
            "type": "alarm_button",
            "name": "1号主机1防区",
            "location": {"floor": "1F", "zone": "area-1", "role": "passage"},
        },
        "source": {
            "protocol": "sia-dc09",
            "format": "ADM-CID",
            "account": "1001",
            "receiver": None,
            "prefix": "0",
            "seq": 1,
            "encrypted": False,
            "code": "1120 01 001",
            "qualifier": "new",
            "zone": 1,
            "area": 1,
        },
        "gb28181": {"alarm_priority": 1, "alarm_method": 2, "alarm_type": None},
        "cameras": [],
        "text": {"zh": "1F 1号主机1防区：一键报警", "en": "Panic alarm: 1号主机1防区 (1F, area-1)"},
        "detail": {"priority": 1},
        "hub_version": "0.1.0",
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def sia_port() -> int:
    return free_port()


@contextlib.contextmanager
def workdir(name: str, keep: bool) -> Iterator[Path]:
    """A scratch directory for one benchmark run, removed afterwards unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix=f"mallhub-bench-{name}-"))
    try:
        yield path
    finally:
        if keep:
            print(f"working directory kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)
