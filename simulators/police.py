"""Police alarm platform simulator: what a police consumer of mallhub does.

Subscribes to one site (or all with ``+``), validates every message against the published
JSON Schemas, prints a line per event, sends receipts, can send commands, and on exit
reports gaps in ``seq``, duplicates and schema violations. Usable as a library by tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import aiomqtt
from jsonschema import Draft202012Validator

log = logging.getLogger(__name__)

DEFAULT_SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"

# topic suffix (after <prefix>/) → schema file
_SCHEMA_BY_TOPIC = {
    "status": "status",
    "events": "event",
    "updates": "event-update",
    "devices": "availability",
    "compliance": "compliance",
    "responses": "response",
    "notices": "notice",
}
# command → schema of its result, checked inside a successful response
_RESULT_SCHEMA = {"inspect": "inspection"}


def load_validators(schema_dir: Path = DEFAULT_SCHEMAS) -> dict[str, Draft202012Validator]:
    out = {}
    for name in set(_SCHEMA_BY_TOPIC.values()) | set(_RESULT_SCHEMA.values()):
        schema = json.loads((schema_dir / f"{name}.schema.json").read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        out[name] = Draft202012Validator(schema)
    return out


@dataclass(slots=True)
class Received:
    topic: str
    site: str
    kind: str
    body: dict[str, Any]
    at: datetime
    retained: bool


@dataclass(slots=True)
class SiteView:
    """Everything received for one site."""

    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    event_order: list[str] = field(default_factory=list)
    """event_ids in first-arrival order."""
    deliveries: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seqs: set[int] = field(default_factory=set)
    updates: list[dict[str, Any]] = field(default_factory=list)
    availability: dict[str, dict[str, Any]] = field(default_factory=dict)
    compliance: dict[str, Any] | None = None
    status: dict[str, Any] | None = None
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    notices: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The latest retained state of each rectification notice, by notice_id."""

    def gaps(self) -> list[tuple[int, int]]:
        """Missing seq ranges between the lowest and the highest seen."""
        if not self.seqs:
            return []
        out = []
        ordered = sorted(self.seqs)
        expect = ordered[0]
        for s in ordered:
            if s > expect:
                out.append((expect, s - 1))
            expect = s + 1
        return out

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.deliveries.values() if n > 1)


