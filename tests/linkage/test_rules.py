"""Rule matching: kinds, priority, devices, zones, floors and schedules (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from hub.config import LinkageMatch, Location
from hub.linkage.rules import EventFacts, in_window, kind_matches, matches
from hub.site import DeviceInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
GATE = DeviceInfo(
    "btn-gate-1", "alarm_button", "正门", Location(floor="1F", zone="main-gate", role="gate")
)
NOWHERE = DeviceInfo("sia-receiver", "receiver", "sia-receiver", None)
# 10:30 in Shanghai
MORNING = datetime(2026, 11, 22, 2, 30, tzinfo=UTC)


def facts(kind: str = "alarm.panic", priority: int = 1, device: DeviceInfo = GATE) -> EventFacts:
    return EventFacts(kind, priority, device, MORNING)


@pytest.mark.parametrize(
    ("pattern", "kind", "expected"),
    [
        ("alarm.*", "alarm.panic", True),
        ("alarm.*", "fault.broadcast", False),
        ("alarm.panic", "alarm.panic", True),
        ("alarm.panic", "alarm.panic.restore", False),
        ("*", "info.test", True),
        ("fault.*", "fault.video_loss", True),
    ],
)
def test_kind_patterns(pattern: str, kind: str, expected: bool) -> None:
    assert kind_matches(pattern, kind) is expected


def test_defaults_match_every_alarm_and_nothing_else() -> None:
    m = LinkageMatch()
    assert matches(m, facts(), SHANGHAI)
    assert matches(m, facts("alarm.intrusion", 2), SHANGHAI)
    assert not matches(m, facts("info.test", 4), SHANGHAI)  # a test press never links


def test_priority_devices_zones_floors() -> None:
    assert not matches(LinkageMatch(max_priority=1), facts("alarm.intrusion", 2), SHANGHAI)
    assert matches(LinkageMatch(devices=["btn-gate-1"]), facts(), SHANGHAI)
    assert not matches(LinkageMatch(devices=["btn-duty-1"]), facts(), SHANGHAI)
    assert matches(LinkageMatch(zones=["main-gate"]), facts(), SHANGHAI)
    assert not matches(LinkageMatch(zones=["duty"]), facts(), SHANGHAI)
    assert matches(LinkageMatch(floors=["1F", "2F"]), facts(), SHANGHAI)
    assert not matches(LinkageMatch(floors=["B1"]), facts(), SHANGHAI)
    # A device without a location never matches a zone or floor condition.
    assert not matches(LinkageMatch(zones=["main-gate"]), facts(device=NOWHERE), SHANGHAI)
    assert not matches(LinkageMatch(floors=["1F"]), facts(device=NOWHERE), SHANGHAI)


def test_schedule_in_site_time_zone() -> None:
    # 02:30 UTC is 10:30 in Shanghai.
    assert matches(LinkageMatch(schedule="09:00-22:00"), facts(), SHANGHAI)
    assert not matches(LinkageMatch(schedule="22:00-09:00"), facts(), SHANGHAI)
    assert matches(LinkageMatch(schedule="22:00-09:00"), facts(), ZoneInfo("UTC"))


@pytest.mark.parametrize(
    ("window", "at", "expected"),
    [
        ("08:00-20:00", time(8, 0), True),
        ("08:00-20:00", time(20, 0), False),  # end is exclusive
        ("22:00-06:00", time(23, 59), True),
        ("22:00-06:00", time(5, 59), True),
        ("22:00-06:00", time(12, 0), False),
        ("00:00-00:00", time(12, 0), True),
        ("25:00-99:00", time(12, 0), True),  # impossible window: the alarm still links
        (None, time(3, 0), True),
    ],
)
def test_windows(window: str | None, at: time, expected: bool) -> None:
    assert in_window(window, at) is expected
