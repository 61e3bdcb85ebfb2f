"""When a scheduled inspection of a mall is due: once per period (week or month, in China
Standard Time) at a time that looks random to the mall but that every process computes the
same way, from the mall, the period and a secret seed — so a restart or a second worker
neither moves nor repeats it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

CST = timezone(timedelta(hours=8), "CST")


def period(now: datetime, schedule: str) -> tuple[str, datetime, datetime]:
    """(key, start, end) of the period holding ``now``: ``2026-12`` or ``2026-W49``."""
    local = now.astimezone(CST)
    if schedule == "monthly":
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
        return f"{start:%Y-%m}", start, end
    if schedule == "weekly":
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        start = day - timedelta(days=day.weekday())
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}", start, start + timedelta(days=7)
    raise ValueError(f"no schedule {schedule!r}")


def scheduled_at(
    site_id: str, key: str, start: datetime, end: datetime, seed: str, hours: tuple[int, int]
) -> datetime:
    """The moment in [start, end) when ``site_id`` is inspected in period ``key``: a day of
    the period and a minute between ``hours`` (local time), drawn from a hash."""
    digest = hashlib.sha256(f"{seed}\0{site_id}\0{key}".encode()).digest()
    days = (end - start).days
    day = int.from_bytes(digest[:8], "big") % days
    first, last = hours
    minute = int.from_bytes(digest[8:16], "big") % ((last - first) * 60)
    at = start + timedelta(days=day, hours=first, minutes=minute)
    return at.astimezone(UTC)


def due(
    site_id: str, now: datetime, schedule: str, seed: str, hours: tuple[int, int]
) -> tuple[str, datetime] | None:
    """(period key, time) when the mall's inspection of this period is due by ``now``."""
    if schedule == "off":
        return None
    key, start, end = period(now, schedule)
    at = scheduled_at(site_id, key, start, end, seed, hours)
    return (key, at) if at <= now else None
