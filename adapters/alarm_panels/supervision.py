"""Per-account supervision state: pure bookkeeping on times the caller passes in.

Every account with an interval has a deadline: the last time it was heard (or the receiver
start) plus interval plus grace. Passing the deadline makes the link ``lost`` once (the
caller stores ``fault.supervision``); the next message makes it ``ok`` again (the caller
stores ``fault.supervision.restore``). The state changes only after the caller confirms the
event was stored, so an event that could not be stored is retried rather than lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .config import AccountConfig

LinkState = Literal["ok", "lost", "unknown"]


@dataclass(frozen=True, slots=True)
class SupervisionStatus:
    """Link state of one account, for health checks."""

    state: LinkState
    """``unknown`` until the first message, ``lost`` after a supervision fault, else ``ok``."""
    last_heard: datetime | None
    lost_since: datetime | None


@dataclass(frozen=True, slots=True)
class Overdue:
    """An account whose deadline passed; ``heard_mark`` detects messages arriving meanwhile."""

    account: str
    heard_mark: int
    silent_for: float


@dataclass(slots=True)
class _Link:
    interval: float | None
    grace: float
    last_mono: float
    last_heard: datetime | None = None
    lost_since: datetime | None = None
    heard_count: int = 0

    @property
    def deadline(self) -> float | None:
        if self.interval is None or self.lost_since is not None:
            return None
        return self.last_mono + self.interval + self.grace


class Supervisor:
    """Supervision bookkeeping for a fixed set of accounts."""

    def __init__(self, accounts: Iterable[AccountConfig], start: float) -> None:
        self._links = {
            a.account: _Link(a.supervision_interval, a.supervision_grace, start) for a in accounts
        }

    def heard(self, account: str, mono: float, wall: datetime) -> bool:
        """Record a message; True when the link was lost and a restore must be stored."""
        link = self._links[account]
        link.last_mono = mono
        link.last_heard = wall
        link.heard_count += 1
        return link.lost_since is not None

    def restored(self, account: str) -> None:
        """The restore event was stored: the link is ``ok`` again."""
        self._links[account].lost_since = None

    def lost_since(self, account: str) -> datetime | None:
        """When the current outage was recorded, or None when the link is not lost."""
        return self._links[account].lost_since

    def overdue(self, mono: float) -> list[Overdue]:
        """Accounts whose deadline has passed and whose fault is not yet recorded."""
        out = []
        for account, link in self._links.items():
            deadline = link.deadline
            if deadline is not None and mono > deadline:
                out.append(Overdue(account, link.heard_count, mono - link.last_mono))
        return out

    def mark_lost(self, overdue: Overdue, wall: datetime) -> bool:
        """The fault event was stored. True when a message arrived while it was being stored,
        in which case the caller stores the restore at once."""
        link = self._links[overdue.account]
        link.lost_since = wall
        return link.heard_count != overdue.heard_mark

    def next_deadline(self) -> float | None:
        """The earliest pending deadline (monotonic seconds), or None."""
        deadlines = [d for link in self._links.values() if (d := link.deadline) is not None]
        return min(deadlines, default=None)

    def status(self, account: str) -> SupervisionStatus | None:
        """State of one account, None for an unconfigured account."""
        link = self._links.get(account.upper())
        if link is None:
            return None
        if link.lost_since is not None:
            state: LinkState = "lost"
        elif link.last_heard is None:
            state = "unknown"
        else:
            state = "ok"
        return SupervisionStatus(state, link.last_heard, link.lost_since)
