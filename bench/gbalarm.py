"""GB/T 28181 alarm uplink: from an alarm stored to ``Notify/Alarm`` at the upper platform.

One process, one event loop, one clock: a private Mosquitto, the simulated upper platform
(simulators.gb28181_platform), an MQTT subscriber standing in for the police alarm
platform, and the hub with ``police.gb28181``. Each alarm is ingested as a button press
would be; for each the benchmark takes the time the store answered (durable), the time the
event reached the MQTT subscriber (the baseline: the hub's own MQTT forwarding in the same
run) and the time its ``Notify/Alarm`` reached the upper platform. Alarms go one at a time
(the demo's pace) and then in a burst (every button at once).

Goal (issue: "delivers each alarm of the demo as Notify/Alarm within 1 s of storing it"):
the largest store→Notify delay ≤ 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt

from bench.common import (
    SITE,
    Broker,
    print_machine,
    sia_port,
    site_config,
    summary_ms,
    table,
    verdict,
    workdir,
)

PLATFORM_ID = "41010000002000000001"
HUB_GB_ID = "41010500002000000001"
GOAL_S = 1.0


@dataclass
class Timings:
    stored: dict[str, float] = field(default_factory=dict)
    mqtt: dict[str, float] = field(default_factory=dict)

    def delays(self, arrived: dict[str, float]) -> list[float]:
        return [arrived[k] - self.stored[k] for k in self.stored if k in arrived]


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--panels", type=int, default=4, help="panels of 8 buttons (default 4)")
    p.add_argument("--rounds", type=int, default=5, help="one-at-a-time rounds (default 5)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")


async def _until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if condition():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"gave up after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.002)


@contextmanager
def _broker(path: Path) -> Iterator[Broker]:
    broker = Broker(path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def _subscribe(url_port: int, timings: Timings, ready: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    async with aiomqtt.Client(
        "127.0.0.1", url_port, identifier=f"bench-gb-{secrets.token_hex(3)}"
    ) as c:
        await c.subscribe(f"mallhub/v1/{SITE}/events/#", qos=1)
        ready.set()
        async for msg in c.messages:
            at = loop.time()
            try:
                body = json.loads(bytes(msg.payload))
            except ValueError:
                continue
            if isinstance(body, dict) and isinstance(body.get("event_id"), str):
                timings.mqtt.setdefault(body["event_id"], at)


async def measure(panels: int, rounds: int, path: Path) -> dict[str, Any]:
    from adapters.device_event import DeviceEvent
    from hub.app import Hub
    from hub.config import parse_config
    from hub.police.gb28181 import GbUplink
    from simulators.gb28181_platform import UpperPlatform

    password = secrets.token_urlsafe(12)
    loop = asyncio.get_running_loop()
    timings = Timings()
    notify_at: dict[str, float] = {}
    with _broker(path) as broker:
        async with AsyncExitStack() as stack:
            upper = await stack.enter_async_context(
                UpperPlatform(platform_id=PLATFORM_ID, password=password)
            )
            data = site_config(
                broker_url=broker.url, data_dir=path / "hub", sia_port=sia_port(), panels=panels
            )
            data["police"]["gb28181"] = {
                "server_id": PLATFORM_ID,
                "host": "127.0.0.1",
                "port": upper.port,
                "password": "${BENCH_GB_PASSWORD}",
                "device_id": HUB_GB_ID,
                "local_host": "127.0.0.1",
                "local_port": 0,
            }
            cfg = parse_config(data, env={"BENCH_GB_PASSWORD": password})
            ready = asyncio.Event()
            sub = asyncio.create_task(_subscribe(broker.port, timings, ready))
            try:
                await asyncio.wait_for(ready.wait(), 10)
                hub = await stack.enter_async_context(Hub(cfg))
                uplink = hub.gb28181
                assert isinstance(uplink, GbUplink)
                await _until(
                    lambda: HUB_GB_ID in upper.registrations and hub.police.state.connected,
                    30,
                    "the hub registered and its police link up",
                )
                buttons = [b.id for p in cfg.devices.alarm_panels for b in p.zones]
                # Alarms on one channel reach the platform in the order they were stored.
                waiting: dict[str, list[str]] = {}
                seen = 0

                def collect() -> None:
                    nonlocal seen
                    for alarm in upper.alarms[seen:]:
                        queue = waiting.get(alarm.fields.get("DeviceID", ""))
                        if queue:
                            notify_at[queue.pop(0)] = alarm.received_at
                    seen = len(upper.alarms)

                def stored_now(button: str, event_id: str) -> None:
                    timings.stored[event_id] = loop.time()
                    waiting.setdefault(uplink.channel_ids[button], []).append(event_id)

                async def settle(expected: int) -> None:
                    await _until(
                        lambda: len(upper.alarms) >= expected and len(timings.mqtt) >= expected,
                        60,
                        f"{expected} alarms at both platforms",
                    )
                    collect()

                single: list[str] = []
                for _ in range(rounds):
                    for button in buttons:
                        stored = await hub.ingest.ingest(
                            DeviceEvent(button, "alarm.panic", datetime.now(UTC))
                        )
                        stored_now(button, stored.event_id)
                        single.append(stored.event_id)
                        await settle(len(timings.stored))
                burst_at = loop.time()

                async def press(button: str) -> None:
                    stored = await hub.ingest.ingest(
                        DeviceEvent(button, "alarm.panic", datetime.now(UTC))
                    )
                    stored_now(button, stored.event_id)

                await asyncio.gather(*(press(b) for b in buttons))
                await settle(len(timings.stored))
                burst_done = max(notify_at.values()) - burst_at
            finally:
                sub.cancel()
                await asyncio.gather(sub, return_exceptions=True)
    burst_ids = [k for k in timings.stored if k not in single]
    one = Timings({k: timings.stored[k] for k in single}, timings.mqtt)
    many = Timings({k: timings.stored[k] for k in burst_ids}, timings.mqtt)
    return {
        "alarms": len(timings.stored),
        "lost_notify": len(timings.stored) - len(notify_at),
        "lost_mqtt": len([k for k in timings.stored if k not in timings.mqtt]),
        "single_notify": summary_ms(one.delays(notify_at)),
        "single_mqtt": summary_ms(one.delays(timings.mqtt)),
        "burst_notify": summary_ms(many.delays(notify_at)),
        "burst_mqtt": summary_ms(many.delays(timings.mqtt)),
        "burst_size": len(burst_ids),
        "burst_all_s": round(burst_done, 3),
    }


def report(r: dict[str, Any]) -> None:
    rows = []
    for label, key in (("one at a time", "single"), (f"burst of {r['burst_size']}", "burst")):
        for path in ("mqtt", "notify"):
            s = r[f"{key}_{path}"]
            rows.append(
                [
                    label,
                    "MQTT event (baseline)" if path == "mqtt" else "GB/T 28181 Notify/Alarm",
                    s["p50"],
                    s["p99"],
                    s["max"],
                ]
            )
    print(table(["alarms", "from stored to", "p50 ms", "p99 ms", "max ms"], rows))
    worst = max(r["single_notify"]["max"], r["burst_notify"]["max"]) / 1000
    print(
        f"\n{r['alarms']} alarms; not delivered: Notify {r['lost_notify']}, MQTT {r['lost_mqtt']}"
    )
    print(
        f"goal: every Notify/Alarm within {GOAL_S:.0f} s of storing: worst {worst:.3f} s "
        f"{verdict(worst <= GOAL_S and r['lost_notify'] == 0)}"
    )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    print_machine()
    with workdir("gbalarm", args.keep) as path:
        result = await measure(args.panels, args.rounds, path)
    report(result)
    return result
