"""Tables of the hub's store (SQLAlchemy 2 declarative). Migrations live in ``migrations/``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonDict = dict[str, Any]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, JsonDict: JSON}


class StoreLock(Base):
    """One row, updated first in every write transaction: the store-wide write lock that
    keeps seq and the audit hash chain linear even with writers in several processes."""

    __tablename__ = "store_lock"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class Event(Base):
    """One event, as stored before anybody was told about it."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(8))
    priority: Mapped[int] = mapped_column(SmallInteger)
    device_id: Mapped[str | None] = mapped_column(String(64), index=True)
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[JsonDict]
    detail: Mapped[JsonDict]
    device_state: Mapped[str | None] = mapped_column(String(8))
    dedupe_key: Mapped[str | None] = mapped_column(String(160), index=True)
    test_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="new")
    state_at: Mapped[datetime | None]
    state_by: Mapped[str | None] = mapped_column(String(128))
    state_via: Mapped[str | None] = mapped_column(String(16))
    disposition: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    update_seq: Mapped[int] = mapped_column(Integer, default=0)
    first_published_at: Mapped[datetime | None]
    receipted_at: Mapped[datetime | None]
    receipted_by: Mapped[str | None] = mapped_column(String(128))
    message: Mapped[JsonDict]


class EventUpdate(Base):
    """A change to an earlier event (state, attachments, linkage), as published."""

    __tablename__ = "event_updates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    update_seq: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    message: Mapped[JsonDict]


class Outbox(Base):
    """Everything for the police platform, in the order it must leave."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str] = mapped_column(String(512))
    payload: Mapped[str] = mapped_column(Text)
    retain: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(SmallInteger)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    event_id: Mapped[str | None] = mapped_column(String(36), index=True)
    coalesce_key: Mapped[str | None] = mapped_column(String(160), index=True)
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None]
    publish_count: Mapped[int] = mapped_column(Integer, default=0)
    receipt_required: Mapped[bool] = mapped_column(Boolean, default=False)
    receipted_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_outbox_order", "published_at", "priority", "seq", "id"),)


class Retained(Base):
    """The latest retained message per topic, republished after every reconnect."""

    __tablename__ = "retained"
    topic: Mapped[str] = mapped_column(String(512), primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class AuditLog(Base):
    """Append-only; each row's hash covers its content and the previous row's hash."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(160))
    detail: Mapped[JsonDict]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class DeviceState(Base):
    """Current health state of each device."""

    __tablename__ = "device_state"
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text, default="")
    last_seen: Mapped[datetime | None]
    fail_count: Mapped[int] = mapped_column(Integer, default=0)
    ok_count: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[JsonDict]


class DeviceStateChange(Base):
    """History of state changes, for availability over time and past-date reports."""

    __tablename__ = "device_state_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")


class Probe(Base):
    """One health probe result (kept for a retention period, then downsampled)."""

    __tablename__ = "probes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[JsonDict]


class ComplianceSnapshot(Base):
    """A compliance evaluation, stored whenever the outcome changes (and periodically)."""

    __tablename__ = "compliance_snapshots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    overall: Mapped[str] = mapped_column(String(16))
    body: Mapped[JsonDict]


class Record(Base):
    """Drills, trainings, hazard register entries and attestations."""

    __tablename__ = "records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    at: Mapped[datetime]
    title: Mapped[str] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(128))
    due_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    rule_id: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(128))
    detail: Mapped[JsonDict]


class Snapshot(Base):
    """A picture taken as evidence for an event."""

    __tablename__ = "snapshots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    taken_at: Mapped[datetime]
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)


class TestMode(Base):
    """A device or zone in test mode until a time."""

    __tablename__ = "test_mode"
    __test__ = False  # not a pytest test class
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(96), index=True)
    started_at: Mapped[datetime]
    until: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(128))
    ended_at: Mapped[datetime | None]


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class VideoBaseline(Base):
    """A camera's learned good picture and statistics for the video checks."""

    __tablename__ = "video_baselines"
    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    learned_at: Mapped[datetime]
    data: Mapped[bytes] = mapped_column()


class Notice(Base):
    """A rectification notice (整改通知) from the police, and where it stands."""

    __tablename__ = "notices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notice_id: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    finding: Mapped[str] = mapped_column(Text)
    deadline: Mapped[datetime] = mapped_column(index=True)
    officer: Mapped[JsonDict]
    item: Mapped[JsonDict | None]
    terms: Mapped[JsonDict]
    """The issuing command's terms: a repeated issue must match them."""
    issued_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    overdue_published: Mapped[bool] = mapped_column(Boolean, default=False)


class NoticeStep(Base):
    """One step of a notice (issued, answered, rejected, accepted, overdue), in order."""

    __tablename__ = "notice_steps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notice_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(128))
    via: Mapped[str] = mapped_column(String(16))
    detail: Mapped[JsonDict]
