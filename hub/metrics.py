"""Prometheus metrics of one hub, in a private registry (served by the web part at /metrics).

Two kinds of series: instruments the hub updates as things happen (probe latencies, receipt
latencies, events forwarded, video check scores), and values read live at scrape time by a
collector (device states, events ingested, link state, SIA rejections, compliance). Values
that need the database (outbox depth and age) are cached by the health system's police-link
probe, because a scrape must not wait on the store.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.models import Event
from hub.store.writer import MarkPublished, MarkReceipted, StoredEvent, StoreEvent

if TYPE_CHECKING:
    from adapters.alarm_panels import SiaReceiver
    from hub.ingest import Ingest
    from hub.police.link import LinkState
    from hub.site import SiteIndex
    from hub.store.writer import StoreWriter

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
DEVICE_STATES: Final = ("online", "degraded", "offline", "unknown")
COMPLIANCE_STATUSES: Final = ("pass", "fail", "unknown", "attested")
PROBE_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RECEIPT_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_TRACKED_EVENTS: Final = 10_000
"""Events remembered by id per map (kind until published, publication until receipted, ids
already counted as forwarded). Each map keeps the newest this many (~2 MB at most): a platform
that sends no receipts would otherwise grow the publication map by one entry per event, and a
receipt or a republication for an event 10 000 events ago is no longer worth timing."""


class Metrics:
    """The hub's metrics. ``attach(...)`` wires the live sources; ``render()`` scrapes."""

    content_type = CONTENT_TYPE

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.probe_latency = Histogram(
            "mallhub_probe_latency_seconds",
            "Health probe duration by device type.",
            ["type"],
            buckets=PROBE_BUCKETS,
            registry=r,
        )
        self.probes = PromCounter(
            "mallhub_probes",
            "Health probes by device type and result.",
            ["type", "result"],
            registry=r,
        )
        self.forwarded = PromCounter(
            "mallhub_events_forwarded",
            "Events published to the police platform for the first time, by kind.",
            ["kind"],
            registry=r,
        )
        self.receipt_latency = Histogram(
            "mallhub_police_receipt_latency_seconds",
            "Time from first publication of an event to the police platform's receipt.",
            buckets=RECEIPT_BUCKETS,
            registry=r,
        )
        self.video_score = Gauge(
            "mallhub_video_check_score",
            "Latest video check score per camera and check (see the threshold series).",
            ["device", "check"],
            registry=r,
        )
        self.video_threshold = Gauge(
            "mallhub_video_check_threshold",
            "Limit of the latest video check per camera and check.",
            ["device", "check"],
            registry=r,
        )
        self.video_ok = Gauge(
            "mallhub_video_check_ok",
            "1 when the latest video check passed, else 0.",
            ["device", "check"],
            registry=r,
        )
        self.console_delayed = PromCounter(
            "mallhub_console_delayed",
            "Console reads that waited for their turn while alarms were coming in.",
            registry=r,
        )
        self.console_delay = PromCounter(
            "mallhub_console_delay_seconds",
            "Total time console reads waited for their turn while alarms were coming in.",
            registry=r,
        )
        self.console_overdue = PromCounter(
            "mallhub_console_overdue",
            "Console reads that waited the longest wait and were then served without the pause.",
            registry=r,
        )
        self.outbox_depth: float | None = None
        self.outbox_oldest_age_s: float | None = None
        self._live_sources: _Sources | None = None
        self._compliance: Any = None
        self._states: Callable[[], Mapping[str, str]] | None = None
        self._kinds: OrderedDict[str, str] = OrderedDict()
        self._published: OrderedDict[str, datetime] = OrderedDict()
        self._receipted_early: OrderedDict[str, datetime] = OrderedDict()
        """Receipts committed before their publication was (publications are recorded late)."""
        self._unresolved: list[str] = []
        self._forwarded_seen: OrderedDict[str, None] = OrderedDict()
        r.register(_LiveCollector(self))

    # --- wiring ----------------------------------------------------------------------------

    def attach(
        self,
        writer: StoreWriter,
        index: SiteIndex,
        ingest: Ingest,
        link: LinkState,
        police_rejected: Mapping[tuple[str, str], int],
        sia: SiaReceiver | None,
    ) -> None:
        """Read these live values at scrape time and follow the store's commits.

        ``police_rejected`` counts refused receipts and commands by (topic, reason)."""
        self._live_sources = _Sources(index, ingest, link, police_rejected, sia)
        writer.add_listener(self.on_commit)

    def set_compliance(self, service: Any) -> None:
        """Export the compliance service's latest result (read at scrape time)."""
        self._compliance = service

    def set_state_source(self, states: Callable[[], Mapping[str, str]]) -> None:
        """``states()`` maps device id → current state (the health service provides it)."""
        self._states = states

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)

    # --- updates ---------------------------------------------------------------------------

    def observe_probe(self, device_type: str, seconds: float | None, result: str) -> None:
        if seconds is not None:
            self.probe_latency.labels(device_type).observe(seconds)
        self.probes.labels(device_type, result).inc()

    def observe_console_wait(self, seconds: float, overdue: bool) -> None:
        """A console read waited ``seconds`` for its turn (``overdue``: it ran out)."""
        self.console_delayed.inc()
        self.console_delay.inc(seconds)
        if overdue:
            self.console_overdue.inc()

    def set_outbox(self, depth: int | None, oldest_age_s: float | None) -> None:
        self.outbox_depth = None if depth is None else float(depth)
        self.outbox_oldest_age_s = oldest_age_s

    def set_video_findings(self, device_id: str, findings: Iterable[Mapping[str, Any]]) -> None:
        for f in findings:
            check = str(f.get("check"))
            score, threshold = f.get("score"), f.get("threshold")
            if isinstance(score, int | float):
                self.video_score.labels(device_id, check).set(float(score))
            if isinstance(threshold, int | float):
                self.video_threshold.labels(device_id, check).set(float(threshold))
            self.video_ok.labels(device_id, check).set(1.0 if f.get("ok") else 0.0)

    def on_commit(self, pairs: Sequence[tuple[Any, Any]]) -> None:
        """Store listener: remember event kinds, count first publications, time receipts."""
        now = datetime.now(UTC)
        for op, result in pairs:
            if isinstance(op, StoreEvent) and isinstance(result, StoredEvent):
                if not result.duplicate:
                    _remember(self._kinds, result.event_id, result.kind)
            elif isinstance(op, MarkPublished):
                for event_id in op.event_ids:
                    if event_id in self._forwarded_seen:
                        continue  # a republication (receipt timeout), not a new forward
                    _remember(self._forwarded_seen, event_id, None)
                    sent = op.at or now
                    early = self._receipted_early.pop(event_id, None)
                    if early is not None:
                        self.receipt_latency.observe(max(0.0, (early - sent).total_seconds()))
                    else:
                        _remember(self._published, event_id, sent)
                    kind = self._kinds.pop(event_id, None)
                    if kind is None:
                        self._unresolved.append(event_id)
                    else:
                        self.forwarded.labels(kind).inc()
            elif isinstance(op, MarkReceipted) and result:
                published = self._published.pop(op.event_id, None)
                if published is not None:
                    self.receipt_latency.observe(max(0.0, (now - published).total_seconds()))
                else:
                    _remember(self._receipted_early, op.event_id, now)

    async def resolve(self, engine: AsyncEngine) -> None:
        """Count forwards of events stored before this process started (kind from the store)."""
        ids, self._unresolved = self._unresolved[:1000], self._unresolved[1000:]
        if not ids:
            return
        async with engine.connect() as conn:
            rows = (await conn.execute(select(Event.kind).where(Event.event_id.in_(ids)))).scalars()
            for kind in rows:
                self.forwarded.labels(kind).inc()

    # --- live values -----------------------------------------------------------------------

    def _live(self) -> Iterable[Metric]:
        src = self._live_sources
        if self._states is not None and src is not None:
            g = GaugeMetricFamily(
                "mallhub_device_state",
                "1 for the device's current health state, 0 for the others.",
                labels=["device", "type", "floor", "zone", "role", "state"],
            )
            up = GaugeMetricFamily(
                "mallhub_device_up",
                "1 when the device is online or degraded.",
                labels=["device", "type", "floor", "zone", "role"],
            )
            for device_id, state in sorted(self._states().items()):
                info = src.index.device(device_id)
                loc = info.location
                labels = [
                    device_id,
                    info.type,
                    loc.floor if loc else "",
                    loc.zone if loc else "",
                    (loc.role or "") if loc else "",
                ]
                for s in DEVICE_STATES:
                    g.add_metric([*labels, s], 1.0 if s == state else 0.0)
                up.add_metric(labels, 1.0 if state in ("online", "degraded") else 0.0)
            yield g
            yield up
        if src is not None:
            ingested = CounterMetricFamily(
                "mallhub_events_ingested", "Events stored, by kind.", labels=["kind"]
            )
            for kind, n in sorted(src.ingest.counts.items()):
                ingested.add_metric([kind], float(n))
            yield ingested
            link = src.link
            yield GaugeMetricFamily(
                "mallhub_police_link_up",
                "1 while the MQTT link to the police platform is connected.",
                value=1.0 if link.connected else 0.0,
            )
            yield CounterMetricFamily(
                "mallhub_police_published",
                "Messages published to the police platform (all kinds, repeats included).",
                value=float(link.published),
            )
            rejected = CounterMetricFamily(
                "mallhub_police_rejected",
                "Receipts and commands from the police platform that were refused, by reason.",
                labels=["topic", "reason"],
            )
            for (topic, reason), n in sorted(src.police_rejected.items()):
                rejected.add_metric([topic, reason], float(n))
            yield rejected
            if link.last_receipt_at is not None:
                yield GaugeMetricFamily(
                    "mallhub_police_last_receipt_timestamp_seconds",
                    "Unix time of the last receipt from the police platform.",
                    value=link.last_receipt_at.timestamp(),
                )
            stats = getattr(src.sia, "stats", None)
            rejections = getattr(stats, "rejections", None)
            if isinstance(rejections, Counter):
                rej = CounterMetricFamily(
                    "mallhub_sia_rejections",
                    "SIA DC-09 inputs the receiver did not simply accept, by reason.",
                    labels=["reason"],
                )
                for reason, n in sorted(rejections.items()):
                    rej.add_metric([str(reason)], float(n))
                yield rej
            yield from _compliance(self._compliance)
        if self.outbox_depth is not None:
            yield GaugeMetricFamily(
                "mallhub_outbox_depth",
                "Messages waiting for the police platform (unpublished or awaiting receipt).",
                value=self.outbox_depth,
            )
            yield GaugeMetricFamily(
                "mallhub_outbox_oldest_age_seconds",
                "Age of the oldest waiting message (0 when none waits).",
                value=self.outbox_oldest_age_s or 0.0,
            )


