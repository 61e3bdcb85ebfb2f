"""The facts the rules look at: devices, events, linkage timings, records, the audit chain's
state, the police link, and the previous result, as they stood at one moment.

The rules read only these values (``hub.compliance.rules``); ``hub.compliance.load`` builds
them from the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from hub.compliance.notice_facts import NoticeFacts
from hub.compliance.outcome import parse_time
from hub.config import SiteConfig
from hub.store.writer import iso

#: ``device_state.detail`` keys the rules read; a snapshot keeps them for past reports.
DETAIL_KEYS = (
    "clock_offset_s",
    "resolution",
    "fps_limit",
    "fps_measured",
    "findings",
    "video_error",  # why no picture could be judged: the video rules are then unknown
    "stream_error",  # why the main stream could not be measured
    "supervision",
    "broadcast_ok",
    "retention_days",
)
#: A snapshot describes the facts without history for at most this long after it was taken
#: (snapshots are stored on every change of outcome and at least hourly).
SNAPSHOT_VALID = timedelta(hours=2)
#: Availability of cameras is measured over this window.
AVAILABILITY_WINDOW = timedelta(hours=24)
#: Measured alarm statistics (response, linkage, acknowledgement) look back this far.
MEASURE_DAYS = 30
TEST_KINDS = ("info.test", "info.periodic_test")
UP_STATES = ("online", "degraded")


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    id: str
    type: str
    name: str
    role: str | None
    zone: str | None
    floor: str | None
    required: bool
    parent: str | None
    state: str
    """online / degraded / offline / unknown (unknown also when the store knows nothing)."""
    since: datetime | None
    reason: str
    last_seen: datetime | None
    detail: Mapping[str, Any] | None
    """The probe details, or None when nothing describes this device at that moment."""
    detail_at: datetime | None
    availability: float | None
    """Fraction of the known time in the window the device was online or degraded."""
    known_s: float
    """Seconds of the window for which the state was known."""
    last_test_at: datetime | None
    """The last test or real alarm from this device (buttons)."""


@dataclass(frozen=True, slots=True)
class EventFacts:
    event_id: str
    kind: str
    category: str
    priority: int
    device_id: str | None
    received_at: datetime
    published_at: datetime | None
    acked_at: datetime | None
    ack_via: str | None
    test_mode: bool
    source: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LinkageFacts:
    event_id: str
    type: str
    target: str
    outcome: str
    elapsed_ms: float | None
    at: datetime


@dataclass(frozen=True, slots=True)
class RecordFacts:
    id: int
    kind: str
    at: datetime
    title: str
    owner: str | None
    due_at: datetime | None
    closed_at: datetime | None
    expires_at: datetime | None
    rule_id: str | None
    created_by: str
    detail: Mapping[str, Any]
    entered_at: datetime


@dataclass(frozen=True, slots=True)
class AuditFacts:
    rows: int
    intact: bool
    first_bad_id: int | None
    reason: str
    oldest_at: datetime | None


class LinkStatus(Protocol):
    """What the compliance rules need to know about the police link (duck-typed)."""

    @property
    def connected(self) -> bool: ...
    @property
    def last_receipt_at(self) -> datetime | None: ...
    @property
    def pending(self) -> int: ...
    @property
    def oldest_pending_age_s(self) -> float | None: ...
    @property
    def receipts(self) -> str: ...


@dataclass(frozen=True, slots=True)
class LinkFacts:
    """The police link as seen at ``observed_at``."""

    connected: bool
    last_receipt_at: datetime | None
    pending: int
    oldest_pending_age_s: float | None
    receipts: str
    observed_at: datetime | None = None

    @staticmethod
    def of(status: LinkStatus, observed_at: datetime) -> LinkFacts:
        return LinkFacts(
            bool(status.connected),
            status.last_receipt_at,
            int(status.pending),
            status.oldest_pending_age_s,
            str(status.receipts),
            observed_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "last_receipt_at": iso(self.last_receipt_at) if self.last_receipt_at else None,
            "pending": self.pending,
            "oldest_pending_age_s": self.oldest_pending_age_s,
            "receipts": self.receipts,
            "observed_at": iso(self.observed_at) if self.observed_at else None,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> LinkFacts:
        lr = d.get("last_receipt_at")
        ob = d.get("observed_at")
        age = d.get("oldest_pending_age_s")
        return LinkFacts(
            connected=bool(d.get("connected")),
            last_receipt_at=parse_time(lr) if isinstance(lr, str) else None,
            pending=int(d.get("pending") or 0),
            oldest_pending_age_s=float(age) if isinstance(age, int | float) else None,
            receipts=str(d.get("receipts") or "off"),
            observed_at=parse_time(ob) if isinstance(ob, str) else None,
        )


@dataclass(frozen=True, slots=True)
class PreviousResult:
    """The last stored evaluation before this one: each rule's status and since."""

    at: datetime
    rules: Mapping[str, tuple[str, datetime | None]]


@dataclass(slots=True)
class Facts:
    """Everything the rules may look at, as of ``at``."""

    config: SiteConfig
    at: datetime
    live: bool
    devices: dict[str, DeviceFacts] = field(default_factory=dict)
    events: list[EventFacts] = field(default_factory=list)
    linkage: list[LinkageFacts] = field(default_factory=list)
    records: list[RecordFacts] = field(default_factory=list)
    notices: list[NoticeFacts] = field(default_factory=list)
    audit: AuditFacts | None = None
    link: LinkFacts | None = None
    history_start: datetime | None = None
    previous: PreviousResult | None = None
    snapshot_at: datetime | None = None
    """Where the facts without history came from, for a past moment."""

    def by_type(self, *types: str, required_only: bool = True) -> list[DeviceFacts]:
        return [
            d
            for d in self.devices.values()
            if d.type in types and (d.required or not required_only)
        ]
