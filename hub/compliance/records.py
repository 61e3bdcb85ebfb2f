"""Drills, trainings, the hazard register and attestations: validated, stored through the
single writer and audited.

Every record keeps ``detail.entered_at`` (when it was entered); the rules count a record
only from then on, so a report for a past date reads as it did on that date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config import SiteConfig
from hub.store.models import Record
from hub.store.writer import WriteContext, iso, now_utc

from .rules import ATTESTABLE, DRILL_TYPES, RULES_BY_ID, local_date, site_tz

RECORD_KINDS = ("drill", "training", "hazard", "review", "attestation")
MAX_TITLE = 500
MAX_NAME = 128


class RecordError(ValueError):
    """The input describes no valid record; ``str(exc)`` is the message for the user."""


class RecordNotFound(LookupError):
    """No record has that id."""


# --- dates as the mall writes them ----------------------------------------------------------


def parse_day(text: str, what: str = "date") -> date:
    """``YYYY-MM-DD`` → a date, or a RecordError naming the option."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise RecordError(f"{what} {text!r} is not a date (YYYY-MM-DD)") from None


def start_of_day(config: SiteConfig, d: date) -> datetime:
    """Midnight at the start of ``d`` in the mall's time zone, as an aware datetime."""
    return datetime.combine(d, time(0), tzinfo=site_tz(config))


def end_of_day(config: SiteConfig, d: date) -> datetime:
    """The last microsecond of ``d`` in the mall's time zone."""
    return start_of_day(config, d + timedelta(days=1)) - timedelta(microseconds=1)


def _text(value: str | None, what: str, limit: int = MAX_TITLE) -> str:
    v = (value or "").strip()
    if not v:
        raise RecordError(f"{what} must not be empty")
    if len(v) > limit:
        raise RecordError(f"{what} is longer than {limit} characters")
    return v


def _not_future(config: SiteConfig, d: date, what: str) -> None:
    today = local_date(config, now_utc())
    if d > today:
        raise RecordError(f"{what} {d.isoformat()} is in the future (today is {today})")


# --- writer operations -------------------------------------------------------------------------


@dataclass(slots=True)
class AddRecord:
    """Insert one record and audit it. Returns the new record's id."""

    kind: str
    at: datetime
    title: str
    created_by: str
    owner: str | None = None
    due_at: datetime | None = None
    expires_at: datetime | None = None
    rule_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    async def apply(self, ctx: WriteContext) -> int:
        if self.kind not in RECORD_KINDS:
            raise RecordError(f"unknown record kind {self.kind!r}")
        detail = {**self.detail, "entered_at": iso(ctx.now)}
        row = Record(
            kind=self.kind,
            at=self.at,
            title=self.title,
            owner=self.owner,
            due_at=self.due_at,
            closed_at=None,
            expires_at=self.expires_at,
            rule_id=self.rule_id,
            created_by=self.created_by,
            detail=detail,
        )
        ctx.session.add(row)
        await ctx.session.flush()
        audit: dict[str, Any] = {"kind": self.kind, "at": iso(self.at), "title": self.title}
        for key, value in (
            ("owner", self.owner),
            ("due_at", self.due_at),
            ("expires_at", self.expires_at),
            ("rule_id", self.rule_id),
        ):
            if value is not None:
                audit[key] = iso(value) if isinstance(value, datetime) else value
        audit.update(self.detail)
        ctx.audit(self.created_by, f"record.{self.kind}", f"record:{row.id}", audit)
        return row.id


@dataclass(slots=True)
class CloseHazard:
    """Mark a hazard rectified (closed now) and audit it."""

    record_id: int
    by: str
    note: str = ""

    async def apply(self, ctx: WriteContext) -> datetime:
        row = await ctx.session.get(Record, self.record_id)
        if row is None:
            raise RecordNotFound(f"there is no record {self.record_id}")
        if row.kind != "hazard":
            raise RecordError(f"record {self.record_id} is a {row.kind}, not a hazard")
        if row.closed_at is not None:
            raise RecordError(f"hazard {self.record_id} was already closed on {iso(row.closed_at)}")
        row.closed_at = ctx.now
        detail = dict(row.detail or {})
        detail["closed_by"] = self.by
        if self.note:
            detail["close_note"] = self.note
        row.detail = detail
        ctx.audit(
            self.by,
            "record.hazard_closed",
            f"record:{row.id}",
            {"title": row.title, "note": self.note},
        )
        return ctx.now


