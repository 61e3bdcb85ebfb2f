"""Consuming what the hubs publish: a JetStream durable pull consumer, explicit acks.

Any number of workers — tasks in one process, or processes on several machines — pull from
the same durable consumer, so JetStream spreads the messages over them. A worker stores a
batch in one transaction, then sends the hubs their receipts, then tells the web apps
(``patrol.v1.live``), then acknowledges the batch to JetStream. A crash anywhere before the
acks means a redelivery, which the store absorbs (events are deduplicated on event_id and
the repeat is counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import Error as JsError
from nats.js.errors import NotFoundError
from sqlalchemy.exc import DBAPIError

from patrol.clock import now_utc
from patrol.config import PatrolConfig
from patrol.intake import TRANSIENT, decode
from patrol.store import BatchOutcome, Incoming, PatrolStore, classify, merge_outcome

log = logging.getLogger(__name__)

SUBJECTS = "mallhub.v1.>"
LIVE_SUBJECT = "patrol.v1.live"
RETRY_DELAY_S = 1.0
UPDATE_DELIVERIES = 10
"""An update for an event not stored yet waits for it (another worker may be storing it, or
it is further back in the stream) for this many deliveries, about ten seconds; then it is
acknowledged and counted as an orphan: its event will never come, and waiting for ever would
keep redelivering it."""
ORPHAN_REASON = "update for an event never received"
MAX_REASONS = 64
"""Distinct refusal reasons kept apart in ``ConsumerStats.refused``: a schema refusal quotes
the hub's message, so a hostile hub could otherwise grow the counter by one key per message."""
OTHER_REASONS = "(other reasons)"


def _why(exc: Exception) -> str:
    """The reason a message the store refused is counted under (no message text: it may
    carry the hostile value itself)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"not storable: {type(exc.orig).__name__}"
    return f"not storable: {type(exc).__name__}"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class ConsumerStats:
    received: int = 0
    events_stored: int = 0
    duplicates: int = 0
    invalid: int = 0
    receipts_sent: int = 0
    retried: int = 0
    batches: int = 0
    failed_batches: int = 0
    orphan_updates: int = 0
    """Updates acknowledged without their event after UPDATE_DELIVERIES deliveries."""
    refused: Counter[str] = field(default_factory=Counter)
    """Refused messages by reason (at most MAX_REASONS of them, then OTHER_REASONS)."""

    def count_refused(self, reason: str) -> None:
        self.invalid += 1
        key = reason[:80]
        if key not in self.refused and len(self.refused) >= MAX_REASONS:
            key = OTHER_REASONS
        self.refused[key] += 1


async def ensure_stream(js: JetStreamContext, config: PatrolConfig) -> None:
    """The stream that captures every hub's messages; left as it is when it exists."""
    n = config.nats
    try:
        await js.stream_info(n.stream)
        return
    except NotFoundError:
        pass
    await js.add_stream(
        StreamConfig(
            name=n.stream,
            subjects=[SUBJECTS],
            num_replicas=n.replicas,
            max_age=n.max_age_days * 86400,
            duplicate_window=120,
        )
    )
    log.info("created stream %s (%d replicas) on %s", n.stream, n.replicas, SUBJECTS)


def consumer_config(config: PatrolConfig) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=config.nats.durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        # A batch not acknowledged within this is delivered again (harmless: deduplicated).
        ack_wait=10,
        max_ack_pending=50_000,
        filter_subject=SUBJECTS,
    )


def live_items(out: BatchOutcome) -> dict[str, Any] | None:
    """What the web apps need to update open overviews, or None."""
    events = [
        {
            "event_id": e.event_id,
            "site_id": e.site_id,
            "seq": e.seq,
            "kind": e.kind,
            "category": e.category,
            "priority": e.priority,
            "device_id": e.device_id,
            "text_zh": e.text_zh,
            "text_en": e.text_en,
            "occurred_at": iso(e.occurred_at),
            "stored_at": iso(e.stored_at),
            "state": e.state,
            "test": e.test,
        }
        for e in out.new_events
    ]
    states = [{**s, "at": iso(s["at"])} for s in out.state_changes]
    if not (events or states or out.malls_changed or out.responses or out.notices):
        return None
    return {
        "events": events,
        "states": states,
        "malls": sorted(out.malls_changed),
        "responses": out.responses,
        "notices": sorted(set(out.notices)),
    }


