"""Soak: minutes of mixed traffic against ``mallhub run``; memory growth, latency drift, loss.

Traffic: 10 panels (one encrypted-free probe panel, nine background panels sending
intrusions, restores, AC loss/restore, manual tests, with NULL supervision every 10 s and
periodic tests every 60 s), 10 simulated cameras probed every 5 s (video every 60 s), and
the broker stopped and started again half-way. One probe alarm at a time (press → arrival
at a persistent-session subscriber) gives the alarm latency; the hub's RSS is read from
/proc every minute. At the end every stored event must have reached the subscriber.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sqlite3
import tempfile
import threading
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import (
    PREFIX,
    Broker,
    HubProcess,
    account,
    percentile,
    print_machine,
    sia_port,
    site_config,
    table,
)

PANELS = 10
CAMERAS = 10


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=10.0, help="duration (default 10)")


class PersistentSubscriber:
    """paho, QoS 1, persistent session: nothing is lost across a broker restart."""

    def __init__(self, port: int) -> None:
        self.event_ids: set[str] = set()
        self.arrivals: dict[str, float] = {}
        """device id of a probe alarm → arrival time (perf_counter)."""
        self.lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"soak-sub-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv311,
            clean_session=False,
        )
        self.client.on_connect = lambda c, *_a: c.subscribe(f"{PREFIX}/events/#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port, keepalive=15)
        self.client.loop_start()

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        at = time.perf_counter()
        body = json.loads(msg.payload)
        with self.lock:
            self.event_ids.add(str(body["event_id"]))
            if body["kind"] == "alarm.panic":
                self.arrivals.setdefault(str(body["event_id"]), at)
                self.arrivals[f"last:{body['device']['id']}"] = at

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _stored(db: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return {r[0] for r in conn.execute("SELECT event_id FROM events")}
    finally:
        conn.close()


async def _background(panels: list[Any], stop: asyncio.Event) -> None:
    """Mixed traffic from the background panels, one message each every ~2 s."""
    i = 0
    while not stop.is_set():
        for k, p in enumerate(panels):
            step = (i + k) % 6
            zone = (i + k) % 8 + 1
            if step == 0:
                p.intrusion(zone)
            elif step == 1:
                p.restore(zone)
            elif step == 2:
                p.ac_loss()
            elif step == 3:
                p.ac_restore()
            elif step == 4:
                p.test(zone)
            else:
                p.tamper(zone)
        i += 1
        # The pace of the load, not a synchronisation.
        await asyncio.sleep(2.0)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from simulators.camera import CameraFarm
    from simulators.panel import PanelSimulator

    print_machine()
    duration = args.minutes * 60
    password = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as d:
        work = Path(d)
        broker = Broker(work)
        broker.start()
        port = sia_port()
        async with AsyncExitStack() as stack:
            farm = await stack.enter_async_context(
                CameraFarm.uniform(
                    CAMERAS, username="soak", password=password, width=640, height=360
                )
            )
            cameras = [
                {
                    "id": f"cam-{i}",
                    "name": f"{i}号摄像机",
                    "host": "127.0.0.1",
                    "port": cam.port,
                    "username": "soak",
                    "password": password,
                    "events": False,
                    "location": {"floor": "1F", "zone": f"z{i}", "role": "passage"},
                }
                for i, cam in enumerate(farm)
            ]
            cfg = site_config(
                broker_url=broker.url,
                data_dir=work / "data",
                sia_port=port,
                panels=PANELS,
                cameras=cameras,
                health={"camera_interval_s": 5, "video_interval_s": 60, "jitter": 0.1},
            )
            hub = HubProcess(cfg, work)
            hub.start()
            stack.callback(hub.stop)
            await hub.ready()
            sub = PersistentSubscriber(broker.port)
            stack.callback(sub.stop)
            probe = await stack.enter_async_context(
                PanelSimulator("127.0.0.1", port, account(1), ack_timeout=2.0, reconnect_max=1.0)
            )
            background = [
                await stack.enter_async_context(
                    PanelSimulator(
                        "127.0.0.1",
                        port,
                        account(i),
                        ack_timeout=2.0,
                        reconnect_max=1.0,
                        supervision_every=10.0,
                        periodic_test_every=60.0,
                    )
                )
                for i in range(2, PANELS + 1)
            ]
            stop = asyncio.Event()
            load = asyncio.create_task(_background(background, stop), name="soak-load")
            started = time.perf_counter()
            minutes: list[dict[str, Any]] = []
            samples: list[float] = []
            restarted = False
            minute_end = started + 60
            n = 0
            rss0 = hub.memory()[0]
            while time.perf_counter() - started < duration:
                zone = n % 8 + 1
                n += 1
                device = f"btn-1-{zone}"
                with sub.lock:
                    sub.arrivals.pop(f"last:{device}", None)
                sent = time.perf_counter()
                probe.press(zone)
                deadline = sent + 120
                while time.perf_counter() < deadline:
                    with sub.lock:
                        got = sub.arrivals.get(f"last:{device}")
                    if got is not None:
                        samples.append(got - sent)
                        break
                    await asyncio.sleep(0.002)
                probe.restore(zone)
                if not restarted and time.perf_counter() - started >= duration / 2:
                    broker.stop()
                    await asyncio.sleep(3.0)  # the outage itself
                    broker.start()
                    restarted = True
                    print(f"broker restarted in minute {len(minutes) + 1}", flush=True)
                if time.perf_counter() >= minute_end:
                    rss, hwm = hub.memory()
                    row = {
                        "minute": len(minutes) + 1,
                        "alarms": len(samples),
                        "p50_ms": percentile(samples, 50) * 1e3,
                        "p99_ms": percentile(samples, 99) * 1e3,
                        "rss_mb": rss,
                        "peak_mb": hwm,
                        "cpu_s": hub.cpu_seconds(),
                    }
                    minutes.append(row)
                    print(
                        f"minute {row['minute']}: {len(samples)} alarms, p50 "
                        f"{row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, RSS {rss:.0f} MB",
                        flush=True,
                    )
                    samples = []
                    minute_end += 60
                await asyncio.sleep(0.5)  # the pace of the probe alarms
            if samples:  # the last, partial minute
                rss, hwm = hub.memory()
                minutes.append(
                    {
                        "minute": len(minutes) + 1,
                        "alarms": len(samples),
                        "p50_ms": percentile(samples, 50) * 1e3,
                        "p99_ms": percentile(samples, 99) * 1e3,
                        "rss_mb": rss,
                        "peak_mb": hwm,
                        "cpu_s": hub.cpu_seconds(),
                    }
                )
            stop.set()
            await load
            for p in [probe, *background]:
                await p.wait_idle(within=120)
            acked = sum(p.acked for p in [probe, *background])
            stored = _stored(work / "data" / "mallhub.db")
            deadline = time.perf_counter() + 120
            while time.perf_counter() < deadline:
                with sub.lock:
                    missing = stored - sub.event_ids
                if not missing:
                    break
                await asyncio.sleep(0.2)
            camera_states = farm[0].calls["GetSystemDateAndTime"]
        broker.stop()
    rows = [
        [m["minute"], m["alarms"], m["p50_ms"], m["p99_ms"], m["rss_mb"], m["peak_mb"]]
        for m in minutes
    ]
    print()
    print(table(["minute", "alarms", "p50 ms", "p99 ms", "hub RSS MB", "hub peak MB"], rows))
    growth = minutes[-1]["rss_mb"] - minutes[0]["rss_mb"] if minutes else float("nan")
    print()
    print(
        f"frames ACKed {acked} (NULLs included), events stored {len(stored)}, "
        f"stored but missing at the subscriber {len(missing)}; "
        f"RSS at start {rss0:.0f} MB, growth minute 1 → last {growth:+.1f} MB; "
        f"camera 0 probed {camera_states} times"
    )
    return {
        "minutes": minutes,
        "acked": acked,
        "stored": len(stored),
        "missing": len(missing),
        "rss_start_mb": rss0,
        "rss_growth_mb": growth,
    }
