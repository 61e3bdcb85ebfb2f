"""Which linkage rules an event triggers: a pure function of the rule, the event and the time.

A rule matches when every condition it sets holds: the event kind matches one of its
patterns ('*' matches any run of characters, so ``alarm.*`` matches ``alarm.panic``), the
priority is at most ``max_priority`` (1 is the highest), and the device, its zone and its
floor are among those listed (an empty list means any). ``schedule`` is a local time window
``HH:MM-HH:MM``; a window whose end is before its start runs over midnight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, tzinfo
from fnmatch import fnmatchcase

from hub.config import LinkageMatch, LinkageRule
from hub.site import DeviceInfo


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What rule matching looks at."""

    kind: str
    priority: int
    device: DeviceInfo
    at: datetime
    """When the event was received (aware); compared in the site's time zone."""


def kind_matches(pattern: str, kind: str) -> bool:
    """``alarm.*`` matches every alarm kind; a pattern without '*' must equal the kind."""
    return fnmatchcase(kind, pattern)


def parse_window(schedule: str) -> tuple[time, time]:
    """``"22:00-06:00"`` → (22:00, 06:00). Raises ValueError for an impossible time."""
    start_text, _, end_text = schedule.partition("-")
    return time.fromisoformat(start_text), time.fromisoformat(end_text)


def in_window(schedule: str | None, local: time) -> bool:
    """True when ``local`` falls in the window (start inclusive, end exclusive)."""
    if schedule is None:
        return True
    try:
        start, end = parse_window(schedule)
    except ValueError:
        # The config's pattern admits "25:99"; an alarm must not lose its linkage over a
        # typo, so an impossible window counts as always (the service warns at start).
        return True
    if start == end:
        return True  # "00:00-00:00": the whole day
    if start < end:
        return start <= local < end
    return local >= start or local < end  # over midnight


def matches(match: LinkageMatch, facts: EventFacts, tz: tzinfo) -> bool:
    """Does the event satisfy every condition of ``match``?"""
    if not any(kind_matches(p, facts.kind) for p in match.kinds):
        return False
    if facts.priority > match.max_priority:
        return False
    if match.devices and facts.device.id not in match.devices:
        return False
    loc = facts.device.location
    if match.zones and (loc is None or loc.zone not in match.zones):
        return False
    if match.floors and (loc is None or loc.floor not in match.floors):
        return False
    local = facts.at.astimezone(tz).time().replace(tzinfo=None)
    return in_window(match.schedule, local)


def select_rules(rules: Sequence[LinkageRule], facts: EventFacts, tz: tzinfo) -> list[LinkageRule]:
    """The rules the event triggers, in configuration order."""
    return [r for r in rules if matches(r.match, facts, tz)]