class PolicePlatform:
    """Subscriber with receipts, commands and checks. An async context manager."""

    def __init__(
        self,
        broker: str,
        *,
        site: str = "+",
        prefix_root: str = "mallhub/v1",
        receipts: bool = True,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        schema_dir: Path = DEFAULT_SCHEMAS,
        on_message: Any = None,
        tls_ca: str | None = None,
        withhold_receipts: set[str] | None = None,
    ) -> None:
        parts = urlsplit(broker)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"broker must be mqtt://host:port or mqtts://host:port, not {broker}")
        self.host = parts.hostname
        self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.tls = parts.scheme == "mqtts"
        self.tls_ca = tls_ca
        self.site = site
        self.root = prefix_root
        self.receipts = receipts
        self.withhold_receipts = withhold_receipts if withhold_receipts is not None else set()
        self.username = username
        self.password = password
        self.client_id = client_id or f"mallsim-police-{uuid.uuid4().hex[:8]}"
        self.validators = load_validators(schema_dir)
        self.sites: dict[str, SiteView] = defaultdict(SiteView)
        self.received: list[Received] = []
        self.violations: list[tuple[str, str]] = []
        self.on_message = on_message
        self.connected = asyncio.Event()
        self.connects = 0
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._inboxes: list[asyncio.Queue[aiomqtt.Message]] = []
        self._late_receipts: list[tuple[str, str, str]] = []

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="police-sim")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def view(self, site: str) -> SiteView:
        return self.sites[site]

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                import ssl

                ctx = ssl.create_default_context(cafile=self.tls_ca) if self.tls else None
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=self.client_id,
                    username=self.username,
                    password=self.password,
                    clean_session=False,
                    protocol=aiomqtt.ProtocolVersion.V311,
                    tls_context=ctx,
                    keepalive=15,
                    queue_type=self._inbox_type(),
                ) as client:
                    self._client = client
                    await client.subscribe(f"{self.root}/{self.site}/#", qos=1)
                    self.connects += 1
                    self.connected.set()
                    delay = 0.2
                    await self._send_late_receipts(client)
                    async for msg in client.messages:
                        await self._handle(client, msg)
            except aiomqtt.MqttError as exc:
                log.debug("police simulator disconnected: %s", exc)
            finally:
                self._client = None
                self.connected.clear()
            # The client acknowledged (PUBACK) every message it queued; those still queued
            # when the connection dropped would otherwise be lost. Handle them now; their
            # receipts go out after reconnecting.
            while self._inboxes:
                inbox = self._inboxes.pop(0)
                while not inbox.empty():
                    await self._handle(None, inbox.get_nowait())
            await asyncio.sleep(delay * random.uniform(0.5, 1))
            delay = min(delay * 2, 2.0)

    async def _handle(self, client: aiomqtt.Client | None, msg: aiomqtt.Message) -> None:
        topic = msg.topic.value
        rest = topic[len(self.root) + 1 :].split("/")
        if len(rest) < 2:
            return
        site, what = rest[0], rest[1]
        if what in ("receipts", "commands"):
            return  # our own traffic
        payload = msg.payload if isinstance(msg.payload, bytes) else b""
        if not payload:
            return  # a cleared retained message
        try:
            body = json.loads(payload)
        except ValueError as exc:
            self.violations.append((topic, f"not JSON: {exc}"))
            return
        schema = _SCHEMA_BY_TOPIC.get(what)
        if schema is None:
            self.violations.append((topic, "unexpected topic"))
            return
        errors = sorted(self.validators[schema].iter_errors(body), key=lambda e: list(e.path))
        result_schema = (
            _RESULT_SCHEMA.get(str(body.get("command"))) if what == "responses" else None
        )
        if result_schema is not None and body.get("ok") is True:
            errors += sorted(
                self.validators[result_schema].iter_errors(body.get("result")),
                key=lambda e: list(e.path),
            )
        for err in errors:
            where = "/".join(str(p) for p in err.path) or "(root)"
            self.violations.append((topic, f"{where}: {err.message}"))
        view = self.sites[site]
        rec = Received(topic, site, what, body, datetime.now(UTC), bool(msg.retain))
        self.received.append(rec)
        if what == "events":
            eid = str(body.get("event_id"))
            view.deliveries[eid] += 1
            if eid not in view.events:
                view.events[eid] = body
                view.event_order.append(eid)
                if isinstance(body.get("seq"), int):
                    view.seqs.add(body["seq"])
            if self.receipts and eid not in self.withhold_receipts:
                receipt = (site, eid, datetime.now(UTC).isoformat())
                if client is None:
                    self._late_receipts.append(receipt)
                else:
                    try:
                        await self._publish_receipt(client, *receipt)
                    except aiomqtt.MqttError:
                        self._late_receipts.append(receipt)
                        raise
        elif what == "updates":
            view.updates.append(body)
        elif what == "devices" and len(rest) >= 3:
            view.availability[rest[2]] = body
        elif what == "compliance":
            view.compliance = body
        elif what == "status":
            view.status = body
        elif what == "responses":
            view.responses[str(body.get("request_id") or "_invalid")] = body
        elif what == "notices" and len(rest) >= 3:
            known = view.notices.get(rest[2])
            if known is None or int(body.get("version", 0)) >= int(known.get("version", 0)):
                view.notices[rest[2]] = body
        if self.on_message is not None:
            self.on_message(rec)
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Any, within: float = 10.0) -> None:
        """Wait until ``predicate()`` is true (re-checked on every message)."""
        async with asyncio.timeout(within):
            async with self._changed:
                await self._changed.wait_for(predicate)

    async def command(
        self, site: str, name: str, body: dict[str, Any] | bytes, within: float = 10.0
    ) -> dict[str, Any]:
        """Send a command and wait for its response."""
        await asyncio.wait_for(self.connected.wait(), within)
        client = self._client
        assert client is not None
        if isinstance(body, bytes):
            payload = body
            rid = "_invalid"
        else:
            rid = str(body.setdefault("request_id", uuid.uuid4().hex))
            payload = json.dumps(body).encode()
        view = self.sites[site]
        view.responses.pop(rid, None)
        await client.publish(f"{self.root}/{site}/commands/{name}", payload, qos=1)
        await self.wait_for(lambda: rid in view.responses, within)
        return view.responses[rid]

    def _inbox_type(self) -> type[asyncio.Queue[aiomqtt.Message]]:
        """A queue class whose instances we keep, so messages the client has already
        acknowledged to the broker survive a dropped connection."""
        inboxes = self._inboxes

        class Inbox(asyncio.Queue[aiomqtt.Message]):
            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                inboxes.append(self)

        return Inbox

    async def _publish_receipt(
        self, client: aiomqtt.Client, site: str, event_id: str, received_at: str
    ) -> None:
        receipt = {"event_id": event_id, "received_at": received_at, "by": "police-simulator"}
        await client.publish(f"{self.root}/{site}/receipts", json.dumps(receipt), qos=1)

    async def _send_late_receipts(self, client: aiomqtt.Client) -> None:
        while self._late_receipts:
            await self._publish_receipt(client, *self._late_receipts[0])
            self._late_receipts.pop(0)

    async def send_receipt(self, site: str, event_id: str) -> None:
        await asyncio.wait_for(self.connected.wait(), 10)
        assert self._client is not None
        receipt = {
            "event_id": event_id,
            "received_at": datetime.now(UTC).isoformat(),
            "by": "police-simulator",
        }
        await self._client.publish(f"{self.root}/{site}/receipts", json.dumps(receipt), qos=1)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sites": {}, "schema_violations": len(self.violations)}
        for site, v in self.sites.items():
            cats: dict[str, int] = defaultdict(int)
            for e in v.events.values():
                cats[str(e.get("category"))] += 1
            out["sites"][site] = {
                "events": len(v.events),
                "by_category": dict(cats),
                "duplicates": v.duplicates,
                "gaps": v.gaps(),
                "updates": len(v.updates),
                "status": (v.status or {}).get("state"),
            }
        return out