# --- building valid records from what a person typed -----------------------------------------


def new_drill(
    config: SiteConfig, on: str, title: str, by: str, drill_type: str | None = None
) -> AddRecord:
    d = parse_day(on, "--date")
    _not_future(config, d, "the drill date")
    detail: dict[str, Any] = {}
    if drill_type is not None:
        if drill_type not in DRILL_TYPES:
            raise RecordError(f"drill type {drill_type!r} is not one of: {', '.join(DRILL_TYPES)}")
        detail["type"] = drill_type
    return AddRecord(
        "drill",
        start_of_day(config, d),
        _text(title, "--title"),
        _text(by, "--by", MAX_NAME),
        detail=detail,
    )


def new_training(config: SiteConfig, on: str, title: str, by: str) -> AddRecord:
    d = parse_day(on, "--date")
    _not_future(config, d, "the training date")
    return AddRecord(
        "training", start_of_day(config, d), _text(title, "--title"), _text(by, "--by", MAX_NAME)
    )


def new_hazard(
    config: SiteConfig, title: str, owner: str, due: str, by: str, found: str | None = None
) -> AddRecord:
    found_day = parse_day(found, "--date") if found else local_date(config, now_utc())
    _not_future(config, found_day, "the date the hazard was found")
    due_day = parse_day(due, "--due")
    if due_day < found_day:
        raise RecordError(f"the deadline {due_day} is before the hazard was found ({found_day})")
    return AddRecord(
        "hazard",
        start_of_day(config, found_day),
        _text(title, "--title"),
        _text(by, "--by", MAX_NAME),
        owner=_text(owner, "--owner", MAX_NAME),
        due_at=end_of_day(config, due_day),
    )


def new_review(config: SiteConfig, on: str | None, title: str | None, by: str) -> AddRecord:
    d = parse_day(on, "--date") if on else local_date(config, now_utc())
    _not_future(config, d, "the review date")
    return AddRecord(
        "review",
        start_of_day(config, d),
        _text(title or "月度隐患排查 / monthly hazard review", "--title"),
        _text(by, "--by", MAX_NAME),
    )


def new_attestation(
    config: SiteConfig, rule_id: str, by: str, evidence: str, expires: str
) -> AddRecord:
    rid = rule_id.strip().upper()
    if rid not in RULES_BY_ID:
        raise RecordError(f"there is no rule {rule_id!r}")
    if rid not in ATTESTABLE:
        raise RecordError(
            f"rule {rid} is measured by the hub and cannot be attested; "
            f"attestable rules: {', '.join(ATTESTABLE)}"
        )
    exp = parse_day(expires, "--expires")
    today = local_date(config, now_utc())
    if exp < today:
        raise RecordError(f"--expires {exp} is in the past (today is {today})")
    return AddRecord(
        "attestation",
        now_utc(),
        f"{rid}: {_text(evidence, '--evidence')}",
        _text(by, "--by", MAX_NAME),
        expires_at=end_of_day(config, exp),
        rule_id=rid,
        detail={"evidence": _text(evidence, "--evidence")},
    )


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordView:
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
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        def t(x: datetime | None) -> str | None:
            return iso(x) if x is not None else None

        return {
            "id": self.id,
            "kind": self.kind,
            "at": iso(self.at),
            "title": self.title,
            "owner": self.owner,
            "due_at": t(self.due_at),
            "closed_at": t(self.closed_at),
            "expires_at": t(self.expires_at),
            "rule_id": self.rule_id,
            "created_by": self.created_by,
            "detail": self.detail,
        }


async def list_records(engine: AsyncEngine, kind: str | None = None) -> list[RecordView]:
    """Every record (of one kind), oldest first."""
    q = select(Record).order_by(Record.at, Record.id)
    if kind is not None:
        q = q.where(Record.kind == kind)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).all()
    return [
        RecordView(
            r.id,
            r.kind,
            r.at,
            r.title,
            r.owner,
            r.due_at,
            r.closed_at,
            r.expires_at,
            r.rule_id,
            r.created_by,
            dict(r.detail or {}),
        )
        for r in rows
    ]
