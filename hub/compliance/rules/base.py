"""What every rule family shares: the :class:`Rule` row, the site's clock and calendar, and
small readers of device details."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.compliance.facts import DeviceFacts, Facts
from hub.compliance.outcome import Evidence, Outcome, Text, Verdicts
from hub.config import Compliance, SiteConfig

ROLE_NAMES: dict[str, Text] = {
    "gate": Text("大门口/门卫", "gate"),
    "monitoring_room": Text("视频监控室", "monitoring room"),
    "duty_room": Text("值班室", "duty room"),
    "finance_room": Text("财务室", "finance room"),
    "perimeter": Text("周界", "perimeter"),
    "entrance": Text("出入口", "entrance"),
    "passage": Text("通道", "passage"),
    "parking": Text("停车场", "parking"),
    "shop": Text("店铺", "shop"),
    "corridor": Text("走廊", "corridor"),
    "other": Text("其他", "other"),
}


def site_tz(config: SiteConfig) -> tzinfo:
    try:
        return ZoneInfo(config.site.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def local_date(config: SiteConfig, t: datetime) -> date:
    return t.astimezone(site_tz(config)).date()


def when(config: SiteConfig, t: datetime | None) -> str:
    """A time as the mall reads it: local, to the minute."""
    if t is None:
        return "—"
    return t.astimezone(site_tz(config)).strftime("%Y-%m-%d %H:%M")


def day(config: SiteConfig, t: datetime) -> str:
    return local_date(config, t).isoformat()


def detail(d: DeviceFacts, key: str) -> Any:
    return None if d.detail is None else d.detail.get(key)


def num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def pct(x: float) -> str:
    return f"{x * 100:.2f}".rstrip("0").rstrip(".") + " %"


def missing_detail(v: Verdicts, d: DeviceFacts, key: str, zh: str, en: str) -> None:
    v.evidence.append(Evidence(d.id, key, None, None, None))
    v.unknown(Text(f"{d.id} 的{zh}", f"{en} of {d.id}"))


def history_covers(f: Facts, days: int) -> bool:
    return f.history_start is not None and f.history_start <= f.at - timedelta(days=days)


def history_note(f: Facts, days: int) -> Text:
    since = when(f.config, f.history_start)
    return Text(
        f"本系统记录自 {since} 起，不足 {days} 天",
        f"the hub's history starts {since}, less than {days} days ago",
    )


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the catalogue."""

    id: str
    title: Text
    source: str
    threshold: Callable[[Compliance], Text]
    """The threshold in words, from the site's (or the default) thresholds."""
    evaluated_from: Text
    how: Text
    """How the hub decides pass / fail / unknown (published in docs/compliance-rules.md)."""
    check: Callable[[Facts], Outcome]
    attestable: bool = False


def fixed(zh: str, en: str) -> Callable[[Compliance], Text]:
    return lambda _c: Text(zh, en)
