"""Time as the patrol store keeps it: aware UTC datetimes, RFC 3339 strings from the hubs."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_ts(value: object) -> datetime | None:
    """An RFC 3339 string as an aware UTC datetime; None for anything else."""
    if not isinstance(value, str) or len(value) > 40 or not value.isascii():
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # Year 1 at +14:00 or year 9999 at -14:00 is outside what a datetime holds in UTC.
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso_z(dt: datetime) -> str:
    """``2026-12-03T08:00:00Z`` (seconds, UTC)."""
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
