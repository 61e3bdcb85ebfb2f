"""A city of emulated mall hubs that speak the police-link contract (docs/police-link.md).

Each emulated hub is what the police side sees of a real one, and nothing more: it
connects over MQTT 3.1.1 with a persistent session and a Last Will, publishes its retained
status, device availability and compliance summary, publishes events (QoS 1) with
``event_id`` and per-site ``seq``, answers ``ack`` commands with an update and a response,
and publishes again any alarm without a receipt after a timeout. It has no devices, store
or web console: it exists so that the patrol service can be run and measured with many
malls on one machine. Every message validates against the contract's JSON Schemas.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import secrets
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiomqtt

log = logging.getLogger(__name__)

DISTRICTS = ("金水区", "二七区", "中原区", "管城回族区", "惠济区", "郑东新区")
ALARMS = (
    ("alarm.panic", 1, "一键报警", "Panic alarm"),
    ("alarm.intrusion", 2, "入侵报警", "Intrusion"),
    ("alarm.fire", 1, "火警", "Fire alarm"),
)


def iso(dt: datetime | None = None) -> str:
    d = dt or datetime.now(UTC)
    return d.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def uuid7() -> str:
    """A time-ordered UUID (version 7), as the hub's event ids are."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(slots=True)
class MallSpec:
    site_id: str
    name: str
    district: str
    devices: int = 20


def city_specs(n: int, devices: int = 20, prefix: str = "zz-mall") -> list[MallSpec]:
    return [
        MallSpec(
            f"{prefix}-{i:04d}", f"郑州模拟商场{i:04d}", DISTRICTS[i % len(DISTRICTS)], devices
        )
        for i in range(1, n + 1)
    ]


@dataclass(slots=True)
class MallStats:
    published: int = 0
    republished: int = 0
    receipts: int = 0
    acks: int = 0
    sent_at: dict[str, float] = field(default_factory=dict)
    """event_id → time.time() of the first publish (for latency measurements)."""


