"""Alarm latency end to end, against the physical limit measured in the same run.

Hub path: the panel simulator presses a button over TCP → the hub (SIA receiver, store
commit, ACK, outbox drain) → Mosquitto → a subscriber. One alarm at a time, so each sample
is one alarm's whole journey.

Limit: what no hub could beat on this machine — one durable SQLite commit (WAL,
``synchronous=FULL``, an event row and an outbox row of the real size, in a file next to the
hub's store) followed by a raw paho-mqtt QoS 1 publish of an event-sized payload, received by
the same subscriber on the same broker.

Hub and limit samples are taken in alternating blocks, so a burst of load from elsewhere on
the machine disturbs both alike. Goal: hub p99 ≤ 1.5 × limit p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    PREFIX,
    Arrival,
    Broker,
    HubProcess,
    Publisher,
    Subscriber,
    account,
    print_machine,
    sample_event_payload,
    sia_port,
    site_config,
    summary_ms,
    table,
    verdict,
    wait_subscribed,
    workdir,
)
from simulators.panel import PanelSimulator

GOAL_RATIO = 1.5
RAW_TOPIC = "bench/raw/latency"


class StackFloor:
    """One alarm's commit through the hub's own store code (StoreWriter + Ingest), with
    nothing else running: the floor the store sets. ``fast``: SQLite's one-hop fast path (what
    the hub uses); otherwise the general path (SQLAlchemy async over aiosqlite, one thread hop
    per statement), which alarms took before the fast path existed."""

    def __init__(self, workdir: Path, config: dict[str, Any], *, fast: bool) -> None:
        from hub.config import parse_config

        cfg = dict(config)
        cfg["storage"] = {"data_dir": str(workdir / ("floor-fast" if fast else "floor-general"))}
        self.config = parse_config(cfg, env={})
        self.fast = fast
        self.n = 0

    async def __aenter__(self) -> StackFloor:
        from hub.ingest import Ingest
        from hub.site import SiteIndex
        from hub.store import StoreWriter, create_engine, upgrade

        self.engine = create_engine(self.config.storage.url())
        await upgrade(self.engine)
        self.writer = StoreWriter(self.engine, fast=self.fast)
        await self.writer.__aenter__()
        self.ingest = Ingest(self.config, SiteIndex(self.config), self.writer)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.writer.__aexit__(None, None, None)
        await self.engine.dispose()

    async def commit(self) -> float:
        from datetime import UTC, datetime

        from adapters.device_event import DeviceEvent

        self.n += 1
        event = DeviceEvent(
            "btn-1-1",
            "alarm.panic",
            datetime.now(UTC),
            source={"protocol": "sia-dc09", "account": account(1), "zone": 1},
            dedupe_key=f"floor:{self.n}",
        )
        t0 = time.perf_counter()
        await self.ingest.ingest(event)
        return time.perf_counter() - t0


class LimitStore:
    """The cheapest durable commit of one alarm: two rows, one transaction, fsync'd."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, m TEXT)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, m TEXT)")
        self.payload = sample_event_payload().decode()

    def commit(self) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO events (m) VALUES (?)", (self.payload,))
        c.execute("INSERT INTO outbox (m) VALUES (?)", (self.payload,))
        c.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


@dataclass
class Result:
    hub: list[float]
    ack: list[float]
    limit: list[float]
    commit: list[float]
    mqtt: list[float]
    hub_cpu_s: float
    elapsed_s: float
    stack: list[float]
    general: list[float]
    windows: list[tuple[float, float]] = field(default_factory=list)
    """When the hub's alarms were timed (perf_counter), for the GC pauses inside them."""
    gc_longest_s: float = float("nan")
    gc_generation: int = -1
    gc_collections: int = 0
    gc_longest_cpu_s: float = float("nan")

    def rows(self) -> list[list[object]]:
        out: list[list[object]] = []
        for name, samples in (
            ("hub: panel → hub (store, ACK) → broker → subscriber", self.hub),
            ("  of which: press → ACK back at the panel", self.ack),
            ("limit: durable commit + paho QoS 1 publish → receive", self.limit),
            ("  of which: durable commit (SQLite WAL, FULL)", self.commit),
            ("  of which: paho QoS 1 publish → receive", self.mqtt),
            ("floor: one alarm commit through the hub's store (fast path)", self.stack),
            ("floor: same, general path (async SQLAlchemy, aiosqlite)", self.general),
        ):
            s = summary_ms(samples)
            out.append([name, len(samples), s["p50"], s["p99"], s["max"]])
        return out

    @property
    def ratio(self) -> float:
        return summary_ms(self.hub)["p99"] / summary_ms(self.limit)["p99"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "hub_ms": summary_ms(self.hub),
            "hub_press_to_ack_ms": summary_ms(self.ack),
            "limit_ms": summary_ms(self.limit),
            "commit_ms": summary_ms(self.commit),
            "mqtt_ms": summary_ms(self.mqtt),
            "ratio_p99": self.ratio,
            "goal_met": self.ratio <= GOAL_RATIO,
            "stack_floor_ms": summary_ms(self.stack),
            "general_path_floor_ms": summary_ms(self.general),
            "samples": len(self.hub),
            "hub_gc_longest_ms": self.gc_longest_s * 1e3,
            "hub_gc_longest_generation": self.gc_generation,
            "hub_gc_collections": self.gc_collections,
            "hub_gc_longest_cpu_ms": self.gc_longest_cpu_s * 1e3,
        }


