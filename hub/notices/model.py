"""Rectification notices (整改通知): states, transitions, command parsing and the retained
message. Pure: no I/O, so the rules of the workflow are tested on their own.

A notice goes ``open`` (issued by an officer) → ``answered`` (the mall says what it did, with
evidence) → ``closed`` (the officer accepts) or ``rejected`` (the officer wants more; the mall
answers again). The officer may also close a notice that was never answered, after checking
for themselves. ``closed`` is final. A notice in any other state is *open*; an open notice
past its deadline and not answered is *overdue*.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from hub.store.writer import iso

NOTICE_SCHEMA = "mallhub/notice/1"
INSPECTION_SCHEMA = "mallhub/inspection/1"

State = Literal["open", "answered", "rejected", "closed"]
STATES: tuple[State, ...] = ("open", "answered", "rejected", "closed")
OPEN_STATES: frozenset[str] = frozenset({"open", "answered", "rejected"})
#: States in which the mall owes an answer (so the deadline runs).
AWAITING_MALL: frozenset[str] = frozenset({"open", "rejected"})
Action = Literal["issue", "answer", "accept", "reject"]

NOTICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
ITEM_ID = re.compile(r"^[A-Za-z0-9._:/-]{1,160}$")
MAX_TEXT = 2000
MAX_NAME = 128
MAX_STEPS = 40
"""Rounds of answer and rejection one notice may take; the retained message stays small."""
PAST_DEADLINE_SLACK = timedelta(minutes=10)
MAX_DEADLINE = timedelta(days=366 * 2)


class NoticeError(ValueError):
    """A notice command or answer refused; ``code`` is the contract's error code.

    A ``ValueError``, so the store writer treats it as the operation's own fault: the
    transaction is rolled back, only this caller hears of it, the store stays healthy.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class IssueRequest:
    notice_id: str
    finding: str
    deadline: datetime
    officer: dict[str, str]
    item: dict[str, str] | None

    def terms(self) -> dict[str, Any]:
        """What a repeated ``issue`` must match to count as the same notice."""
        return {
            "finding": self.finding,
            "deadline": iso(self.deadline),
            "officer": self.officer,
            "item": self.item,
        }


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    notice_id: str
    action: Literal["accept", "reject"]
    by: str
    text: str
    """The officer's note (accept) or reason (reject)."""


