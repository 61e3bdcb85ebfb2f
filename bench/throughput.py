"""Sustained throughput: many panels at once, against a raw paho-mqtt QoS 1 publish loop.

Hub: ``--panels`` simulated panels (default 50) each send ``--events`` alarms (default 100)
as fast as the hub acknowledges them (a panel has one message in flight, as real ones do).
The rate is events reaching the subscriber per second, from the first press to the last
arrival, and it only counts when nothing was lost: every ACKed event arrived, ``seq`` has no
gap.

Baseline: one paho-mqtt client publishing the same number of event-sized messages with QoS 1
and the hub's publish window (64 in flight) to the same broker, received by the same
subscriber. Measured before and after the hub; the faster of the two is the baseline.
Goal: hub ≥ 50 % of raw.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import time
from dataclasses import dataclass
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
    process_cpu_seconds,
    sample_event_payload,
    sia_port,
    site_config,
    table,
    verdict,
    wait_subscribed,
    workdir,
)
from simulators.panel import PanelSimulator

GOAL = 0.5
RAW_TOPIC = "bench/raw/throughput"


@dataclass
class Result:
    total: int
    hub_rate: float
    hub_s: float
    raw_rates: list[float]
    raw_cpu_s_per_msg: float
    """CPU of the raw loop's process (paho publisher + subscriber) per message."""
    lost: int
    gaps: int
    duplicates: int
    hub_cpu_s: float
    bench_cpu_s: float
    """The benchmark process (the simulated panels and the subscriber) during the hub run."""
    broker_cpu_s: float
    peak_rss_mib: float
    gc_longest_s: float = float("nan")
    """The hub's longest garbage-collection pause between the first press and the last
    arrival (bench/gcprobe.py)."""
    gc_generation: int = -1
    gc_longest_cpu_s: float = float("nan")

    @property
    def raw_rate(self) -> float:
        return max(self.raw_rates)

    @property
    def ratio(self) -> float:
        return self.hub_rate / self.raw_rate

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.gaps == 0 and self.ratio >= GOAL

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.total,
            "hub_events_per_s": self.hub_rate,
            "raw_events_per_s": self.raw_rates,
            "ratio": self.ratio,
            "lost": self.lost,
            "seq_gaps": self.gaps,
            "duplicate_deliveries": self.duplicates,
            "hub_cpu_ms_per_event": self.hub_cpu_s / self.total * 1e3,
            "panels_and_subscriber_cpu_ms_per_event": self.bench_cpu_s / self.total * 1e3,
            "broker_cpu_ms_per_event": self.broker_cpu_s / self.total * 1e3,
            "raw_publisher_and_subscriber_cpu_ms_per_msg": self.raw_cpu_s_per_msg * 1e3,
            "cores_busy": (self.hub_cpu_s + self.bench_cpu_s + self.broker_cpu_s) / self.hub_s,
            "hub_peak_rss_mib": self.peak_rss_mib,
            "hub_gc_longest_ms": self.gc_longest_s * 1e3,
            "hub_gc_longest_generation": self.gc_generation,
            "hub_gc_longest_cpu_ms": self.gc_longest_cpu_s * 1e3,
            "goal_met": self.ok,
        }