@dataclass(frozen=True, slots=True)
class _Sources:
    index: SiteIndex
    ingest: Ingest
    link: LinkState
    police_rejected: Mapping[tuple[str, str], int]
    sia: SiaReceiver | None


def _remember(d: OrderedDict[str, Any], key: str, value: Any) -> None:
    d[key] = value
    if len(d) > _TRACKED_EVENTS:
        d.popitem(last=False)


def _compliance(service: Any) -> Iterable[Metric]:
    # The compliance part is optional; its latest result is read by duck typing.
    latest = getattr(service, "latest", None)
    rules = getattr(latest, "rules", None)
    if latest is None or rules is None:
        return
    g = GaugeMetricFamily(
        "mallhub_compliance_rule_status",
        "1 for each rule's current outcome, 0 for the others.",
        labels=["rule", "status"],
    )
    for r in rules:
        status = str(getattr(r, "status", getattr(getattr(r, "outcome", None), "status", "")))
        for s in COMPLIANCE_STATUSES:
            g.add_metric([str(r.rule_id), s], 1.0 if s == status else 0.0)
    yield g
    overall = str(getattr(latest, "overall", ""))
    o = GaugeMetricFamily(
        "mallhub_compliance_overall",
        "1 for the site's overall compliance status.",
        labels=["status"],
    )
    for s in ("compliant", "non_compliant", "unknown"):
        o.add_metric([s], 1.0 if s == overall else 0.0)
    yield o


class _LiveCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        try:
            yield from self._metrics._live()
        except Exception:  # a scrape must never take the hub down; the series are skipped
            log.exception("metrics: reading live values failed")

    def describe(self) -> Iterable[Metric]:
        return []