def _text(body: Mapping[str, Any], key: str, limit: int, *, required: bool = True) -> str:
    value = body.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise NoticeError("invalid", f"{key} (non-empty string) is required")
    if len(value) > limit:
        raise NoticeError("invalid", f"{key} is longer than {limit} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise NoticeError("invalid", f"{key} contains control characters")
    return value.strip()


def notice_id_of(body: Mapping[str, Any]) -> str:
    value = body.get("notice_id")
    if not isinstance(value, str) or not NOTICE_ID.match(value):
        raise NoticeError("invalid", "notice_id must be 1-64 characters of A-Z a-z 0-9 . _ : -")
    return value


def _officer(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise NoticeError("invalid", "officer must be an object with a name")
    out = {"name": _text(value, "name", MAX_NAME)}
    for key in ("id", "unit"):
        if value.get(key) is not None:
            out[key] = _text(value, key, MAX_NAME)
    unknown = set(value) - {"name", "id", "unit"}
    if unknown:
        raise NoticeError("invalid", f"officer: unknown field {sorted(unknown)[0]!r}")
    return out


def _item(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise NoticeError("invalid", "item must be an object")
    item_id = value.get("item_id")
    if not isinstance(item_id, str) or not ITEM_ID.match(item_id):
        raise NoticeError(
            "invalid", "item.item_id must be 1-160 characters of A-Z a-z 0-9 . _ : / -"
        )
    out = {"item_id": item_id}
    inspection = value.get("inspection_id")
    if inspection is not None:
        if not isinstance(inspection, str) or not NOTICE_ID.match(inspection):
            raise NoticeError("invalid", "item.inspection_id must be 1-64 characters")
        out["inspection_id"] = inspection
    unknown = set(value) - {"item_id", "inspection_id"}
    if unknown:
        raise NoticeError("invalid", f"item: unknown field {sorted(unknown)[0]!r}")
    return out


def parse_time(value: Any, key: str) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise NoticeError("invalid", f"{key} must be an RFC 3339 date-time string")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise NoticeError("invalid", f"{key} is not an RFC 3339 date-time") from None
    if t.tzinfo is None:
        raise NoticeError("invalid", f"{key} needs a time zone (Z or +08:00)")
    return t


def check_site(body: Mapping[str, Any], site_id: str, *, required: bool) -> None:
    """A command naming another site is refused: it reached the wrong hub."""
    value = body.get("site_id")
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise NoticeError("invalid", "site_id (string) is required")
    if value != site_id:
        raise NoticeError("invalid", f"this hub is site {site_id}, not {value[:64]}")


def parse_command(
    body: Mapping[str, Any], site_id: str, now: datetime
) -> IssueRequest | DecisionRequest:
    """The ``notice`` command's body → what it asks (or ``NoticeError``)."""
    action = body.get("action")
    if action not in ("issue", "accept", "reject"):
        raise NoticeError("invalid", "action must be one of issue, accept, reject")
    check_site(body, site_id, required=action == "issue")
    notice_id = notice_id_of(body)
    if action == "issue":
        deadline = parse_time(body.get("deadline"), "deadline")
        if deadline < now - PAST_DEADLINE_SLACK:
            raise NoticeError("invalid", "deadline is in the past")
        if deadline > now + MAX_DEADLINE:
            raise NoticeError("invalid", "deadline is more than two years ahead")
        return IssueRequest(
            notice_id,
            _text(body, "finding", MAX_TEXT),
            deadline,
            _officer(body.get("officer")),
            _item(body.get("item")),
        )
    by = _text(body, "by", MAX_NAME)
    if action == "reject":
        return DecisionRequest(notice_id, "reject", by, _text(body, "reason", MAX_TEXT))
    return DecisionRequest(notice_id, "accept", by, _text(body, "note", MAX_TEXT, required=False))


def next_state(state: str, action: Action, notice_id: str) -> State:
    """The state after ``action``, or ``NoticeError("conflict")`` when it is not allowed."""
    if state == "closed":
        raise NoticeError("conflict", f"notice {notice_id} is closed")
    if action == "answer":
        if state == "answered":
            raise NoticeError(
                "conflict", f"notice {notice_id} is already answered; the officer decides next"
            )
        return "answered"
    if action == "reject":
        if state != "answered":
            raise NoticeError("conflict", f"notice {notice_id} has no answer to reject")
        return "rejected"
    if action == "accept":
        return "closed"
    raise NoticeError("conflict", f"notice {notice_id} exists already")


def is_overdue(state: str, deadline: datetime, now: datetime) -> bool:
    return state in AWAITING_MALL and now >= deadline


@dataclass(frozen=True, slots=True)
class NoticeView:
    """A stored notice with its steps, as the console, the facts and the message see it."""

    notice_id: str
    state: str
    finding: str
    deadline: datetime
    officer: Mapping[str, str]
    item: Mapping[str, str] | None
    issued_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    version: int
    steps: Sequence[Mapping[str, Any]]

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    def overdue(self, now: datetime) -> bool:
        return is_overdue(self.state, self.deadline, now)

    def last_answer(self) -> Mapping[str, Any] | None:
        answers = [s for s in self.steps if s.get("action") == "answered"]
        return answers[-1] if answers else None

    def message(self, site_id: str, now: datetime) -> dict[str, Any]:
        """The retained ``<p>/notices/<notice_id>`` message (docs/schemas/notice.schema.json)."""
        out: dict[str, Any] = {
            "schema": NOTICE_SCHEMA,
            "site_id": site_id,
            "notice_id": self.notice_id,
            "state": self.state,
            "overdue": self.overdue(now),
            "finding": self.finding,
            "deadline": iso(self.deadline),
            "officer": dict(self.officer),
            "issued_at": iso(self.issued_at),
            "updated_at": iso(self.updated_at),
            "version": self.version,
            "steps": [dict(s) for s in self.steps],
            "ts": iso(now),
        }
        if self.item is not None:
            out["item"] = dict(self.item)
        if self.closed_at is not None:
            out["closed_at"] = iso(self.closed_at)
        return out

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The console's and the API's view (the message without its envelope)."""
        out = self.message("", now)
        for key in ("schema", "site_id", "ts"):
            out.pop(key)
        out["open"] = self.open
        return out