class EmulatedHub:
    """One mall's hub, as the police see it."""

    def __init__(
        self,
        spec: MallSpec,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        receipt_timeout_s: float = 10.0,
    ) -> None:
        self.spec = spec
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.receipt_timeout_s = receipt_timeout_s
        self.prefix = f"mallhub/v1/{spec.site_id}"
        self.started_at = iso()
        self.seq = 0
        self.update_seq: dict[str, int] = {}
        self.unreceipted: dict[str, tuple[float, bytes]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.states: dict[str, str] = {}
        self.stats = MallStats()
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._device_state = {self.device_id(i): "online" for i in range(spec.devices)}

    def device_id(self, i: int) -> str:
        return f"btn-{i:03d}" if i % 10 == 0 else f"cam-{i:03d}"

    # --- messages ---------------------------------------------------------------------------

    def status(self, state: str, reason: str = "") -> dict[str, Any]:
        msg = {
            "schema": "mallhub/status/1",
            "site_id": self.spec.site_id,
            "state": state,
            "version": "city-sim",
            "started_at": self.started_at,
            "ts": iso(),
        }
        if reason:
            msg["reason"] = reason
        return msg

    def availability(self, device: str, state: str) -> dict[str, Any]:
        now = iso()
        return {
            "schema": "mallhub/availability/1",
            "site_id": self.spec.site_id,
            "device_id": device,
            "device_type": "alarm_button" if device.startswith("btn") else "camera",
            "state": state,
            "since": now,
            "reason": "" if state == "online" else "no answer",
            "last_seen": now if state == "online" else None,
            "ts": now,
        }

    def compliance(self) -> dict[str, Any]:
        offline = sum(1 for s in self._device_state.values() if s != "online")
        failing = []
        if offline:
            failing.append(
                {
                    "rule": "devices.online",
                    "status": "fail",
                    "title": {"zh": "设备在线", "en": "Devices online"},
                    "since": iso(),
                    "explanation": {
                        "zh": f"{offline} 台设备离线",
                        "en": f"{offline} device(s) offline",
                    },
                }
            )
        return {
            "schema": "mallhub/compliance/1",
            "site_id": self.spec.site_id,
            "overall": "non_compliant" if failing else "compliant",
            "evaluated_at": iso(),
            "counts": {
                "pass": 10 - len(failing),
                "fail": len(failing),
                "unknown": 0,
                "attested": 0,
            },
            "failing": failing,
        }

    def event(self, kind: str, priority: int, zh: str, en: str, device: str) -> dict[str, Any]:
        self.seq += 1
        now = iso()
        category = kind.split(".")[0]
        return {
            "schema": "mallhub/event/1",
            "event_id": uuid7(),
            "seq": self.seq,
            "site": {"id": self.spec.site_id, "name": self.spec.name, "address": "郑州市"},
            "kind": kind,
            "category": category,
            "priority": priority,
            "occurred_at": now,
            "received_at": now,
            "device": {
                "id": device,
                "type": "alarm_button",
                "name": f"{device} 一键报警",
                "location": {"floor": "1F", "zone": "gate", "role": "gate"},
            },
            "source": {"protocol": "city-sim"},
            "gb28181": {
                "alarm_priority": priority,
                "alarm_method": 2 if category == "alarm" else 6,
                "alarm_type": None,
            },
            "cameras": [],
            "text": {"zh": f"1F {device}：{zh}", "en": f"{en}: {device} (1F)"},
            "hub_version": "city-sim",
        }

    # --- the link ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, change_every_s: float | None = None) -> None:
        """Stay connected (reconnecting as a hub does) until ``stop``."""
        while not stop.is_set():
            try:
                await self._session(stop, change_every_s)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self._client = None
                log.debug("%s: link down: %s", self.spec.site_id, exc)
                await asyncio.sleep(random.uniform(0.2, 1.0))

    async def _session(self, stop: asyncio.Event, change_every_s: float | None) -> None:
        will = aiomqtt.Will(
            f"{self.prefix}/status",
            json.dumps(self.status("offline", "connection lost")),
            qos=1,
            retain=True,
        )
        async with aiomqtt.Client(
            self.host,
            self.port,
            identifier=f"mallhub-{self.spec.site_id}",
            username=self.username,
            password=self.password,
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=False,
            will=will,
            keepalive=30,
            timeout=20,
            logger=logging.getLogger(f"{__name__}.mqtt"),
        ) as client:
            self._client = client
            await client.subscribe(f"{self.prefix}/receipts", qos=1)
            await client.subscribe(f"{self.prefix}/commands/+", qos=1)
            await self._pub("status", self.status("online"), retain=True)
            for dev, state in self._device_state.items():
                await self._pub(f"devices/{dev}/availability", self.availability(dev, state), True)
            await self._pub("compliance", self.compliance(), retain=True)
            for _, payload in list(self.unreceipted.values()):
                await client.publish(f"{self.prefix}/events/alarm", payload, qos=1)
            self.connected.set()
            tasks = [
                asyncio.create_task(self._incoming(client)),
                asyncio.create_task(self._resend()),
                asyncio.create_task(stop.wait()),
            ]
            if change_every_s:
                tasks.append(asyncio.create_task(self._changes(change_every_s)))
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    t.result()  # a lost link raises here, and the hub reconnects
                await self._pub("status", self.status("offline", "hub stopped"), retain=True)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _pub(self, suffix: str, body: dict[str, Any], retain: bool = False) -> None:
        assert self._client is not None
        await self._client.publish(
            f"{self.prefix}/{suffix}", json.dumps(body, ensure_ascii=False), qos=1, retain=retain
        )

    async def press(self, kind: str = "alarm.panic", device: str = "btn-000") -> str:
        """An alarm, as if a button of this mall was pressed; returns its event_id."""
        spec = next((a for a in ALARMS if a[0] == kind), ALARMS[0])
        body = self.event(spec[0], spec[1], spec[2], spec[3], device)
        payload = json.dumps(body, ensure_ascii=False).encode()
        event_id = body["event_id"]
        self.events[event_id] = body
        self.states[event_id] = "new"
        self.unreceipted[event_id] = (time.monotonic(), payload)
        self.stats.sent_at[event_id] = time.time()
        await self.connected.wait()
        client = self._client
        if client is None:
            return str(event_id)  # published again after the reconnect
        try:
            await client.publish(f"{self.prefix}/events/alarm", payload, qos=1)
        except aiomqtt.MqttError:
            return str(event_id)  # likewise
        self.stats.published += 1
        return str(event_id)

    async def set_device(self, device: str, state: str) -> None:
        self._device_state[device] = state
        await self._pub(f"devices/{device}/availability", self.availability(device, state), True)
        await self._pub("compliance", self.compliance(), retain=True)

    async def _changes(self, every_s: float) -> None:
        devices = list(self._device_state)
        while True:
            await asyncio.sleep(random.expovariate(1 / every_s))
            dev = random.choice(devices)
            state = "offline" if self._device_state[dev] == "online" else "online"
            await self.set_device(dev, state)

    async def _resend(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.receipt_timeout_s / 2))
            now = time.monotonic()
            for event_id, (at, payload) in list(self.unreceipted.items()):
                if now - at >= self.receipt_timeout_s and self._client is not None:
                    self.unreceipted[event_id] = (now, payload)
                    await self._client.publish(f"{self.prefix}/events/alarm", payload, qos=1)
                    self.stats.republished += 1

    async def _incoming(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                body = json.loads(payload)
            except ValueError:
                continue
            if not isinstance(body, dict):
                continue
            if topic.endswith("/receipts"):
                if self.unreceipted.pop(str(body.get("event_id")), None) is not None:
                    self.stats.receipts += 1
            elif topic.endswith("/commands/ack"):
                await self._ack(body)

    async def _ack(self, body: dict[str, Any]) -> None:
        rid = body.get("request_id")
        event_id = body.get("event_id")
        by = body.get("by")
        if not isinstance(rid, str) or not 1 <= len(rid) <= 64:
            return
        response: dict[str, Any] = {
            "schema": "mallhub/response/1",
            "site_id": self.spec.site_id,
            "request_id": rid,
            "command": "ack",
            "ts": iso(),
        }
        if not isinstance(event_id, str) or event_id not in self.events or not isinstance(by, str):
            response |= {"ok": False, "error": {"code": "not_found", "message": "no such event"}}
            await self._pub(f"responses/{rid}", response)
            return
        changed = self.states[event_id] == "new"
        if changed:
            self.states[event_id] = "acknowledged"
            self.stats.acks += 1
            n = self.update_seq[event_id] = self.update_seq.get(event_id, 0) + 1
            update = {
                "schema": "mallhub/event-update/1",
                "event_id": event_id,
                "update_seq": n,
                "site_id": self.spec.site_id,
                "ts": iso(),
                "state": {"state": "acknowledged", "by": by[:128], "via": "police", "at": iso()},
            }
            await self._pub("updates", update)
        result = {"event_id": event_id, "state": self.states[event_id], "changed": changed}
        await self._pub(f"responses/{rid}", response | {"ok": True, "result": result})


async def run_city(
    broker: str,
    specs: Iterable[MallSpec],
    stop: asyncio.Event,
    *,
    press_every_s: float | None = 20.0,
    change_every_s: float | None = 60.0,
    credentials: dict[str, str] | None = None,
) -> list[EmulatedHub]:
    """Run every mall until ``stop``; returns the hubs (for their statistics)."""
    parts = urlsplit(broker)
    host, port = parts.hostname or "127.0.0.1", parts.port or 1883
    creds = credentials or {}
    hubs = [
        EmulatedHub(
            s,
            host,
            port,
            username=s.site_id if s.site_id in creds else None,
            password=creds.get(s.site_id),
        )
        for s in specs
    ]

    async def one(hub: EmulatedHub) -> None:
        await hub.run(stop, change_every_s=change_every_s)

    async def presses() -> None:
        if not press_every_s:
            return
        while not stop.is_set():
            await asyncio.sleep(random.expovariate(1 / press_every_s))
            hub = random.choice(hubs)
            if hub.connected.is_set():
                kind = random.choice(ALARMS)[0]
                button = 10 * random.randrange(max(1, hub.spec.devices // 10))
                await hub.press(kind, hub.device_id(button))

    async with asyncio.TaskGroup() as tg:
        for h in hubs:
            tg.create_task(one(h))
        tg.create_task(presses())
    return hubs


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", required=True, help="mqtt://host:port (NATS MQTT listener)")
    p.add_argument("--malls", type=int, default=10)
    p.add_argument("--devices", type=int, default=20, help="devices per mall")
    p.add_argument("--press-every", type=float, default=20.0, help="mean seconds between alarms")
    p.add_argument("--change-every", type=float, default=60.0, help="per mall, device changes")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")


async def run(args: argparse.Namespace) -> int:
    if args.malls < 1 or args.devices < 1:
        print("mallsim city: --malls and --devices must be at least 1", file=sys.stderr)
        return 2
    if urlsplit(args.broker).scheme != "mqtt" or not urlsplit(args.broker).hostname:
        print("mallsim city: --broker must be mqtt://host:port", file=sys.stderr)
        return 2
    # Each emulated mall logs in as its site id with this password when it is set.
    password = os.environ.get("CITY_MALL_PASSWORD")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.duration:
        loop.call_later(args.duration, stop.set)
    specs = city_specs(args.malls, args.devices)
    creds = {s.site_id: password for s in specs} if password else None
    await run_city(
        args.broker,
        specs,
        stop,
        press_every_s=args.press_every,
        change_every_s=args.change_every,
        credentials=creds,
    )
    return 0
