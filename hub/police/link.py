"""The MQTT link to the police alarm platform (contract: docs/police-link.md).

The link only ever reads the outbox: whatever is stored leaves, in priority order, as QoS 1
on a persistent session, and is marked published only after the broker's PUBACK. A crash,
a broker restart or a link outage at any point therefore causes, at worst, a repeat of the
same ``event_id``, never a loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub import __version__
from hub.commands import CommandHandler, CommandRegistry
from hub.config import SiteConfig
from hub.police.brokers import BrokerRotation
from hub.police.commands import PoliceInbox
from hub.police.incoming import CommandError

__all__ = ["CommandError", "LinkState", "PoliceLink"]
from hub.store.models import Outbox, Retained
from hub.store.writer import (
    MarkPublished,
    OutboxMessage,
    StoreWriter,
    iso,
    now_utc,
)
from hub.tasks import stop_task

log = logging.getLogger(__name__)
# The MQTT client warns on every publish beyond ten in flight; a publish window is exactly
# that, so only its errors are worth a log line.
mqtt_log = logging.getLogger(f"{__name__}.mqtt")
mqtt_log.setLevel(logging.ERROR)

FRESH_LIMIT = 10_000
"""Messages held in memory for publishing; beyond that the store is scanned instead."""
IDLE_SCAN_S = 5.0
"""When nothing happens, the store is scanned this often (a CLI may have written)."""


@dataclass(slots=True)
class LinkState:
    connected: bool = False
    protocol: str | None = None
    connected_since: datetime | None = None
    last_error: str = ""
    last_receipt_at: datetime | None = None
    connects: int = 0
    broker: str = ""
    """host:port of the broker the link is (or was last) connected to."""
    failovers: int = 0
    """Connections made to another broker of the list than the one before."""
    published: int = 0
    republished_for_receipt: int = 0
    receipts: int = 0
    commands: int = 0
    command_errors: int = 0
    receipt_latencies: list[float] = field(default_factory=list)


class PoliceLink:
    """Async context manager that keeps the link up until the hub stops."""

    def __init__(
        self,
        config: SiteConfig,
        engine: AsyncEngine,
        writer: StoreWriter,
        *,
        started_at: datetime | None = None,
        commands: CommandRegistry | None = None,
    ) -> None:
        self.config = config
        self.police = config.police
        self.engine = engine
        self.writer = writer
        self.prefix = config.topic_prefix
        self.subscriptions = (f"{self.prefix}/receipts", f"{self.prefix}/commands/+")
        """Every topic filter the hub takes messages from (all of them outside input)."""
        self.client_id = f"mallhub-{config.site.id}"
        self.started_at = started_at or now_utc()
        self.state = LinkState()
        self.commands = commands if commands is not None else CommandRegistry()
        """What each command does; the services that carry them out register there."""
        self.inbox = PoliceInbox(config.site.id, self.prefix, writer, self.state, self.commands)
        self._wake = asyncio.Event()
        self._stopping = False
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._use_v5: bool | None = {"auto": None, "5": True, "3.1.1": False}[self.police.protocol]
        self.brokers = BrokerRotation(self.police.endpoints, self.police.reconnect_max_s)
        self._fresh: list[OutboxMessage] = []
        self._props: dict[str, Properties] = {}
        self._acks: dict[int, asyncio.Future[None]] = {}
        """Outbox messages published and waiting for their PUBACK, by MQTT message id."""
        self._unmarked: set[int] = set()
        """Published, but the store has not recorded it yet (marks are deferred)."""
        self._scan_needed = True
        writer.add_listener(self._on_commit)
        writer.add_outbox_listener(self._on_new_rows)
        self.on_state_change: Callable[[LinkState], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="police-link")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        client = self._client
        if client is not None and self.state.connected:
            # An orderly stop says so, instead of leaving the platform to the Last Will.
            with contextlib.suppress(Exception):
                await client.publish(
                    f"{self.prefix}/status",
                    json.dumps(self._status("offline", "hub stopped")),
                    qos=1,
                    retain=True,
                    timeout=3,
                )
        await stop_task(self._task)
        self._task = None

    def register(self, name: str, handler: CommandHandler) -> None:
        """Answer ``<p>/commands/<name>`` with ``handler`` (see :class:`CommandRegistry`)."""
        self.commands.register(name, handler)

    def _on_commit(self, pairs: Any) -> None:
        for op, _ in pairs:
            if isinstance(op, MarkPublished):
                self._unmarked.difference_update(op.outbox_ids)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # --- connection --------------------------------------------------------------------

    def _status(self, state: str, reason: str = "") -> dict[str, Any]:
        msg: dict[str, Any] = {
            "schema": "mallhub/status/1",
            "site_id": self.config.site.id,
            "state": state,
            "version": __version__,
            "started_at": iso(self.started_at),
            # In the Last Will this is when the connection began: a broker keeps the will it
            # got at connect time and cannot be told a later one (docs/police-link.md).
            "ts": iso(now_utc()),
            "heartbeat_s": self.police.heartbeat_s,
        }
        if reason:
            msg["reason"] = reason
        return msg

    def _tls_context(self) -> ssl.SSLContext | None:
        if not self.police.use_tls:
            return None
        tls = self.police.tls
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file is not None and tls.key_file is not None:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        if not tls.verify_hostname:
            ctx.check_hostname = False
        return ctx

    def _client_for(self, v5: bool) -> aiomqtt.Client:
        will = aiomqtt.Will(
            f"{self.prefix}/status",
            json.dumps(self._status("offline", "connection lost")),
            qos=1,
            retain=True,
        )
        kwargs: dict[str, Any] = {}
        if v5:
            props = _properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.police.session_expiry_s
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props)
        else:
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V311, clean_session=False)
        password = self.police.password.get_secret_value() if self.police.password else None
        host, port = self.brokers.current
        return aiomqtt.Client(
            host,
            port,
            username=self.police.username,
            password=password,
            identifier=self.client_id,
            logger=mqtt_log,
            will=will,
            keepalive=self.police.keepalive_s,
            timeout=10,
            tls_context=self._tls_context(),
            max_inflight_messages=self.police.publish_window,
            max_queued_outgoing_messages=0,
            **kwargs,
        )

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (aiomqtt.MqttError, OSError, ssl.SSLError) as exc:
                self._set_disconnected(f"{type(exc).__name__}: {exc}")
                log.warning("police link down (%s)", exc)
            except Exception as exc:  # a supervisor: log, back off, keep the link trying
                self._set_disconnected(f"{type(exc).__name__}: {exc}")
                log.exception("police link failed")
            await asyncio.sleep(self.brokers.failed())

    def _set_disconnected(self, error: str) -> None:
        was = self.state.connected
        self.state.connected = False
        self.state.last_error = error
        self._client = None
        if was and self.on_state_change is not None:
            self.on_state_change(self.state)

    async def _connect(self) -> tuple[aiomqtt.Client, bool]:
        """Connect with MQTT 5, falling back to 3.1.1 when the broker refuses 5."""
        order = [self._use_v5] if self._use_v5 is not None else [True, False]
        last: Exception | None = None
        for v5 in order:
            client = self._client_for(v5)
            try:
                await client.__aenter__()
            except aiomqtt.MqttError as exc:
                last = exc
                if self._use_v5 is None and v5 and _is_protocol_refusal(exc):
                    log.info("broker refused MQTT 5 (%s); using 3.1.1", exc)
                    continue
                raise
            if self.police.protocol == "auto":
                self._use_v5 = v5
            return client, v5
        assert last is not None
        raise last

    async def _session(self) -> None:
        client, v5 = await self._connect()
        try:
            self._client = client
            self._acks.clear()
            self._route_pubacks(client)
            for topic_filter in self.subscriptions:
                await client.subscribe(topic_filter, qos=1)
            await client.publish(
                f"{self.prefix}/status", json.dumps(self._status("online")), qos=1, retain=True
            )
            await self._republish_retained(client)
            self.state.connected = True
            self.state.protocol = "5" if v5 else "3.1.1"
            self.state.connected_since = now_utc()
            self.state.last_error = ""
            self.state.connects += 1
            self.brokers.connected()
            host, port = self.brokers.current
            broker = f"{host}:{port}"
            if self.state.broker and broker != self.state.broker:
                self.state.failovers += 1
            self.state.broker = broker
            log.info("police link up: %s MQTT %s", broker, self.state.protocol)
            if self.on_state_change is not None:
                self.on_state_change(self.state)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._drain(client, v5), name="police-drain")
                tg.create_task(self._heartbeat(client), name="police-heartbeat")
                tg.create_task(self._incoming(client, tg), name="police-incoming")
        except* aiomqtt.MqttError as eg:
            raise eg.exceptions[0] from None
        finally:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def _republish_retained(self, client: aiomqtt.Client) -> None:
        # A broker may have lost retained messages (restart without persistence).
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(Retained.topic, Retained.payload))).all()
        await asyncio.gather(
            *(client.publish(t, p, qos=1, retain=True, timeout=30) for t, p in rows)
        )

    async def _heartbeat(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.police.heartbeat_s)
            await client.publish(
                f"{self.prefix}/status", json.dumps(self._status("online")), qos=1, retain=True
            )

    # --- outbox drain ------------------------------------------------------------------

    async def _next_batch(self) -> tuple[list[OutboxMessage], float | None]:
        """Scan the outbox: rows to publish now, and when a receipt deadline next falls
        due (seconds). Rows published but not yet marked in the store are left out."""
        now = now_utc()
        timeout = timedelta(seconds=self.police.receipt_timeout_s)
        window = self.police.publish_window
        skip = self._unmarked
        async with self.writer.sessions() as s:
            q = select(Outbox).where(Outbox.published_at.is_(None))
            if skip:
                q = q.where(Outbox.id.not_in(skip))
            pending = await s.execute(
                q.order_by(Outbox.priority, Outbox.seq, Outbox.id).limit(window)
            )
            rows = [_message(r) for r in pending.scalars()]
            wait: float | None = None
            if self.police.receipts == "required":
                unreceipted = and_(
                    Outbox.receipt_required.is_(True),
                    Outbox.receipted_at.is_(None),
                    Outbox.published_at.is_not(None),
                )
                if len(rows) < window:
                    due = await s.execute(
                        select(Outbox)
                        .where(unreceipted, Outbox.published_at <= now - timeout)
                        .order_by(Outbox.priority, Outbox.seq)
                        .limit(window - len(rows))
                    )
                    rows += [_message(r) for r in due.scalars() if r.id not in skip]
                oldest = (
                    await s.execute(select(func.min(Outbox.published_at)).where(unreceipted))
                ).scalar()
                if oldest is not None:
                    wait = max(0.05, (oldest + timeout - now).total_seconds())
        rows.sort(key=lambda r: r.order)
        return rows, wait

    def _on_new_rows(self, rows: list[OutboxMessage]) -> None:
        """New outbox messages, straight from the commit that stored them."""
        if not self.state.connected or len(self._fresh) > FRESH_LIMIT:
            # The next scan of the store finds them; memory stays bounded in an outage.
            self._fresh.clear()
            self._scan_needed = True
        else:
            self._fresh.extend(rows)
        self._wake.set()

    def _take_fresh(self) -> list[OutboxMessage]:
        self._fresh.sort(key=lambda r: r.order)
        window = self.police.publish_window
        rows = [r for r in self._fresh[:window] if r.id not in self._unmarked]
        del self._fresh[:window]
        return rows

    async def _drain(self, client: aiomqtt.Client, v5: bool) -> None:
        """Publish the outbox. Newly stored messages are published from memory as they
        commit; the store is scanned after (re)connecting, when idle, and when a receipt
        falls due, so nothing stored is ever left behind."""
        loop = asyncio.get_running_loop()
        receipts_required = self.police.receipts == "required"
        if receipts_required:
            # Publications must be on record before their receipt deadline is checked.
            self.writer.defer_s = min(self.writer.defer_s, self.police.receipt_timeout_s / 4)
        self._unmarked.clear()
        self._fresh.clear()
        self._scan_needed = True
        receipt_due: float | None = None
        while True:
            self._wake.clear()
            if receipt_due is not None and loop.time() >= receipt_due:
                self._scan_needed = True
            if self._scan_needed:
                self._fresh.clear()
                rows, wait = await self._next_batch()
                self._scan_needed = len(rows) >= self.police.publish_window
                receipt_due = loop.time() + wait if wait is not None else None
                if receipt_due is None and receipts_required and self._unmarked:
                    # Published, not yet on record: look again once the marks are in.
                    receipt_due = loop.time() + self.writer.defer_s
            else:
                rows = self._take_fresh()
            if not rows:
                if self._fresh:
                    continue
                idle = IDLE_SCAN_S
                if receipt_due is not None:
                    idle = min(idle, max(0.0, receipt_due - loop.time()))
                try:
                    async with asyncio.timeout(idle):
                        await self._wake.wait()
                except TimeoutError:
                    self._scan_needed = True
                continue
            await self._publish_window(client, rows, v5)
            ids = [r.id for r in rows]
            self._unmarked.update(ids)
            self.writer.defer_published(
                ids, [r.event_id for r in rows if r.kind == "event" and r.event_id], now_utc()
            )
            self.state.published += len(rows)
            self.state.republished_for_receipt += sum(1 for r in rows if r.republish)
            if receipts_required and any(r.receipt_required for r in rows):
                due = loop.time() + self.police.receipt_timeout_s
                receipt_due = due if receipt_due is None else min(receipt_due, due)

    async def _publish_window(
        self, client: aiomqtt.Client, rows: list[OutboxMessage], v5: bool
    ) -> None:
        """Publish ``rows`` as QoS 1 and return once the broker has acknowledged every one.

        Straight through the client's paho-mqtt, one future per message resolved by its
        PUBACK (``_route_pubacks``): aiomqtt's ``publish`` costs as much again per message
        (a task for its time-out, an event, scans of its pending calls), about 40 µs on
        this hardware, which a burst of alarms pays on the event loop that also ACKs panels.
        Raises ``MqttError`` (the session then reconnects) when the client refuses a message
        or a PUBACK is missing after 30 s; nothing of the window is marked published then.
        """
        paho = client._client  # aiomqtt's paho client: the one this connection drives
        loop = asyncio.get_running_loop()
        acks = self._acks
        mids: list[int] = []
        try:
            for r in rows:
                info = paho.publish(
                    r.topic,
                    r.payload.encode("utf-8"),
                    qos=1,
                    retain=r.retain,
                    properties=self._properties(r) if v5 else None,
                )
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
                # No await since publish(): its PUBACK cannot have been read yet.
                acks[info.mid] = loop.create_future()
                mids.append(info.mid)
            async with asyncio.timeout(30):
                await asyncio.gather(*(acks[m] for m in mids))
        except TimeoutError:
            raise aiomqtt.MqttError("no PUBACK within 30 s") from None
        finally:
            for m in mids:
                acks.pop(m, None)

    def _route_pubacks(self, client: aiomqtt.Client) -> None:
        """PUBACKs of the outbox's messages resolve their futures (``_publish_window``);
        every other one (status, heartbeat) goes to aiomqtt as before."""
        inner = client._on_publish  # what aiomqtt set as paho's on_publish
        acks = self._acks

        def on_publish(
            c: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Properties
        ) -> None:
            fut = acks.get(mid)
            if fut is None:
                inner(c, userdata, mid, reason, props)
            elif not fut.done():
                fut.set_result(None)

        client._client.on_publish = on_publish

    def _properties(self, row: OutboxMessage) -> Properties:
        """MQTT 5 properties, made once per kind of message: building them costs more than
        the rest of a publish, and the event_id is in the payload anyway."""
        props = self._props.get(row.kind)
        if props is None:
            fresh = _properties(PacketTypes.PUBLISH)
            fresh.PayloadFormatIndicator = 1
            fresh.ContentType = "application/json"
            fresh.UserProperty = [("kind", row.kind)]
            props = self._props[row.kind] = FrozenProperties.of(fresh)
        return props

    async def outbox_stats(self) -> tuple[int, float | None]:
        """Pending messages and the age of the oldest, in seconds."""
        async with self.engine.connect() as conn:
            count, oldest = (
                await conn.execute(
                    select(func.count(), func.min(Outbox.created_at)).where(
                        or_(
                            Outbox.published_at.is_(None),
                            and_(Outbox.receipt_required.is_(True), Outbox.receipted_at.is_(None)),
                        )
                    )
                )
            ).one()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = (now_utc() - oldest).total_seconds() if oldest is not None else None
        return int(count), age

    # --- incoming: receipts and commands -------------------------------------------------

    async def _incoming(self, client: aiomqtt.Client, tg: asyncio.TaskGroup) -> None:
        receipts = f"{self.prefix}/receipts"
        commands = f"{self.prefix}/commands/"
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if topic == receipts:
                await self.inbox.receipt(payload)
            elif topic.startswith(commands):
                name = topic[len(commands) :]
                run = self.inbox.command(name, payload, retained=bool(message.retain))
                tg.create_task(run, name=f"police-command-{name[:64]}")


class FrozenProperties(Properties):
    """Publish properties that never change after they are made, packed once: paho packs
    a message's properties on every publish, which costs as much as the rest of it."""

    _packed: bytes

    @classmethod
    def of(cls, props: Properties) -> FrozenProperties:
        frozen = cls.__new__(cls)
        frozen.__dict__.update(props.__dict__)
        # Properties refuses attributes that are not MQTT properties; this one is ours.
        frozen.__dict__["_packed"] = props.pack()  # type: ignore[no-untyped-call]
        return frozen

    def pack(self) -> bytes:
        return self._packed


def _properties(packet_type: int) -> Properties:
    # paho's Properties constructor carries no annotations; this is the one untyped call.
    return Properties(packet_type)  # type: ignore[no-untyped-call]


def _is_protocol_refusal(exc: aiomqtt.MqttError) -> bool:
    """True unless the failure was the network's (refused, unreachable, unresolvable).

    Brokers say no to MQTT 5 in different ways: CONNACK "unacceptable protocol version",
    closing the socket, or never answering the CONNECT. All of these deserve a 3.1.1 try.
    """
    text = str(exc).lower()
    network = ("refused", "unreachable", "name or service", "no route", "certificate")
    return not any(word in text for word in network)


def _message(row: Outbox) -> OutboxMessage:
    return OutboxMessage(
        row.id,
        row.kind,
        row.topic,
        row.payload,
        row.retain,
        row.priority,
        row.seq,
        row.event_id,
        row.receipt_required,
        republish=row.published_at is not None,
    )
