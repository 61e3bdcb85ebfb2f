"""The patrol store's tables (SQLAlchemy; PostgreSQL in production, SQLite for the demo).

Schema management is explicit and simple: ``open_store`` creates missing tables
(``create_all``) and records ``SCHEMA_VERSION`` in ``patrol_meta``; a store written by
another version is refused with a clear message instead of being used half-understood.
A change to these tables raises ``SCHEMA_VERSION`` (and, once deployments exist, brings an
Alembic migration). Tables are designed for the inspection workflow that comes next:
every command sent to a hub is a row (with its response), and every officer action is
audited.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hub.store.db import create_engine

SCHEMA_VERSION = 2


class StoreVersionError(Exception):
    """The database belongs to another version of the patrol store."""


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "patrol_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class MallRow(Base):
    """One mall, as the hubs report it (retained status, compliance) plus the registry."""

    __tablename__ = "patrol_malls"
    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    district: Mapped[str] = mapped_column(String(100), default="", index=True)
    state: Mapped[str] = mapped_column(String(16), default="unknown")
    """online / offline / unknown (never heard of)."""
    status_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the cluster stored the status message applied last."""
    status_seq_order: Mapped[int] = mapped_column(Integer, default=0)
    """Its stream sequence (0: known only from the retained copy read at start)."""
    offline_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    offline_reason: Mapped[str] = mapped_column(String(200), default="")
    hub_version: Mapped[str] = mapped_column(String(32), default="")
    compliance: Mapped[dict[str, object] | None] = mapped_column(JSON)
    compliance_overall: Mapped[str] = mapped_column(String(16), default="unknown")
    compliance_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seq: Mapped[int] = mapped_column(Integer, default=0)


class DeviceRow(Base):
    __tablename__ = "patrol_devices"
    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_type: Mapped[str] = mapped_column(String(32), default="")
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seq_order: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (Index("ix_patrol_devices_state", "state", "site_id"),)


class EventRow(Base):
    """Every event a hub sent, once (deduplicated on event_id); ``deliveries`` counts how
    often it arrived."""

    __tablename__ = "patrol_events"
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    device_id: Mapped[str] = mapped_column(String(64), default="")
    text_zh: Mapped[str] = mapped_column(String(300), default="")
    text_en: Mapped[str] = mapped_column(String(300), default="")
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    hub_received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), default="open")
    """open / ack_sent (an officer acknowledged; the hub has not confirmed) / acknowledged /
    closed."""
    ack_by: Mapped[str] = mapped_column(String(64), default="")
    ack_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    receipt_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[dict[str, object]] = mapped_column(JSON)
    __table_args__ = (
        Index("ix_patrol_events_open", "category", "state", "priority"),
        Index("ix_patrol_events_receipt", "receipt_sent_at"),
    )


class CommandRow(Base):
    """A command sent to a hub and, when it came, the hub's response."""

    __tablename__ = "patrol_commands"
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, object]] = mapped_column(JSON)
    by: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ok: Mapped[bool | None] = mapped_column(Boolean)
    response: Mapped[dict[str, object] | None] = mapped_column(JSON)
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserRow(Base):
    __tablename__ = "patrol_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    supervisor: Mapped[str] = mapped_column(String(64), default="")
    """The user name of the officer's supervisor: overdue notices escalate to them."""


class AuditRow(Base):
    __tablename__ = "patrol_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("patrol_users.id"))


class InspectionRow(Base):
    """An online inspection (网上巡查) of one mall: the ``inspect`` command sent, the hub's
    answer (or its silence) and the officer's findings."""

    __tablename__ = "patrol_inspections"
    inspection_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), index=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="waiting")
    """waiting (for the hub) / answered / no_answer / refused (the hub said why) /
    completed (the officer signed it off)."""
    officer: Mapped[str] = mapped_column(String(64))
    """The officer's display name (or the scheduler's name for a scheduled one)."""
    officer_user: Mapped[str] = mapped_column(String(64), default="")
    scheduled: Mapped[bool] = mapped_column(Boolean, default=False)
    schedule_key: Mapped[str | None] = mapped_column(String(32))
    """The period of a scheduled inspection (``2026-12``): one per mall and period."""
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    hub_inspection_id: Mapped[str] = mapped_column(String(64), default="")
    hub_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hub_finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    compliance: Mapped[dict[str, object] | None] = mapped_column(JSON)
    error: Mapped[dict[str, object] | None] = mapped_column(JSON)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_by: Mapped[str] = mapped_column(String(64), default="")
    __table_args__ = (
        UniqueConstraint("site_id", "schedule_key", name="uq_patrol_inspection_schedule"),
        Index("ix_patrol_inspections_state", "state", "due_at"),
    )