class Worker:
    """One puller of the durable consumer."""

    def __init__(
        self,
        config: PatrolConfig,
        store: PatrolStore,
        nc: NatsClient,
        *,
        name: str = "worker",
        stats: ConsumerStats | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.nc = nc
        self.js = nc.jetstream()
        self.name = name
        self.stats = stats or ConsumerStats()

    async def run(self) -> None:
        sub: JetStreamContext.PullSubscription | None = None
        while True:
            try:
                if sub is None:
                    sub = await self.js.pull_subscribe(
                        SUBJECTS,
                        durable=self.config.nats.durable,
                        stream=self.config.nats.stream,
                        config=consumer_config(self.config),
                    )
                msgs = await sub.fetch(self.config.batch, timeout=1)
            except (NatsTimeout, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except (NatsError, JsError, OSError) as exc:
                # A node went away or the cluster is electing a leader: try again shortly.
                log.info("%s: fetch failed (%s); retrying", self.name, exc)
                await asyncio.sleep(0.2)
                continue
            try:
                await self.handle(msgs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store failed (deadlock, restart): try again soon
                self.stats.failed_batches += 1
                log.warning(
                    "%s: batch of %d not stored (%s); redelivering", self.name, len(msgs), exc
                )
                for m in msgs:
                    with contextlib.suppress(Exception):
                        await m.nak(delay=RETRY_DELAY_S)

    async def handle(self, msgs: list[Msg]) -> None:
        items: list[Incoming] = []
        carriers: list[Msg] = []
        done: list[Msg] = []
        for m in msgs:
            self.stats.received += 1
            meta = m.metadata
            body = decode(m.data)
            got = (
                classify(m.subject, body, meta.sequence.stream, meta.timestamp)
                if isinstance(body, dict)
                else body
            )
            if isinstance(got, Incoming):
                items.append(got)
                carriers.append(m)
            else:
                if got is not None:
                    self._refused(m.subject, got)
                done.append(m)
        out, poisoned = await self._write(items)
        for reason in out.refused:
            self.stats.count_refused(reason)
        self.stats.batches += 1
        self.stats.events_stored += len(out.new_events)
        self.stats.duplicates += out.duplicates
        await self._receipts(out)
        live = live_items(out)
        if live is not None:
            with contextlib.suppress(NatsError):
                await self.nc.publish(LIVE_SUBJECT, json.dumps(live, ensure_ascii=False).encode())
        retry = set(out.retry)
        for i, m in enumerate(carriers):
            if i in poisoned:
                # Never redelivered: the same bytes would fail the same way.
                await m.term()
            elif i in retry and m.metadata.num_delivered < UPDATE_DELIVERIES:
                self.stats.retried += 1
                await m.nak(delay=RETRY_DELAY_S)
            elif i in retry:
                self.stats.orphan_updates += 1
                self._refused(m.subject, ORPHAN_REASON)
                await m.ack()
            else:
                await m.ack()
        for m in done:
            await m.ack()
        with contextlib.suppress(NatsError, TimeoutError):
            await self.nc.flush(timeout=5)

    def _refused(self, subject: str, reason: str) -> None:
        self.stats.count_refused(reason)
        log.warning("%s: refused a message on %s: %s", self.name, subject[:120], reason)

    async def _write(self, items: list[Incoming]) -> tuple[BatchOutcome, set[int]]:
        """Store the batch; when it fails, store its messages one at a time so that one the
        store cannot take is refused alone (returned by index) and the others are kept.
        A failure of the database itself (connection, lock) still fails the batch."""
        if not items:
            return BatchOutcome(), set()
        try:
            return await self.store.write(items), set()
        except TRANSIENT:
            raise
        except Exception as exc:
            if len(items) == 1:
                self._refused(f"mallhub.v1.{items[0].site}.{items[0].kind}", _why(exc))
                return BatchOutcome(), {0}
        out = BatchOutcome()
        poisoned: set[int] = set()
        for i, item in enumerate(items):
            try:
                one = await self.store.write([item])
            except TRANSIENT:
                raise
            except Exception as exc:
                self._refused(f"mallhub.v1.{item.site}.{item.kind}", _why(exc))
                poisoned.add(i)
                continue
            merge_outcome(out, one, i)
        return out, poisoned

    async def _receipts(self, out: BatchOutcome) -> None:
        if not out.receipts:
            return
        at = now_utc()
        stamp = iso(at)
        by = self.config.receipt_by
        sent: list[str] = []
        for site, event_id in out.receipts:
            body = {"event_id": event_id, "received_at": stamp, "by": by}
            try:
                await self.nc.publish(f"mallhub.v1.{site}.receipts", json.dumps(body).encode())
            except NatsError as exc:
                log.warning("%s: receipt for %s not sent: %s", self.name, event_id, exc)
                continue
            sent.append(event_id)
        self.stats.receipts_sent += len(sent)
        await self.store.mark_receipts(sent, at)