async def raw_rate(sub: Subscriber, pub: Publisher, count: int) -> tuple[float, float]:
    """Messages per second through the broker (first publish → last arrival), and the CPU
    seconds the publishing and subscribing process spent per message meanwhile."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    got = 0

    def on_arrival(a: Arrival) -> None:
        nonlocal got
        if a.topic == RAW_TOPIC:
            got += 1
            if got == count and not done.done():
                done.set_result(a.at)

    sub.on_arrival = on_arrival
    payload = sample_event_payload()
    cpu0 = process_cpu_seconds(os.getpid())
    t0 = time.perf_counter()

    # The publish loop runs in a thread, as a plain paho program would.
    def loop_publish() -> None:
        for _ in range(count):
            pub.publish(RAW_TOPIC, payload)

    await asyncio.to_thread(loop_publish)
    last = await asyncio.wait_for(done, 120)
    sub.on_arrival = None
    return count / (last - t0), (process_cpu_seconds(os.getpid()) - cpu0) / count


async def measure(panels: int, per_panel: int, workdir: Path) -> Result:
    loop = asyncio.get_running_loop()
    broker = Broker(workdir)
    broker.start()
    config = site_config(
        broker_url=broker.url, data_dir=workdir / "data", sia_port=sia_port(), panels=panels
    )
    hub = HubProcess(config, workdir)
    sub = Subscriber(broker.port, [f"{PREFIX}/events/#", RAW_TOPIC], loop, keep=False)
    pub: Publisher | None = None
    total = panels * per_panel
    try:
        hub.start()
        sub.start()
        pub = Publisher(broker.port, max_inflight=64)
        sub.keep = True
        await wait_subscribed(sub, pub, RAW_TOPIC)
        sub.keep = False
        await hub.ready()
        raw_rate_1, raw_cpu_1 = await raw_rate(sub, pub, total)

        sims = [
            PanelSimulator(
                "127.0.0.1", hub.sia_port, account(i), ack_timeout=10.0, reconnect_max=0.5
            )
            for i in range(1, panels + 1)
        ]
        for p in sims:
            await p.__aenter__()
        try:
            # Warm-up: every panel connected and one alarm each through to the subscriber.
            hub_events: list[Arrival] = []
            first_wave: asyncio.Future[None] = loop.create_future()

            def on_hub(a: Arrival) -> None:
                if a.topic.startswith(f"{PREFIX}/events/"):
                    hub_events.append(a)
                    if len(hub_events) == panels and not first_wave.done():
                        first_wave.set_result(None)
                    if len(hub_events) == panels + total and not finished.done():
                        finished.set_result(a.at)

            finished: asyncio.Future[float] = loop.create_future()
            sub.on_arrival = on_hub
            for p in sims:
                p.press(8)
            await asyncio.wait_for(first_wave, 120)
            for p in sims:
                await p.wait_idle(within=60)

            cpu0 = hub.cpu_seconds()
            bench0 = process_cpu_seconds(os.getpid())
            broker0 = process_cpu_seconds(broker.pid)
            t0 = time.perf_counter()
            for p in sims:
                for i in range(per_panel):
                    p.press(i % 7 + 1)
            try:
                last = await asyncio.wait_for(finished, max(300.0, total / 20))
            except TimeoutError:
                last = time.perf_counter()
            hub_s = last - t0
            cpu = hub.cpu_seconds() - cpu0
            bench_cpu = process_cpu_seconds(os.getpid()) - bench0
            broker_cpu = process_cpu_seconds(broker.pid) - broker0
            for p in sims:
                await p.wait_idle(within=60)
            acked = sum(p.acked for p in sims) - panels
        finally:
            for p in sims:
                await p.__aexit__(None, None, None)
        sub.on_arrival = None
        raw_rate_2, raw_cpu_2 = await raw_rate(sub, pub, total)
        _, peak = hub.memory()

        ids: dict[str, int] = {}
        deliveries = 0
        for a in hub_events:
            body = json.loads(a.payload)
            ids[body["event_id"]] = body["seq"]
            deliveries += 1
        hub.stop()
        pauses = hub.gc_pauses()
        gc_longest, gc_gen, _ = (
            pauses.longest_in([(t0, last)]) if pauses is not None else (float("nan"), -1, 0)
        )
        gc_cpu = pauses.longest_cpu_in([(t0, last)]) if pauses is not None else float("nan")
        seqs = sorted(set(ids.values()))
        gaps = sum(1 for a, b in itertools.pairwise(seqs) if b != a + 1)
        lost = max(0, acked - (len(ids) - panels))
        return Result(
            total=total,
            hub_rate=(len(ids) - panels) / hub_s,
            hub_s=hub_s,
            raw_rates=[raw_rate_1, raw_rate_2],
            raw_cpu_s_per_msg=min(raw_cpu_1, raw_cpu_2),
            lost=lost,
            gaps=gaps,
            duplicates=deliveries - len(ids),
            hub_cpu_s=cpu,
            bench_cpu_s=bench_cpu,
            broker_cpu_s=broker_cpu,
            peak_rss_mib=peak,
            gc_longest_s=gc_longest,
            gc_generation=gc_gen,
            gc_longest_cpu_s=gc_cpu,
        )
    finally:
        if pub is not None:
            pub.close()
        sub.stop()
        hub.stop()
        broker.stop()


def report(r: Result, panels: int) -> None:
    print(f"Sustained throughput, {panels} panels, {r.total} events (events per second)")
    rows: list[list[object]] = [
        [f"hub: {panels} panels → hub → broker → subscriber", r.total, r.hub_rate, r.hub_s],
        *[
            [f"raw: paho QoS 1 publish loop, 64 in flight (run {i + 1})", r.total, rate, ""]
            for i, rate in enumerate(r.raw_rates)
        ],
    ]
    print(table(["path", "events", "events/s", "seconds"], rows))
    print()
    print(
        f"lost: {r.lost}, seq gaps: {r.gaps}, duplicate deliveries: {r.duplicates}; "
        f"hub CPU {r.hub_cpu_s / r.total * 1e3:.2f} ms/event, peak RSS {r.peak_rss_mib:.0f} MiB"
    )
    per = 1e3 / r.total
    busy = (r.hub_cpu_s + r.bench_cpu_s + r.broker_cpu_s) / r.hub_s
    print(
        f"CPU per event during the hub run: hub {r.hub_cpu_s * per:.3f} ms, panels + subscriber "
        f"{r.bench_cpu_s * per:.3f} ms, broker {r.broker_cpu_s * per:.3f} ms; "
        f"{busy:.2f} of {os.cpu_count()} cores busy"
    )
    print(
        f"raw loop CPU per message (paho publisher + subscriber): "
        f"{r.raw_cpu_s_per_msg * 1e3:.3f} ms; at its CPU per event the hub alone could reach "
        f"{r.total / r.hub_cpu_s:,.0f} events/s = {r.total / r.hub_cpu_s / r.raw_rate:.0%} of raw"
    )
    print(
        f"hub's longest GC pause during the run: {r.gc_longest_s * 1e3:.2f} ms "
        f"(generation {r.gc_generation}); the longest collection's own work "
        f"{r.gc_longest_cpu_s * 1e3:.2f} ms of CPU"
    )
    print(f"hub / raw = {r.ratio:.1%} (goal ≥ {GOAL:.0%}, zero loss): {verdict(r.ok)}")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--panels", type=int, default=50, help="panels sending at once (default 50)")
    p.add_argument("--events", type=int, default=100, help="alarms per panel (default 100)")
    p.add_argument("--keep", action="store_true", help="keep the working directory")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    print_machine()
    with workdir("throughput", args.keep) as work:
        r = await measure(args.panels, args.events, work)
    report(r, args.panels)
    return r.as_dict()