def _line(rec: Received) -> str | None:
    b = rec.body
    t = rec.at.astimezone().strftime("%H:%M:%S")
    if rec.kind == "events":
        dev = b.get("device") or {}
        loc = dev.get("location") or {}
        text = (b.get("text") or {}).get("zh", "")
        return (
            f"{t} [{rec.site}] #{b.get('seq')} P{b.get('priority')} {b.get('kind'):<22} "
            f"{dev.get('id')} {loc.get('floor', '')}/{loc.get('zone', '')}  {text}"
        )
    if rec.kind == "updates":
        parts = []
        if "state" in b:
            parts.append(f"state={b['state'].get('state')} by {b['state'].get('by')}")
        if "attachments" in b:
            parts.append(f"{len(b['attachments'])} snapshot(s)")
        if "linkage" in b:
            parts += [f"{a['type']}:{a['target']}={a['outcome']}" for a in b["linkage"]]
        return f"{t} [{rec.site}] update {str(b.get('event_id'))[:13]}… {'; '.join(parts)}"
    if rec.kind == "status":
        return f"{t} [{rec.site}] hub {b.get('state')} (version {b.get('version')})"
    if rec.kind == "devices":
        return f"{t} [{rec.site}] device {b.get('device_id')} → {b.get('state')} {b.get('reason')}"
    if rec.kind == "compliance":
        return f"{t} [{rec.site}] compliance {b.get('overall')} {b.get('counts')}"
    if rec.kind == "responses":
        return f"{t} [{rec.site}] response {b.get('request_id')} ok={b.get('ok')}"
    if rec.kind == "notices":
        late = " overdue" if b.get("overdue") else ""
        return f"{t} [{rec.site}] notice {b.get('notice_id')} {b.get('state')}{late}"
    return None


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--site", default="+", help="site id, or + for every site (default)")
    p.add_argument("--prefix-root", default="mallhub/v1", help="topic root (default mallhub/v1)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    p.add_argument("--no-receipts", action="store_true", help="do not send receipts")
    p.add_argument("--username", help="MQTT user; password from MALLSIM_POLICE_PASSWORD")
    p.add_argument("--ca-file", help="CA file for mqtts://")
    p.add_argument("--duration", type=float, help="stop after S seconds")
    p.add_argument(
        "--command",
        nargs=2,
        metavar=("NAME", "JSON"),
        help="send one command once connected (site must be given) and print the response",
    )


async def run(args: argparse.Namespace) -> int:
    def show(rec: Received) -> None:
        if args.json:
            print(json.dumps({"topic": rec.topic, "body": rec.body}, ensure_ascii=False))
        else:
            line = _line(rec)
            if line:
                print(line)
        sys.stdout.flush()

    try:
        platform = PolicePlatform(
            args.broker,
            site=args.site,
            prefix_root=args.prefix_root,
            receipts=not args.no_receipts,
            username=args.username,
            password=os.environ.get("MALLSIM_POLICE_PASSWORD"),
            on_message=show,
            tls_ca=args.ca_file,
        )
    except ValueError as exc:
        print(f"mallsim police: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with platform:
        if args.command:
            if args.site == "+":
                print("mallsim police: --command needs --site", file=sys.stderr)
                return 2
            try:
                body = json.loads(args.command[1])
            except ValueError as exc:
                print(f"mallsim police: command JSON: {exc}", file=sys.stderr)
                return 2
            resp = await platform.command(args.site, args.command[0], body)
            print(json.dumps(resp, ensure_ascii=False, indent=2))
            return 0 if resp.get("ok") else 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.duration):
                await stop.wait()
    summary = platform.summary()
    print("--- police simulator summary ---", file=sys.stderr)
    for site, s in summary["sites"].items():
        print(
            f"{site}: {s['events']} events {s['by_category']}, {s['updates']} updates, "
            f"{s['duplicates']} duplicate deliveries, seq gaps: {s['gaps'] or 'none'}",
            file=sys.stderr,
        )
    print(f"schema violations: {summary['schema_violations']}", file=sys.stderr)
    for topic, err in platform.violations[:20]:
        print(f"  {topic}: {err}", file=sys.stderr)
    bad = summary["schema_violations"] or any(s["gaps"] for s in summary["sites"].values())
    return 1 if bad else 0
