"""Prometheus metrics of one patrol process, in a registry of its own (served at /metrics).

Two kinds of series, both produced at scrape time by a collector:

* the counters of the workers running in this process (``ConsumerStats``, shared by them):
  none when the process runs no workers (``mallhub patrol web``), so a scrape never shows
  zeros that mean "not here" rather than "nothing happened";
* gauges read from the store (malls by connection state, open alarms by priority), read at
  most once per :data:`STORE_MAX_AGE_S` however often or concurrently it is scraped.

Every label value comes from a fixed set: a refusal reason (which may quote what a hub
sent) becomes one of :data:`REFUSED_LABELS` or ``other``; a mall state or an alarm priority
outside the known ones becomes ``other``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from patrol.consumer import ORPHAN_REASON, ConsumerStats
from patrol.models import EventRow, MallRow
from patrol.queries import OPEN_STATES

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
STORE_MAX_AGE_S: Final = 1.0
MALL_STATES: Final = ("online", "offline", "unknown")
PRIORITIES: Final = ("1", "2", "3", "4")
OTHER: Final = "other"

_EXACT: Final[dict[str, str]] = {
    "payload too large": "too_large",
    "nested too deeply": "too_deep",
    "payload is not JSON": "not_json",
    "payload is not a JSON object": "not_object",
    "NUL character in a string": "nul_character",
    "lone surrogate in a string": "lone_surrogate",
    "integer out of range": "integer_out_of_range",
    "not a mallhub v1 subject": "bad_subject",
    "invalid site id": "bad_site_id",
    "unknown topic": "unknown_topic",
    "site_id in the payload differs from the topic": "site_mismatch",
    "site.id in the payload differs from the topic": "site_mismatch",
    "notice_id in the payload differs from the topic": "notice_mismatch",
    "event without event_id or for another site": "bad_event",
    "event with missing or malformed fields": "bad_event",
    ORPHAN_REASON: "orphan_update",
}
_SCHEMA = re.compile(r"^[a-z_]{1,32} schema: ")
NOT_STORABLE = "not storable: "
REFUSED_LABELS: Final = tuple(sorted({*_EXACT.values(), "not_storable", "schema_invalid", OTHER}))
"""Every value the ``reason`` label of ``patrol_messages_refused_total`` can take."""


def refused_label(reason: str) -> str:
    """The short fixed label a refusal reason is counted under."""
    label = _EXACT.get(reason)
    if label is not None:
        return label
    if reason.startswith(NOT_STORABLE):
        return "not_storable"
    if _SCHEMA.match(reason):
        return "schema_invalid"
    return OTHER


@dataclass(frozen=True, slots=True)
class StoreFigures:
    malls: dict[str, int]
    open_alarms: dict[str, int]


class PatrolMetrics(Collector):
    """``await render()`` for the Prometheus text of this process."""

    content_type = CONTENT_TYPE

    def __init__(
        self,
        engine: AsyncEngine,
        stats: ConsumerStats | None,
        *,
        workers: int = 0,
        known_sites: Iterable[str] = (),
    ) -> None:
        self.engine = engine
        self.stats = stats
        self.workers = workers
        self.known_sites = frozenset(known_sites)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.store_reads = 0
        """Times the store was read for the gauges (the cache's effect, for tests)."""
        self._figures: StoreFigures | None = None
        self._read_at = -STORE_MAX_AGE_S
        self._lock = asyncio.Lock()
        self.clock: Callable[[], float] = time.monotonic

    async def render(self) -> bytes:
        await self.refresh()
        return generate_latest(self.registry)

    async def refresh(self) -> None:
        """Read the store's gauges unless they were read less than STORE_MAX_AGE_S ago;
        concurrent scrapes wait for the one read."""
        async with self._lock:
            if self.clock() - self._read_at < STORE_MAX_AGE_S:
                return
            self.store_reads += 1
            try:
                self._figures = await self._read()
            except Exception as exc:  # the store is down: the scrape says so, not a 500
                log.warning("metrics: store not readable (%s)", type(exc).__name__)
                self._figures = None
            self._read_at = self.clock()

    async def _read(self) -> StoreFigures:
        async with self.engine.connect() as conn:
            mall_rows = (await conn.execute(select(MallRow.site_id, MallRow.state))).all()
            alarm_rows = (
                await conn.execute(
                    select(EventRow.priority, func.count())
                    .where(
                        EventRow.category == "alarm",
                        EventRow.state.in_(OPEN_STATES),
                        EventRow.test.is_(False),
                    )
                    .group_by(EventRow.priority)
                )
            ).all()
        malls: Counter[str] = Counter(dict.fromkeys(MALL_STATES, 0))
        for _site, state in mall_rows:
            malls[state if state in MALL_STATES else OTHER] += 1
        # A configured mall that never sent anything is not in the store yet: unknown.
        malls["unknown"] += len(self.known_sites - {str(r[0]) for r in mall_rows})
        alarms: Counter[str] = Counter(dict.fromkeys(PRIORITIES, 0))
        for priority, count in alarm_rows:
            p = str(priority)
            alarms[p if p in PRIORITIES else OTHER] += int(count)
        return StoreFigures(dict(malls), dict(alarms))

    # --- the collector ---------------------------------------------------------------------

    def collect(self) -> Iterable[Metric]:
        yield from self._worker_metrics()
        figures = self._figures
        up = GaugeMetricFamily(
            "patrol_store_up", "1 when the last read of the store for these gauges worked."
        )
        up.add_metric([], 0 if figures is None else 1)
        yield up
        if figures is None:
            return
        yield _gauge("patrol_malls", "Malls by connection state.", "state", figures.malls)
        yield _gauge(
            "patrol_open_alarms",
            "Alarms open or acknowledged but not yet confirmed by the hub (test alarms left "
            "out), by priority.",
            "priority",
            figures.open_alarms,
        )

    def _worker_metrics(self) -> Iterable[Metric]:
        workers = GaugeMetricFamily("patrol_workers", "Consumer workers in this process.")
        workers.add_metric([], self.workers)
        yield workers
        s = self.stats
        if s is None or not self.workers:
            return
        for name, doc, value in _counters(s):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], value)
            yield c
        by_label: Counter[str] = Counter(dict.fromkeys(REFUSED_LABELS, 0))
        for reason, n in list(s.refused.items()):
            by_label[refused_label(reason)] += n
        refused = CounterMetricFamily(
            "patrol_messages_refused",
            "Messages refused (not stored), by reason.",
            labels=["reason"],
        )
        for label in REFUSED_LABELS:
            refused.add_metric([label], by_label[label])
        yield refused


def _counters(s: ConsumerStats) -> Sequence[tuple[str, str, int]]:
    return (
        ("patrol_messages_received", "Messages fetched from the stream.", s.received),
        ("patrol_events_stored", "Events stored for the first time.", s.events_stored),
        ("patrol_events_duplicate", "Events delivered again (already stored).", s.duplicates),
        ("patrol_messages_invalid", "Messages refused, every reason.", s.invalid),
        ("patrol_receipts_sent", "Receipts sent to the hubs.", s.receipts_sent),
        ("patrol_messages_retried", "Updates put back to wait for their event.", s.retried),
        (
            "patrol_orphan_updates",
            "Updates acknowledged without their event after waiting.",
            s.orphan_updates,
        ),
        ("patrol_batches", "Batches handled.", s.batches),
        ("patrol_batches_failed", "Batches the store failed (redelivered).", s.failed_batches),
    )


def _gauge(name: str, doc: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=[label])
    for key in sorted(values):
        g.add_metric([key], values[key])
    return g