async def measure(alarms: int, block: int, workdir: Path, warmup: int = 50) -> Result:
    loop = asyncio.get_running_loop()
    broker = Broker(workdir)
    broker.start()
    config = site_config(broker_url=broker.url, data_dir=workdir / "data", sia_port=sia_port())
    hub = HubProcess(config, workdir)
    waiting: dict[str, asyncio.Future[Arrival]] = {}

    def on_arrival(a: Arrival) -> None:
        key = RAW_TOPIC if a.topic == RAW_TOPIC else "hub"
        fut = waiting.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(a)

    sub = Subscriber(broker.port, [f"{PREFIX}/events/#", RAW_TOPIC], loop, on_arrival, keep=False)
    pub: Publisher | None = None
    store: LimitStore | None = None
    result: Result | None = None
    try:
        hub.start()
        sub.start()
        pub = Publisher(broker.port)
        sub.keep = True
        await wait_subscribed(sub, pub, RAW_TOPIC)
        sub.keep = False
        await hub.ready()
        (workdir / "data").mkdir(exist_ok=True)
        store = LimitStore(workdir / "data" / "limit.db")
        async with (
            PanelSimulator(
                "127.0.0.1", hub.sia_port, account(1), ack_timeout=5.0, reconnect_max=0.5
            ) as panel,
            StackFloor(workdir, config, fast=True) as stack,
            StackFloor(workdir, config, fast=False) as general,
        ):

            async def one_alarm(i: int, within: float = 10.0) -> tuple[float, float]:
                """(press → arrival, press → ACK seen by the panel)."""
                fut: asyncio.Future[Arrival] = loop.create_future()
                waiting["hub"] = fut
                acked = panel.acked
                t0 = time.perf_counter()
                panel.press(i % 8 + 1)
                await panel.wait_acked(acked + 1, within)
                t_ack = time.perf_counter()
                arrival = await asyncio.wait_for(fut, within)
                body = json.loads(arrival.payload)
                if body["source"]["account"] != account(1):
                    raise RuntimeError(f"unexpected event {body['kind']}")
                return arrival.at - t0, t_ack - t0

            async def one_limit() -> tuple[float, float, float]:
                assert store is not None and pub is not None
                fut: asyncio.Future[Arrival] = loop.create_future()
                waiting[RAW_TOPIC] = fut
                t0 = time.perf_counter()
                store.commit()
                t1 = time.perf_counter()
                pub.publish(RAW_TOPIC, store.payload.encode())
                arrival = await asyncio.wait_for(fut, 10)
                return arrival.at - t0, t1 - t0, arrival.at - t1

            # Warm-up: the first alarm waits for the police link to come up.
            await one_alarm(0, within=60)
            for i in range(warmup):
                await one_alarm(i)
                await one_limit()
                await stack.commit()
                await general.commit()
            result = Result([], [], [], [], [], 0.0, 0.0, [], [])
            cpu0 = hub.cpu_seconds()
            started = time.perf_counter()
            done = 0
            while done < alarms:
                n = min(block, alarms - done)
                block_started = time.perf_counter()
                for i in range(n):
                    total_s, ack_s = await one_alarm(done + i)
                    result.hub.append(total_s)
                    result.ack.append(ack_s)
                result.windows.append((block_started, time.perf_counter()))
                for _ in range(n):
                    total, commit, mqtt = await one_limit()
                    result.limit.append(total)
                    result.commit.append(commit)
                    result.mqtt.append(mqtt)
                for _ in range(n):
                    result.stack.append(await stack.commit())
                    result.general.append(await general.commit())
                done += n
            result.elapsed_s = time.perf_counter() - started
            result.hub_cpu_s = hub.cpu_seconds() - cpu0
        return result
    finally:
        if store is not None:
            store.close()
        if pub is not None:
            pub.close()
        sub.stop()
        hub.stop()
        broker.stop()
        pauses = hub.gc_pauses()
        if pauses is not None and result is not None:
            longest, gen, count = pauses.longest_in(result.windows)
            result.gc_longest_s, result.gc_generation, result.gc_collections = longest, gen, count
            result.gc_longest_cpu_s = pauses.longest_cpu_in(result.windows)


def report(r: Result) -> None:
    print("Alarm latency, one alarm at a time (milliseconds)")
    print(table(["path", "samples", "p50", "p99", "max"], r.rows()))
    print()
    print(
        f"hub p99 / limit p99 = {r.ratio:.2f} (goal ≤ {GOAL_RATIO}): "
        f"{verdict(r.ratio <= GOAL_RATIO)}"
    )
    per_alarm_ms = r.hub_cpu_s / max(1, len(r.hub)) * 1e3
    print(f"hub process CPU per alarm: {per_alarm_ms:.2f} ms; run took {r.elapsed_s:.1f} s")
    print(
        f"hub's longest GC pause while alarms were timed: {r.gc_longest_s * 1e3:.2f} ms "
        f"(generation {r.gc_generation}, {r.gc_collections} collections); the longest "
        f"collection's own work {r.gc_longest_cpu_s * 1e3:.2f} ms of CPU"
    )


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alarms", type=int, default=3000, help="alarms to time (default 3000)")
    p.add_argument("--block", type=int, default=100, help="alternate hub/limit every N samples")
    p.add_argument("--keep", action="store_true", help="keep the working directory")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    print_machine()
    with workdir("latency", args.keep) as work:
        r = await measure(args.alarms, args.block, work)
    report(r)
    return r.as_dict()