class InspectionItemRow(Base):
    """One checklist item: the hub's evidence (a snapshot's sha256, when it was taken, a
    device's state, a rule's result) and the officer's finding."""

    __tablename__ = "patrol_inspection_items"
    inspection_id: Mapped[str] = mapped_column(
        ForeignKey("patrol_inspections.inspection_id"), primary_key=True
    )
    item_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    """camera / role / device / rule / hub (the hub did not answer)."""
    title: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(32), default="")
    """What the hub says: a device's state, a rule's status, an error code."""
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    """The hub's item as it came, without the picture's bytes."""
    sha256: Mapped[str] = mapped_column(String(64), default="")
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    content_type: Mapped[str] = mapped_column(String(32), default="")
    picture: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The picture's bytes, checked against ``sha256``: inline in the answer, or fetched
    from the hub's signed URL afterwards."""
    picture_error: Mapped[str] = mapped_column(String(200), default="")
    """Why the picture could not be fetched from its URL (then it is not tried again)."""
    finding: Mapped[str | None] = mapped_column(String(16))
    """pass / problem, once the officer decided."""
    note: Mapped[str] = mapped_column(String(2000), default="")
    found_by: Mapped[str] = mapped_column(String(64), default="")
    found_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NoticeRow(Base):
    """A rectification notice (整改通知): what the police issued, and the mirror of the hub's
    retained ``<p>/notices/<id>`` (the highest ``version`` wins)."""

    __tablename__ = "patrol_notices"
    notice_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), index=True)
    inspection_id: Mapped[str | None] = mapped_column(String(64), index=True)
    item_id: Mapped[str] = mapped_column(String(160), default="")
    finding: Mapped[str] = mapped_column(String(2000))
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    issued_by: Mapped[str] = mapped_column(String(64), default="")
    issued_by_user: Mapped[str] = mapped_column(String(64), default="")
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), default="sent")
    """sent (the hub has not confirmed) / refused (the hub refused the issue) / the hub's
    open / answered / rejected / closed."""
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=0)
    """The hub's version of the notice applied last (0: none yet)."""
    hub: Mapped[dict[str, object] | None] = mapped_column(JSON)
    """The hub's retained message applied last (with every step)."""
    pending: Mapped[str] = mapped_column(String(16), default="")
    """The officer's decision sent and not yet confirmed by the hub (accept / reject)."""
    last_error: Mapped[dict[str, object] | None] = mapped_column(JSON)
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_to: Mapped[str] = mapped_column(String(64), default="")
    """The issuing officer's supervisor (user name); empty: every supervisor."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NoticeEvidenceRow(Base):
    """A picture the mall attached to its answer to a notice: the sha256 and time it gave,
    and the bytes once fetched from the hub's signed URL (kept only when they match)."""

    __tablename__ = "patrol_notice_evidence"
    notice_id: Mapped[str] = mapped_column(ForeignKey("patrol_notices.notice_id"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[int] = mapped_column(Integer)
    camera_id: Mapped[str] = mapped_column(String(64), default="")
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    content_type: Mapped[str] = mapped_column(String(32), default="")
    url: Mapped[str] = mapped_column(String(2000), default="")
    picture: Mapped[bytes | None] = mapped_column(LargeBinary)
    picture_error: Mapped[str] = mapped_column(String(200), default="")


def utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they are UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


async def open_store(url: str) -> AsyncEngine:
    """An engine on a store of this version: tables created when missing; a store of
    another version raises ``StoreVersionError``."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            found = (
                await conn.execute(select(Meta.value).where(Meta.key == "schema_version"))
            ).scalar_one_or_none()
            if found is None:
                await conn.execute(
                    insert(Meta).values(key="schema_version", value=str(SCHEMA_VERSION))
                )
            elif found != str(SCHEMA_VERSION):
                raise StoreVersionError(
                    f"the patrol store has schema version {found}; this program needs "
                    f"{SCHEMA_VERSION}"
                )
    except BaseException:
        await engine.dispose()
        raise
    return engine
