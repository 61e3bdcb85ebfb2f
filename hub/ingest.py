"""Ingest: turn a driver's DeviceEvent into a stored event and its police message.

``Ingest`` is the callback the hub hands to every driver. Awaiting it returns only when the
event is committed together with its outbox row, so the driver may then acknowledge.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.device_event import DeviceEvent
from hub import __version__
from hub.config import SiteConfig
from hub.events import kind_info, uuid7
from hub.site import SiteIndex
from hub.store.writer import PendingEvent, StoredEvent, StoreEvent, StoreWriter, iso, now_utc

log = logging.getLogger(__name__)

TestModeCheck = Callable[[str], bool]

ALARM_LINGER_S = 0.5
"""How long the alarm path counts as busy after its last event was stored: the receiver
parses the next frame, sends the ACK, the police link publishes, before the next is stored."""


class AlarmActivity:
    """Whether the alarm path has work: an event being stored now, or one stored within
    ``linger_s``. Cheap enough to ask on every console request."""

    def __init__(
        self,
        linger_s: float = ALARM_LINGER_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.linger_s = linger_s
        self.monotonic = monotonic
        self.in_flight = 0
        self.last_at = -float("inf")

    @contextmanager
    def working(self) -> Iterator[None]:
        """Around one event's way into the store."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self.last_at = self.monotonic()

    def busy(self) -> bool:
        return self.in_flight > 0 or self.monotonic() - self.last_at < self.linger_s


class Ingest:
    """Store device events durably; the IngestFn given to drivers."""

    def __init__(
        self,
        config: SiteConfig,
        index: SiteIndex,
        writer: StoreWriter,
        *,
        in_test_mode: TestModeCheck | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.config = config
        self.index = index
        self.writer = writer
        self.in_test_mode = in_test_mode
        self.clock = clock
        self.prefix = config.topic_prefix
        self.counts: dict[str, int] = {}
        self.duplicates = 0
        self.activity = AlarmActivity()
        """Marks the alarm path busy while events come in (the console yields to it)."""

    async def __call__(self, event: DeviceEvent) -> str:
        return (await self.ingest(event)).event_id

    async def ingest(self, event: DeviceEvent) -> StoredEvent:
        with self.activity.working():
            pending = self.prepare(event)
            stored: StoredEvent = await self.writer.submit(StoreEvent(pending))
        if stored.duplicate:
            self.duplicates += 1
        else:
            self.counts[stored.kind] = self.counts.get(stored.kind, 0) + 1
        return stored

    def prepare(self, event: DeviceEvent) -> PendingEvent:
        received = self.clock()
        occurred = event.occurred_at
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
        kind_name = event.kind
        detail: dict[str, Any] = dict(event.detail)
        test_mode = False
        if (
            self.in_test_mode is not None
            and kind_name.startswith("alarm.")
            and self.in_test_mode(event.device_id)
        ):
            # A press during commissioning or a monthly check must never look like a real
            # alarm to the police; it still counts as the device's test.
            detail["original_kind"] = kind_name
            kind_name = "info.test"
            test_mode = True
        kind = kind_info(kind_name)
        if kind.name != kind_name:
            detail.setdefault("reported_kind", kind_name)
        device = self.index.device(event.device_id)
        site = self.config.site
        loc = device.location
        place = f"{loc.floor}, {loc.description or loc.zone}" if loc else device.id
        floor = f"{loc.floor} " if loc else ""
        event_id = str(uuid7())
        message: dict[str, Any] = {
            "schema": "mallhub/event/1",
            "event_id": event_id,
            "seq": 0,
            "site": {"id": site.id, "name": site.name, "address": site.address},
            "kind": kind.name,
            "category": kind.category,
            "priority": kind.priority,
            "occurred_at": iso(occurred),
            "received_at": iso(received),
            "device": {
                "id": device.id,
                "type": device.type,
                "name": device.name,
                "location": (
                    {"floor": loc.floor, "zone": loc.zone, "role": loc.role} if loc else None
                ),
            },
            "source": dict(event.source),
            "gb28181": {
                "alarm_priority": kind.priority,
                "alarm_method": kind.gb28181_method,
                "alarm_type": kind.gb28181_type,
            },
            "cameras": [
                {"id": cam, "stream_uri": self.index.stream_uris.get(cam)}
                for cam in self.index.linked_cameras(event.device_id)
            ],
            "text": {
                "zh": f"{floor}{device.name}：{kind.zh}",
                "en": f"{kind.en}: {device.name} ({place})",
            },
            "hub_version": __version__,
        }
        if event.state is not None:
            message["device_state"] = event.state
        if test_mode:
            message["test"] = True
        if detail:
            message["detail"] = detail
        dedupe_since = None
        if event.dedupe_key is not None:
            dedupe_since = received - timedelta(seconds=self.config.storage.dedupe_window_s)
        return PendingEvent(
            event_id=event_id,
            kind=kind.name,
            category=kind.category,
            priority=kind.priority,
            device_id=event.device_id,
            occurred_at=occurred,
            received_at=received,
            source=dict(event.source),
            detail=detail,
            device_state=event.state,
            dedupe_key=event.dedupe_key,
            dedupe_since=dedupe_since,
            test_mode=test_mode,
            message=message,
            topic=f"{self.prefix}/events/{kind.category}",
            receipt_required=(
                self.config.police.receipts == "required" and kind.category == "alarm"
            ),
        )
