"""The view of every mall at start, from the retained messages the hubs left on the cluster.

NATS keeps MQTT retained messages in its own stream ``$MQTT_rmsgs``. In nats-server 2.9
each is a JSON record ``{"subject", "topic", "msg" (base64), "flags", "origin"}`` on the
subject ``$MQTT.rmsgs``; the latest per topic is the retained one. They are applied with
stream sequence 0, so they only fill in what the patrol store has not heard through its
own stream (see ``PatrolStore``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import datetime

from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from patrol.intake import TRANSIENT, decode
from patrol.store import Incoming, PatrolStore, classify

log = logging.getLogger(__name__)

RETAINED_STREAM = "$MQTT_rmsgs"


def decode_retained(data: bytes) -> tuple[str, object] | None:
    """(NATS subject, decoded JSON payload) of one retained record, or None. A payload
    that is refused (see ``patrol.intake``) is returned as None: it fills in nothing."""
    try:
        rec = json.loads(data)
        subject = rec["subject"]
        payload = base64.b64decode(rec["msg"])
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        return None
    if not isinstance(subject, str):
        return None
    body = decode(payload) if payload else None
    return subject, (body if isinstance(body, dict) else None)


async def rebuild_from_retained(nc: NatsClient, store: PatrolStore, batch: int = 1000) -> int:
    """Apply every retained status, availability, compliance and notice; returns how many."""
    js = nc.jetstream()
    try:
        info = await js.stream_info(RETAINED_STREAM)
    except NotFoundError:
        log.info("no retained messages on the cluster yet")
        return 0
    if info.state.messages == 0:
        return 0
    sub = await js.pull_subscribe(
        "",
        stream=RETAINED_STREAM,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=30,
        ),
    )
    latest: dict[str, tuple[object, datetime]] = {}
    try:
        while True:
            try:
                msgs = await sub.fetch(batch, timeout=2)
            except (NatsTimeout, TimeoutError):
                break
            for m in msgs:
                got = decode_retained(m.data)
                if got is not None:
                    latest[got[0]] = (got[1], m.metadata.timestamp)
            if msgs and msgs[-1].metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    items: list[Incoming] = []
    for subject, (body, at) in latest.items():
        item = classify(subject, body, 0, at)
        if isinstance(item, Incoming) and item.kind in (
            "status",
            "availability",
            "compliance",
            "notice",
        ):
            items.append(item)
    refused = len(latest) - len(items)
    for i in range(0, len(items), batch):
        refused += await _write(store, items[i : i + batch])
    log.info("rebuilt from %d retained messages (%d not applied)", len(items), refused)
    return len(items)


async def _write(store: PatrolStore, items: list[Incoming]) -> int:
    """Write a chunk; when the store refuses it, one message at a time, skipping the ones
    it cannot take (a hub's bad retained message must not stop the service's start).
    Returns how many were skipped."""
    try:
        await store.write(items)
        return 0
    except TRANSIENT:
        raise
    except Exception:
        pass
    skipped = 0
    for item in items:
        try:
            await store.write([item])
        except TRANSIENT:
            raise
        except Exception as exc:
            skipped += 1
            log.warning(
                "retained %s of %s not applied: %s", item.kind, item.site, type(exc).__name__
            )
    return skipped
