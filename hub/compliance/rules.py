"""The rule catalogue (COMPLIANCE.md) as one table: each rule with its evaluation.

Every rule reads only :class:`~hub.compliance.facts.Facts` and returns an
:class:`~hub.compliance.outcome.Outcome`. A value the facts do not contain makes the rule
``unknown`` (saying what is missing), never ``pass``. Rules marked ``attestable`` turn an
``unknown`` into ``attested`` when a person has declared the rule met (see the engine);
a measured ``fail`` is never overridden by a declaration.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from fnmatch import fnmatchcase
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.config import BroadcastAction, Compliance, LinkageRule, SiteConfig

from .facts import UP_STATES, DeviceFacts, Facts, RecordFacts
from .outcome import Evidence, Outcome, Text, Verdicts

# --- helpers -------------------------------------------------------------------------------

#: Camera locations S64 §二(一)四 names; passages and entrances are one requirement.
COVERAGE_GROUPS: tuple[tuple[tuple[str, ...], Text], ...] = (
    (("perimeter",), Text("周界", "perimeter")),
    (("gate",), Text("大门口", "main gates")),
    (("passage", "entrance"), Text("通道和出入口", "passages and entrances")),
    (("parking",), Text("停车场", "parking")),
    (("finance_room",), Text("财务室", "finance room")),
)
#: Where S64 §二(一)四 and GB 51348 14.2.1(5) want emergency alarm devices.
ALARM_ROLES: tuple[tuple[str, Text], ...] = (
    ("gate", Text("门卫", "gate")),
    ("monitoring_room", Text("视频监控室", "video monitoring room")),
    ("duty_room", Text("24小时值班室", "24-hour duty room")),
    ("finance_room", Text("财务室", "finance room")),
)
#: Roles whose cameras must identify faces: the higher resolution applies.
KEY_ROLES = ("gate", "entrance", "finance_room")
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
DRILL_TYPES: dict[str, Text] = {
    "fire": Text("火灾", "fire"),
    "robbery": Text("抢劫", "robbery"),
    "hostage": Text("劫持人质", "hostage taking"),
    "attack": Text("行凶杀人", "violent attack"),
    "sabotage": Text("破坏", "sabotage"),
    "explosion": Text("爆炸", "explosion"),
}
#: The outbox counts as drained while its oldest pending message is younger than this.
OUTBOX_DRAIN_S = 60.0
#: Linkage actions that follow later by design and so are not timed.
UNTIMED_ACTIONS = ("renotify",)
ALARM_ACK_VIA = ("console", "api", "hub", None)
"""Acknowledgements made at the mall (the police platform's own acks do not count)."""


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


def _detail(d: DeviceFacts, key: str) -> Any:
    return None if d.detail is None else d.detail.get(key)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _pct(x: float) -> str:
    return f"{x * 100:.2f}".rstrip("0").rstrip(".") + " %"


def _missing_detail(v: Verdicts, d: DeviceFacts, key: str, zh: str, en: str) -> None:
    v.evidence.append(Evidence(d.id, key, None, None, None))
    v.unknown(Text(f"{d.id} 的{zh}", f"{en} of {d.id}"))


def _history_covers(f: Facts, days: int) -> bool:
    return f.history_start is not None and f.history_start <= f.at - timedelta(days=days)


def _history_note(f: Facts, days: int) -> Text:
    since = when(f.config, f.history_start)
    return Text(
        f"本系统记录自 {since} 起，不足 {days} 天",
        f"the hub's history starts {since}, less than {days} days ago",
    )


# --- video ---------------------------------------------------------------------------------


def vid_coverage(f: Facts) -> Outcome:
    v = Verdicts()
    cams = f.by_type("camera")
    for roles, label in COVERAGE_GROUPS:
        group = [c for c in cams if c.role in roles]
        if not group:
            v.evidence.append(Evidence("role:" + "/".join(roles), "cameras", 0, 1, False))
            v.fail(Text(f"{label.zh}没有摄像机", f"no camera covers the {label.en}"))
            continue
        for c in group:
            ok = None if c.state == "unknown" else c.state in UP_STATES
            v.evidence.append(Evidence(c.id, "state", c.state, "online", ok, c.since))
            if c.state == "offline":
                v.fail(
                    Text(
                        f"{label.zh}摄像机 {c.id} 自 {when(f.config, c.since)} 起离线",
                        f"{label.en} camera {c.id} offline since {when(f.config, c.since)}",
                    ),
                    c.since,
                )
            elif c.state == "unknown":
                v.unknown(Text(f"{c.id} 的在线状态", f"the state of {c.id}"))
    return v.outcome(
        Text("所有要求部位均有摄像机且在线", "every required location has cameras, all online")
    )


def vid_online(f: Facts) -> Outcome:
    th = f.config.compliance
    v = Verdicts()
    cams = f.by_type("camera")
    if not cams:
        v.unknown(Text("需计入的摄像机（配置中没有）", "required cameras (none configured)"))
    limit = th.camera_availability_pct / 100
    for c in cams:
        ok_now = None if c.state == "unknown" else c.state != "offline"
        v.evidence.append(Evidence(c.id, "state", c.state, "online", ok_now, c.since))
        avail_ok = None if c.availability is None else c.availability >= limit
        v.evidence.append(
            Evidence(
                c.id,
                "availability_24h",
                None if c.availability is None else round(c.availability * 100, 3),
                th.camera_availability_pct,
                avail_ok,
            )
        )
        if c.state == "offline":
            v.fail(
                Text(
                    f"{c.id} 自 {when(f.config, c.since)} 起离线",
                    f"{c.id} offline since {when(f.config, c.since)}",
                ),
                c.since,
            )
        elif c.state == "unknown":
            v.unknown(Text(f"{c.id} 的在线状态", f"the state of {c.id}"))
        if c.availability is None:
            if c.state != "offline":
                v.unknown(Text(f"{c.id} 的24小时在线率", f"24 h availability of {c.id}"))
        elif c.availability < limit:
            v.fail(
                Text(
                    f"{c.id} 24小时在线率 {_pct(c.availability)}，低于 {_pct(limit)}",
                    f"{c.id} was available {_pct(c.availability)} over 24 h, below {_pct(limit)}",
                )
            )
    return v.outcome(
        Text(
            f"所有摄像机在线，24小时在线率均不低于 {_pct(limit)}",
            f"all cameras online, each available ≥ {_pct(limit)} over 24 h",
        )
    )


def vid_framerate(f: Facts) -> Outcome:
    th = f.config.compliance
    v = Verdicts()
    cams = f.by_type("camera")
    if not cams:
        v.unknown(Text("摄像机（配置中没有）", "cameras (none configured)"))
    need_measured = th.min_fps * 0.9
    for c in cams:
        limit = _num(_detail(c, "fps_limit"))
        measured = _num(_detail(c, "fps_measured"))
        if limit is None:
            _missing_detail(v, c, "fps_limit", "编码帧率设置", "encoder frame-rate limit")
        else:
            ok = limit >= th.min_fps
            v.evidence.append(Evidence(c.id, "fps_limit", limit, th.min_fps, ok))
            if not ok:
                v.fail(
                    Text(
                        f"{c.id} 编码帧率设置为 {limit:g} fps，低于 {th.min_fps:g}",
                        f"{c.id} encoder limited to {limit:g} fps, below {th.min_fps:g}",
                    )
                )
        if measured is None:
            _missing_detail(v, c, "fps_measured", "实测帧率", "measured frame rate")
        else:
            ok = measured >= need_measured
            v.evidence.append(
                Evidence(c.id, "fps_measured", round(measured, 2), round(need_measured, 2), ok)
            )
            if not ok:
                v.fail(
                    Text(
                        f"{c.id} 实测帧率 {measured:.1f} fps，低于 {need_measured:g}",
                        f"{c.id} measured {measured:.1f} fps, below {need_measured:g}",
                    )
                )
    return v.outcome(
        Text(f"所有摄像机帧率不低于 {th.min_fps:g} fps", f"all cameras at ≥ {th.min_fps:g} fps")
    )


def vid_resolution(f: Facts) -> Outcome:
    th = f.config.compliance
    v = Verdicts()
    cams = f.by_type("camera")
    if not cams:
        v.unknown(Text("摄像机（配置中没有）", "cameras (none configured)"))
    for c in cams:
        need = th.min_resolution_key if c.role in KEY_ROLES else th.min_resolution_other
        res = _detail(c, "resolution")
        if not isinstance(res, list | tuple) or len(res) != 2 or any(_num(x) is None for x in res):
            _missing_detail(v, c, "resolution", "分辨率", "resolution")
            continue
        w, h = int(res[0]), int(res[1])
        ok = w >= need[0] and h >= need[1]
        v.evidence.append(Evidence(c.id, "resolution", f"{w}x{h}", f"{need[0]}x{need[1]}", ok))
        if not ok:
            v.fail(
                Text(
                    f"{c.id} 分辨率 {w}×{h}，低于 {need[0]}×{need[1]}",
                    f"{c.id} streams {w}×{h}, below {need[0]}×{need[1]}",
                )
            )
    return v.outcome(Text("所有摄像机分辨率达标", "every camera's resolution is sufficient"))


def vid_clock(f: Facts) -> Outcome:
    th = f.config.compliance
    v = Verdicts()
    cams = f.by_type("camera")
    if not cams:
        v.unknown(Text("摄像机（配置中没有）", "cameras (none configured)"))
    for c in cams:
        offset = _num(_detail(c, "clock_offset_s"))
        if offset is None:
            _missing_detail(v, c, "clock_offset_s", "时钟偏差", "clock offset")
            continue
        ok = abs(offset) <= th.max_clock_offset_s
        v.evidence.append(
            Evidence(c.id, "clock_offset_s", round(offset, 3), th.max_clock_offset_s, ok)
        )
        if not ok:
            v.fail(
                Text(
                    f"{c.id} 时钟偏差 {offset:+.1f} 秒，超过 {th.max_clock_offset_s:g} 秒",
                    f"{c.id} clock is off by {offset:+.1f} s, more than "
                    f"{th.max_clock_offset_s:g} s",
                )
            )
    return v.outcome(
        Text(
            f"所有摄像机时钟偏差不超过 {th.max_clock_offset_s:g} 秒",
            f"every camera clock within {th.max_clock_offset_s:g} s",
        )
    )


def vid_quality(f: Facts) -> Outcome:
    v = Verdicts()
    cams = f.by_type("camera")
    if not cams:
        v.unknown(Text("摄像机（配置中没有）", "cameras (none configured)"))
    for c in cams:
        findings = _detail(c, "findings")
        if not isinstance(findings, list):
            _missing_detail(v, c, "findings", "视频质量检测结果", "video check results")
            continue
        bad = [x for x in findings if isinstance(x, dict) and x.get("ok") is False]
        if not bad:
            v.evidence.append(Evidence(c.id, "video_checks", len(findings), None, True))
            continue
        for x in bad:
            check = str(x.get("check", "?"))
            v.evidence.append(Evidence(c.id, check, x.get("score"), x.get("threshold"), False))
            zh = str(x.get("message_zh") or check)
            en = str(x.get("message_en") or check)
            v.fail(Text(f"{c.id}：{zh}", f"{c.id}: {en}"))
    return v.outcome(Text("所有摄像机画面正常", "every camera's picture is usable"))


def vid_retention(f: Facts) -> Outcome:
    th = f.config.compliance
    v = Verdicts()
    cams = f.by_type("camera")
    if not cams:
        v.unknown(Text("摄像机（配置中没有）", "cameras (none configured)"))
    for c in cams:
        days = _num(_detail(c, "retention_days"))
        if days is None:
            v.evidence.append(Evidence(c.id, "retention_days", None, th.retention_days, None))
            v.unknown(Text(f"{c.id} 的录像检索结果", f"a recording search result from {c.id}"))
            continue
        ok = days >= th.retention_days
        v.evidence.append(Evidence(c.id, "retention_days", days, th.retention_days, ok))
        if not ok:
            v.fail(
                Text(
                    f"{c.id} 最早录像仅 {days:g} 天前，少于 {th.retention_days} 天",
                    f"{c.id} keeps only {days:g} days of recordings, less than {th.retention_days}",
                )
            )
    return v.outcome(
        Text(
            f"录像保存不少于 {th.retention_days} 天", f"recordings kept ≥ {th.retention_days} days"
        )
    )


def vid_linkage(f: Facts) -> Outcome:
    th = f.config.compliance
    v = Verdicts()
    budget_ms = th.linkage_budget_s * 1000
    per_event: dict[str, list[tuple[str, float | None]]] = {}
    for item in f.linkage:
        if item.type in UNTIMED_ACTIONS:
            continue
        per_event.setdefault(item.event_id, []).append((item.outcome, item.elapsed_ms))
    measured = on_time = 0
    late: list[str] = []
    for event_id, items in per_event.items():
        if all(e is None for o, e in items if o == "ok") and all(o == "ok" for o, _ in items):
            continue  # no timing recorded: not measurable
        measured += 1
        if all(o == "ok" and e is not None and e <= budget_ms for o, e in items):
            on_time += 1
        else:
            late.append(event_id)
    if measured == 0:
        v.unknown(
            Text(
                f"近 {30} 天内没有可测量的联动（可用测试报警触发联动）",
                "linkage timings: no alarm with linkage in the last 30 days "
                "(a test alarm with linkage provides one)",
            )
        )
        return v.outcome(Text("", ""))
    ratio = on_time / measured
    v.evidence.append(
        Evidence("linkage", "on_time_ratio", round(ratio * 100, 3), 99, ratio >= 0.99)
    )
    v.evidence.append(Evidence("linkage", "alarms_measured", measured))
    for event_id in late[:10]:
        v.evidence.append(
            Evidence(f"event:{event_id}", "linkage_late_or_failed", None, None, False)
        )
    if ratio < 0.99:
        v.fail(
            Text(
                f"近30天 {measured} 次联动中仅 {_pct(ratio)} 在 {th.linkage_budget_s:g} 秒内完成",
                f"only {_pct(ratio)} of {measured} alarms' linkage done within "
                f"{th.linkage_budget_s:g} s over 30 days",
            )
        )
    return v.outcome(
        Text(
            f"近30天 {measured} 次联动，{_pct(ratio)} 在 {th.linkage_budget_s:g} 秒内完成",
            f"{_pct(ratio)} of {measured} alarms' linkage done within "
            f"{th.linkage_budget_s:g} s over 30 days",
        )
    )


# --- alarms --------------------------------------------------------------------------------


def alm_locations(f: Facts) -> Outcome:
    v = Verdicts()
    buttons = f.by_type("alarm_button")
    for role, label in ALARM_ROLES:
        here = [b.id for b in buttons if b.role == role]
        v.evidence.append(Evidence(f"role:{role}", "alarm_devices", here, 1, bool(here)))
        if not here:
            v.fail(
                Text(f"{label.zh}没有应急报警装置", f"no emergency alarm device at the {label.en}")
            )
    return v.outcome(
        Text(
            "门卫、监控室、值班室、财务室均设应急报警装置",
            "every required location has an alarm device",
        )
    )


def alm_supervision(f: Facts) -> Outcome:
    v = Verdicts()
    panels = f.config.devices.alarm_panels
    if not panels:
        v.unknown(Text("报警主机（配置中没有）", "alarm panels (none configured)"))
    for p in panels:
        d = f.devices.get(p.id)
        if p.supervision_interval_s is None:
            v.evidence.append(Evidence(p.id, "supervision_interval_s", None, None, False))
            v.fail(Text(f"{p.id} 未设置巡检（心跳）", f"{p.id} is not supervised (no interval)"))
            continue
        if d is None:
            continue
        sup = _detail(d, "supervision")
        allowed = p.supervision_interval_s + p.supervision_grace_s
        if d.state == "offline" or sup == "lost":
            v.evidence.append(Evidence(p.id, "supervision", sup or d.state, "ok", False, d.since))
            v.fail(
                Text(
                    f"{p.id} 通信中断（自 {when(f.config, d.since)} 起）",
                    f"{p.id} supervision lost (since {when(f.config, d.since)})",
                ),
                d.since if d.state == "offline" else None,
            )
        elif sup == "ok":
            # Silence as of when the details were read (a past report: the snapshot's time).
            ref = d.detail_at or f.at
            silent = (ref - d.last_seen).total_seconds() if d.last_seen else None
            ok = silent is None or silent <= allowed
            v.evidence.append(Evidence(p.id, "supervision", "ok", "ok", ok))
            if silent is not None:
                v.evidence.append(
                    Evidence(p.id, "silent_s", round(silent, 1), allowed, ok, d.last_seen)
                )
                if not ok:
                    v.fail(
                        Text(
                            f"{p.id} 已 {silent:.0f} 秒无消息，超过 {allowed:g} 秒",
                            f"{p.id} silent for {silent:.0f} s, more than {allowed:g} s",
                        ),
                        d.last_seen,
                    )
        else:
            v.evidence.append(Evidence(p.id, "supervision", sup, "ok", None))
            v.unknown(Text(f"{p.id} 的巡检状态", f"supervision state of {p.id}"))
    return v.outcome(
        Text("所有报警主机受巡检且通信正常", "every alarm panel supervised and heard from")
    )


def alm_tested(f: Facts) -> Outcome:
    days = f.config.compliance.button_test_days
    v = Verdicts()
    buttons = f.by_type("alarm_button")
    if not buttons:
        v.unknown(Text("一键报警按钮（配置中没有）", "emergency buttons (none configured)"))
    limit = f.at - timedelta(days=days)
    for b in buttons:
        ok = b.last_test_at is not None and b.last_test_at >= limit
        if ok:
            v.evidence.append(Evidence(b.id, "last_test", None, days, True, b.last_test_at))
            continue
        if b.last_test_at is None and not _history_covers(f, days):
            v.evidence.append(Evidence(b.id, "last_test", None, days, None))
            v.unknown(
                Text(
                    f"{b.id} 的测试记录（{_history_note(f, days).zh}）",
                    f"a test of {b.id} ({_history_note(f, days).en})",
                )
            )
            continue
        v.evidence.append(Evidence(b.id, "last_test", None, days, False, b.last_test_at))
        last = when(f.config, b.last_test_at) if b.last_test_at else "无"
        last_en = when(f.config, b.last_test_at) if b.last_test_at else "never"
        v.fail(
            Text(
                f"{b.id} 超过 {days} 天未测试（上次：{last}）",
                f"{b.id} not tested for over {days} days (last: {last_en})",
            ),
            (b.last_test_at or f.history_start or f.at) + timedelta(days=days),
        )
    return v.outcome(
        Text(f"所有报警按钮 {days} 天内测试过", f"every button tested within {days} days")
    )


def alm_response(f: Facts) -> Outcome:
    th = f.config.compliance
    v = Verdicts()
    measured = on_time = 0
    worst = 0.0
    late: list[str] = []
    for e in f.events:
        if e.published_at is not None:
            delay = (e.published_at - e.received_at).total_seconds()
        else:
            delay = (f.at - e.received_at).total_seconds()
            if delay <= th.alarm_response_s:
                continue  # still within its budget: not measurable yet
        measured += 1
        worst = max(worst, delay)
        if delay <= th.alarm_response_s:
            on_time += 1
        else:
            late.append(e.event_id)
    if measured == 0:
        v.unknown(
            Text(
                "近30天没有报警或测试事件可测量上报时延",
                "forwarding delays: no alarm or test event in the last 30 days",
            )
        )
        return v.outcome(Text("", ""))
    ratio = on_time / measured
    ok = ratio >= 0.999
    v.evidence.append(Evidence("police", "on_time_ratio", round(ratio * 100, 3), 99.9, ok))
    v.evidence.append(Evidence("police", "events_measured", measured))
    v.evidence.append(Evidence("police", "worst_delay_s", round(worst, 3), th.alarm_response_s))
    for event_id in late[:10]:
        v.evidence.append(Evidence(f"event:{event_id}", "late", None, th.alarm_response_s, False))
    if not ok:
        v.fail(
            Text(
                f"近30天 {measured} 个事件中仅 {_pct(ratio)} 在 {th.alarm_response_s:g} 秒内上报",
                f"only {_pct(ratio)} of {measured} events forwarded within "
                f"{th.alarm_response_s:g} s over 30 days",
            )
        )
    return v.outcome(
        Text(
            f"近30天 {measured} 个事件 {_pct(ratio)} 在 {th.alarm_response_s:g} 秒内上报",
            f"{_pct(ratio)} of {measured} events forwarded within {th.alarm_response_s:g} s",
        )
    )


def alm_log(f: Facts) -> Outcome:
    v = Verdicts()
    a = f.audit
    if a is None:
        v.unknown(Text("审计日志校验结果", "the audit log verification"))
        return v.outcome(Text("", ""))
    v.evidence.append(Evidence("audit_log", "rows", a.rows))
    if not a.intact:
        v.evidence.append(Evidence("audit_log", "hash_chain", "broken", "intact", False))
        v.evidence.append(Evidence(f"audit:{a.first_bad_id}", "first_bad_record", a.reason))
        v.fail(
            Text(
                f"审计日志哈希链在第 {a.first_bad_id} 条记录处断开：记录可能被篡改或删除",
                f"the audit log's hash chain breaks at record {a.first_bad_id}: "
                "records were altered or removed",
            )
        )
        return v.outcome(Text("", ""))
    if a.rows == 0:
        v.unknown(Text("审计日志记录（日志为空）", "audit records (the log is empty)"))
        return v.outcome(Text("", ""))
    v.evidence.append(Evidence("audit_log", "hash_chain", "intact", "intact", True))
    v.evidence.append(Evidence("audit_log", "oldest", None, None, True, a.oldest_at))
    return v.outcome(
        Text(
            f"审计日志完整：{a.rows} 条记录，自 {when(f.config, a.oldest_at)} 安装起未删改",
            f"audit log intact: {a.rows} records kept since installation "
            f"({when(f.config, a.oldest_at)})",
        )
    )


# --- police link and broadcast --------------------------------------------------------------


def pol_link(f: Facts) -> Outcome:
    th = f.config.compliance
    v = Verdicts()
    link = f.link
    if link is None:
        v.unknown(
            Text(
                "公安报警平台链路状态（本系统未运行）",
                "the police link state (the hub is not running)",
            )
        )
        return v.outcome(Text("", ""))
    v.evidence.append(Evidence("police", "connected", link.connected, True, link.connected))
    if not link.connected:
        v.fail(Text("未连接公安报警平台", "not connected to the police alarm platform"))
    age = link.oldest_pending_age_s
    drained = link.pending == 0 or age is None or age <= max(OUTBOX_DRAIN_S, 0)
    v.evidence.append(Evidence("police", "outbox_pending", link.pending, 0, drained))
    if not drained and age is not None:
        v.evidence.append(
            Evidence("police", "oldest_pending_s", round(age, 1), OUTBOX_DRAIN_S, False)
        )
        v.fail(
            Text(
                f"{link.pending} 条消息待发送，最早的已等待 {age:.0f} 秒",
                f"{link.pending} messages waiting, the oldest for {age:.0f} s",
            )
        )
    if link.receipts != "off" and link.pending > 0:
        base = link.observed_at or f.at
        receipt_age = (
            (base - link.last_receipt_at).total_seconds() if link.last_receipt_at else None
        )
        ok = receipt_age is not None and receipt_age <= th.receipt_max_age_s
        if link.receipts == "required" or receipt_age is not None:
            v.evidence.append(
                Evidence(
                    "police",
                    "last_receipt_age_s",
                    None if receipt_age is None else round(receipt_age, 1),
                    th.receipt_max_age_s,
                    ok,
                    link.last_receipt_at,
                )
            )
            if not ok and (age is None or age > th.receipt_max_age_s):
                v.fail(
                    Text(
                        f"有待回执的消息，且 {th.receipt_max_age_s:g} 秒内未收到平台回执",
                        f"messages await receipts and none arrived within "
                        f"{th.receipt_max_age_s:g} s",
                    )
                )
    return v.outcome(
        Text(
            "已连接公安报警平台，消息已全部送达", "connected to the police platform, outbox drained"
        )
    )


def _zone_tests(f: Facts, controller: str, zones: Sequence[str]) -> dict[str, datetime]:
    """The last time each broadcast zone played: zone tests and broadcast linkage outcomes."""
    last: dict[str, datetime] = {}

    def seen(zone: str, at: datetime) -> None:
        if zone in zones and (zone not in last or at > last[zone]):
            last[zone] = at

    for e in f.events:
        if e.device_id == controller and e.kind == "info.test":
            z = e.source.get("zone_test")
            if isinstance(z, str):
                seen(z, e.received_at)
    for item in f.linkage:
        if item.type != "broadcast" or item.outcome != "ok":
            continue
        target = item.target.replace(":", "/")
        ctrl, _, rest = target.partition("/")
        if rest and ctrl == controller:
            for z in rest.split(","):
                seen(z.strip(), item.at)
        elif not rest and ctrl == controller:
            for z in zones:  # the whole controller played: every zone
                seen(z, item.at)
        elif not rest:
            seen(ctrl, item.at)  # a bare zone id
    return last


def brd_ready(f: Facts) -> Outcome:
    days = f.config.compliance.broadcast_test_days
    v = Verdicts()
    ctrls = f.config.devices.broadcast
    if not ctrls:
        v.evidence.append(Evidence("site", "broadcast_controllers", 0, 1, False))
        v.fail(Text("未配置应急广播系统", "no broadcast system configured"))
    limit = f.at - timedelta(days=days)
    for bc in ctrls:
        d = f.devices.get(bc.id)
        if d is None:
            continue
        ok = _detail(d, "broadcast_ok")
        if d.state == "offline":
            v.evidence.append(Evidence(bc.id, "state", "offline", "online", False, d.since))
            v.fail(
                Text(f"广播主机 {bc.id} 离线", f"broadcast controller {bc.id} is offline"), d.since
            )
        elif ok is False:
            v.evidence.append(Evidence(bc.id, "broadcast_ok", False, True, False))
            v.fail(
                Text(f"广播主机 {bc.id} 状态异常", f"broadcast controller {bc.id} reports a fault")
            )
        elif ok is True and d.state != "unknown":
            v.evidence.append(Evidence(bc.id, "broadcast_ok", True, True, True))
        else:
            v.evidence.append(Evidence(bc.id, "broadcast_ok", None, True, None))
            v.unknown(Text(f"广播主机 {bc.id} 的状态", f"the status of controller {bc.id}"))
        zones = [z.id for z in bc.zones]
        tested = _zone_tests(f, bc.id, zones)
        for z in zones:
            at = tested.get(z)
            subject = f"{bc.id}/{z}"
            if at is not None and at >= limit:
                v.evidence.append(Evidence(subject, "last_test", None, days, True, at))
            elif at is None and not _history_covers(f, days):
                v.evidence.append(Evidence(subject, "last_test", None, days, None))
                v.unknown(
                    Text(
                        f"广播分区 {subject} 的测试（{_history_note(f, days).zh}）",
                        f"a test of zone {subject} ({_history_note(f, days).en})",
                    )
                )
            else:
                v.evidence.append(Evidence(subject, "last_test", None, days, False, at))
                v.fail(
                    Text(
                        f"广播分区 {subject} 超过 {days} 天未测试",
                        f"broadcast zone {subject} not tested for over {days} days",
                    )
                )
    return v.outcome(
        Text(
            f"广播系统正常，各分区 {days} 天内测试过",
            f"broadcast ok, every zone tested within {days} days",
        )
    )


def _rule_matches(rule: LinkageRule, kind: str, d: DeviceFacts) -> bool:
    m = rule.match
    return (
        any(fnmatchcase(kind, p) for p in m.kinds)
        and m.max_priority >= 1
        and (not m.devices or d.id in m.devices or (d.parent is not None and d.parent in m.devices))
        and (not m.zones or d.zone in m.zones)
        and (not m.floors or d.floor in m.floors)
        and m.schedule is None  # a rule that sleeps part of the day does not always evacuate
    )


def brd_linked(f: Facts) -> Outcome:
    v = Verdicts()
    buttons = f.by_type("alarm_button")
    if not buttons:
        v.evidence.append(Evidence("site", "alarm_buttons", 0, 1, False))
        v.fail(Text("没有应急报警按钮可联动广播", "no emergency buttons to start the broadcast"))
    for b in buttons:
        rules = [
            r.name
            for r in f.config.linkage
            if _rule_matches(r, "alarm.panic", b)
            and any(isinstance(a, BroadcastAction) for a in r.actions)
        ]
        v.evidence.append(Evidence(b.id, "broadcast_rules", rules, None, bool(rules)))
        if not rules:
            v.fail(
                Text(
                    f"{b.id} 报警不会启动广播（没有含广播动作的全天联动规则）",
                    f"an alarm from {b.id} starts no broadcast (no all-day rule with a broadcast)",
                )
            )
    return v.outcome(
        Text(
            "每个报警按钮的报警都会启动疏散广播",
            "every button's alarm starts the evacuation broadcast",
        )
    )


def duty_ack(f: Facts) -> Outcome:
    th = f.config.compliance
    v = Verdicts()
    measured = 0
    late: list[tuple[str, datetime]] = []
    for e in f.events:
        if e.category != "alarm" or e.test_mode:
            continue
        deadline = e.received_at + timedelta(seconds=th.ack_within_s)
        local_ack = e.acked_at if e.ack_via in ALARM_ACK_VIA else None
        if local_ack is not None and local_ack <= deadline:
            measured += 1
        elif local_ack is not None or f.at > deadline:
            measured += 1
            late.append((e.event_id, deadline))
    if measured == 0:
        v.unknown(
            Text("近30天没有报警可衡量值班室响应", "acknowledgements: no alarm in the last 30 days")
        )
        return v.outcome(Text("", ""))
    v.evidence.append(Evidence("duty_room", "alarms", measured))
    v.evidence.append(Evidence("duty_room", "late_or_unanswered", len(late), 0, not late))
    for event_id, deadline in late[:10]:
        v.evidence.append(
            Evidence(f"event:{event_id}", "ack_late", None, th.ack_within_s, False, deadline)
        )
    if late:
        v.fail(
            Text(
                f"近30天 {measured} 次报警中 {len(late)} 次未在 {th.ack_within_s:g} 秒内确认",
                f"{len(late)} of {measured} alarms in 30 days not acknowledged within "
                f"{th.ack_within_s:g} s",
            ),
            min(d for _, d in late),
        )
    return v.outcome(
        Text(
            f"近30天 {measured} 次报警均在 {th.ack_within_s:g} 秒内确认",
            f"all {measured} alarms in 30 days acknowledged within {th.ack_within_s:g} s",
        )
    )


# --- staff, drills, records -------------------------------------------------------------------


def required_guards(area_m2: float) -> int | None:
    """Full-time guards S64 §二(一)三 asks for; None below 10,000 m² (no number is set).

    10,000 ≤ area < 20,000 → 20; 20,000 ≤ area ≤ 30,000 → 30; above 30,000 m² one more per
    further 1,000 m², a started 1,000 m² counting in full (30,001 m² → 31, 45,000 → 45).
    A boundary value takes the higher band (exactly 20,000 m² → 30).
    """
    if area_m2 < 10_000:
        return None
    if area_m2 < 20_000:
        return 20
    if area_m2 <= 30_000:
        return 30
    return 30 + math.ceil((area_m2 - 30_000) / 1_000)


def staff_guards(f: Facts) -> Outcome:
    site = f.config.site
    v = Verdicts()
    area, guards = site.floor_area_m2, site.guards
    if area <= 0:
        v.unknown(
            Text("营业面积（site.floor_area_m2 未配置）", "the floor area (site.floor_area_m2)")
        )
        return v.outcome(Text("", ""))
    if guards <= 0:
        v.unknown(Text("专职保安人数（site.guards 未配置）", "the number of guards (site.guards)"))
        return v.outcome(Text("", ""))
    need = required_guards(area)
    v.evidence.append(Evidence("site", "floor_area_m2", area))
    v.evidence.append(
        Evidence("site", "guards", guards, need, None if need is None else guards >= need)
    )
    if need is None:
        v.notes.append(
            Text(
                "营业面积不足1万平方米，方案未规定人数",
                "below 10,000 m² the notice sets no number",
            )
        )
        return v.outcome(Text(f"配备专职保安 {guards} 名", f"{guards} full-time guards"))
    if guards < need:
        v.fail(
            Text(
                f"营业面积 {area:,.0f} 平方米需专职保安 {need} 名，现有 {guards} 名",
                f"{area:,.0f} m² needs {need} full-time guards; {guards} configured",
            )
        )
    return v.outcome(
        Text(
            f"营业面积 {area:,.0f} 平方米需 {need} 名，现有 {guards} 名",
            f"{area:,.0f} m² needs {need} guards; {guards} configured",
        )
    )


def _declared_only(what_zh: str, what_en: str) -> Callable[[Facts], Outcome]:
    def check(f: Facts) -> Outcome:
        v = Verdicts()
        v.unknown(
            Text(f"{what_zh}的声明（请登记声明）", f"a declaration that {what_en} (attest it)")
        )
        return v.outcome(Text("", ""))

    return check


def _records(f: Facts, *kinds: str) -> list[RecordFacts]:
    return [r for r in f.records if r.kind in kinds and r.at <= f.at]


def _last_record_rule(
    kind: str, label: Text, days_of: Callable[[Compliance], int]
) -> Callable[[Facts], Outcome]:
    def check(f: Facts) -> Outcome:
        days = days_of(f.config.compliance)
        v = Verdicts()
        recs = _records(f, kind)
        if not recs:
            v.evidence.append(Evidence(kind, "last", None, days, False))
            v.fail(Text(f"没有{label.zh}记录", f"no {label.en} recorded"))
            return v.outcome(Text("", ""))
        last = max(recs, key=lambda r: (r.at, r.id))
        age = (local_date(f.config, f.at) - local_date(f.config, last.at)).days
        ok = age <= days
        extra = ""
        extra_en = ""
        t = last.detail.get("type")
        if isinstance(t, str) and t in DRILL_TYPES:
            extra, extra_en = f"（{DRILL_TYPES[t].zh}）", f" ({DRILL_TYPES[t].en})"
        v.evidence.append(Evidence(f"record:{last.id}", kind, last.title, days, ok, last.at))
        v.evidence.append(Evidence(f"record:{last.id}", "age_days", age, days, ok))
        text = Text(
            f"最近一次{label.zh}{extra}：{day(f.config, last.at)}「{last.title}」，{age} 天前",
            f"last {label.en}{extra_en} on {day(f.config, last.at)} ({last.title}), {age} days ago",
        )
        if not ok:
            v.fail(
                Text(f"{text.zh}，超过 {days} 天", f"{text.en}, more than {days}"),
                last.at + timedelta(days=days + 1),
            )
        return v.outcome(text)

    return check


def haz_register(f: Facts) -> Outcome:
    days = f.config.compliance.hazard_register_days
    v = Verdicts()
    entries = _records(f, "hazard", "review")
    updates = [r.at for r in entries] + [r.closed_at for r in entries if r.closed_at]
    if not updates:
        v.evidence.append(Evidence("hazard_register", "last_update", None, days, False))
        v.fail(Text("隐患台账从未登记", "the hazard register was never updated"))
        return v.outcome(Text("", ""))
    last = max(updates)
    age = (local_date(f.config, f.at) - local_date(f.config, last)).days
    ok = age <= days
    v.evidence.append(Evidence("hazard_register", "last_update", age, days, ok, last))
    if not ok:
        v.fail(
            Text(
                f"隐患台账已 {age} 天未更新（上次 {day(f.config, last)}），超过 {days} 天",
                f"the hazard register was last updated {age} days ago ({day(f.config, last)}), "
                f"more than {days}",
            ),
            last + timedelta(days=days + 1),
        )
    open_items = [r for r in entries if r.kind == "hazard" and r.closed_at is None]
    for r in open_items:
        subject = f"hazard:{r.id}"
        if r.due_at is None or not r.owner:
            v.evidence.append(Evidence(subject, "deadline_and_owner", None, None, False, r.at))
            v.fail(
                Text(
                    f"隐患「{r.title}」缺少整改期限或责任人",
                    f"hazard '{r.title}' lacks a deadline or an owner",
                )
            )
            continue
        overdue = f.at > r.due_at
        v.evidence.append(
            Evidence(subject, "due", day(f.config, r.due_at), None, not overdue, r.at)
        )
        if overdue:
            v.fail(
                Text(
                    f"隐患「{r.title}」（责任人 {r.owner}）整改期限 {day(f.config, r.due_at)} 已过",
                    f"hazard '{r.title}' (owner {r.owner}) overdue since {day(f.config, r.due_at)}",
                ),
                r.due_at,
            )
    return v.outcome(
        Text(
            f"隐患台账 {age} 天前更新，{len(open_items)} 项整改中，无逾期",
            f"register updated {age} days ago; {len(open_items)} open, none overdue",
        )
    )


def sys_emergency(f: Facts) -> Outcome:
    v = Verdicts()
    ctrls = f.config.devices.broadcast
    if not ctrls:
        v.evidence.append(Evidence("site", "broadcast_controllers", 0, 1, False))
        v.fail(Text("未配置应急广播系统", "no broadcast system configured"))
    for bc in ctrls:
        d = f.devices.get(bc.id)
        if d is None:
            continue
        ok = _detail(d, "broadcast_ok")
        if d.state == "offline" or ok is False:
            v.evidence.append(Evidence(bc.id, "broadcast_ok", False, True, False, d.since))
            v.fail(Text(f"广播主机 {bc.id} 故障或离线", f"broadcast controller {bc.id} down"))
        else:
            v.evidence.append(Evidence(bc.id, "broadcast_ok", ok, True, ok if ok else None))
    v.unknown(
        Text(
            "应急照明、消防系统已安装的声明（请登记声明）",
            "a declaration that emergency lighting and fire systems are installed (attest it)",
        )
    )
    return v.outcome(Text("", ""))


# --- the table -----------------------------------------------------------------------------


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


def _t(zh: str, en: str) -> Callable[[Compliance], Text]:
    return lambda _c: Text(zh, en)


RULES: tuple[Rule, ...] = (
    Rule(
        "VID-COVERAGE",
        Text("视频监控覆盖要害部位", "Cameras cover every required location"),
        "S64 §二(一)四",
        _t("每类部位至少1台摄像机，且全部在线", "each role ≥ 1 camera, all of them online"),
        Text("配置的部位 + 设备状态", "config roles + device states"),
        Text(
            "周界、大门口、通道和出入口（两者之一即可）、停车场、财务室各至少有一台计入合规的摄像机；"
            "其中任何一台离线即不合格；状态未知则为未知。降级（degraded）仍算在线。",
            "Perimeter, main gates, passages-and-entrances (either role), parking and finance "
            "room each need at least one required camera; any of them offline fails the rule; "
            "a camera with no known state makes it unknown. Degraded still counts as online.",
        ),
        vid_coverage,
    ),
    Rule(
        "VID-ONLINE",
        Text("摄像机在线", "Required cameras are online"),
        "S64 (24-hour video monitoring centre)",
        lambda c: Text(
            f"24小时在线率 ≥ {c.camera_availability_pct:g}%，当前无离线",
            f"availability ≥ {c.camera_availability_pct:g} % over 24 h, none offline now",
        ),
        Text("设备状态历史", "device state history"),
        Text(
            "在线率 = 24小时内在线或降级的时间 / 状态已知的时间（按 device_state_changes 计算）。"
            "当前离线或在线率不足即不合格；没有状态或历史则为未知。",
            "Availability = time online or degraded / time with a known state over the last "
            "24 h (from device_state_changes). Offline now or availability below the limit "
            "fails; no state or no history is unknown.",
        ),
        vid_online,
    ),
    Rule(
        "VID-FRAMERATE",
        Text("实时视频帧率不低于25帧/秒", "Live video at ≥ 25 fps"),
        "GB 50395 5.0.10†",
        lambda c: Text(
            f"编码帧率设置 ≥ {c.min_fps:g}，实测 ≥ {c.min_fps:g} × 0.9",
            f"encoder frame-rate limit ≥ {c.min_fps:g} and measured ≥ {c.min_fps:g} × 0.9",
        ),
        Text("ONVIF 编码配置 + 码流实测", "ONVIF encoder config + stream measurement"),
        Text(
            "每台摄像机的 fps_limit 与 fps_measured 均需达标；任一缺失则为未知。",
            "Each camera's fps_limit and fps_measured must both reach the limit; either "
            "missing is unknown.",
        ),
        vid_framerate,
    ),
    Rule(
        "VID-RESOLUTION",
        Text("分辨率满足人脸辨识", "Resolution fit to identify faces at entrances"),
        "GB 50395 5.0.10† (minimum), local mall rules",
        lambda c: Text(
            f"大门口/出入口/财务室 ≥ {c.min_resolution_key[0]}×{c.min_resolution_key[1]}，"
            f"其他 ≥ {c.min_resolution_other[0]}×{c.min_resolution_other[1]}",
            f"≥ {c.min_resolution_key[0]}×{c.min_resolution_key[1]} for gate/entrance/finance "
            f"roles, ≥ {c.min_resolution_other[0]}×{c.min_resolution_other[1]} elsewhere",
        ),
        Text("ONVIF 编码配置", "ONVIF encoder config"),
        Text(
            "比较主码流的宽与高；未读到分辨率则为未知。",
            "Width and height of the main stream are compared; no resolution read is unknown.",
        ),
        vid_resolution,
    ),
    Rule(
        "VID-CLOCK",
        Text("摄像机时钟同步", "Camera clocks synchronised"),
        "GB 50395 5.0.7(3)†, 5.0.4(3)",
        lambda c: Text(
            f"时钟偏差 ≤ {c.max_clock_offset_s:g} 秒", f"offset ≤ {c.max_clock_offset_s:g} s"
        ),
        Text(
            "ONVIF GetSystemDateAndTime 与本机时钟比较", "ONVIF GetSystemDateAndTime vs hub clock"
        ),
        Text(
            "每台摄像机的 clock_offset_s 绝对值不超过限值；未测得则为未知。",
            "Each camera's |clock_offset_s| must not exceed the limit; not measured is unknown.",
        ),
        vid_clock,
    ),
    Rule(
        "VID-QUALITY",
        Text("视频画面可用", "Picture usable"),
        "GB 50395 5.0.5, 5.0.10†",
        _t("当前无视频检测失败项", "no failing video check now"),
        Text("OpenCV 视频检测", "OpenCV checks"),
        Text(
            "最近一次视频检测（无信号、黑屏、遮挡、冻结、过暗、过亮、模糊、噪声、偏色、移位）"
            "有任何一项失败即不合格；没有检测结果则为未知。",
            "Any failing finding of the latest video check (signal loss, black, covered, "
            "frozen, dark, bright, blur, noise, colour cast, moved) fails; no result is unknown.",
        ),
        vid_quality,
    ),
    Rule(
        "VID-RETENTION",
        Text("录像保存不少于30天", "Recordings kept ≥ 30 days"),
        "保安服务管理条例 Art. 25",
        lambda c: Text(
            f"{c.retention_days} 天（可设为90天）", f"{c.retention_days} days (90 configurable)"
        ),
        Text(
            "支持时由 ONVIF 录像检索，否则人工声明",
            "ONVIF recording search where supported, else attested",
        ),
        Text(
            "有设备报告最早录像天数（retention_days）时据此判断；否则需登记声明。",
            "Where devices report the age of their oldest recording (retention_days) it is "
            "compared; otherwise an attestation is needed.",
        ),
        vid_retention,
        attestable=True,
    ),
    Rule(
        "VID-LINKAGE",
        Text("报警联动视频4秒内完成", "An alarm brings up its linked cameras within 4 s"),
        "GB 50395 5.0.4(4)",
        lambda c: Text(
            f"近30天 ≥ 99% 的报警联动在 {c.linkage_budget_s:g} 秒内完成",
            f"linkage actions done ≤ {c.linkage_budget_s:g} s for ≥ 99 % of alarms over 30 days",
        ),
        Text("实测联动时间", "measured linkage timings"),
        Text(
            "一次报警的所有联动动作（补发通知除外）均成功且 elapsed_ms 不超过限值才算及时；"
            "30天内没有可测量的联动则为未知。",
            "An alarm counts as on time when all its linkage actions (except renotify) "
            "succeeded within the budget (elapsed_ms); no measured linkage in 30 days is "
            "unknown.",
        ),
        vid_linkage,
    ),
    Rule(
        "ALM-LOCATIONS",
        Text("要害部位设置应急报警装置", "Emergency alarm devices at the required locations"),
        "S64 §二(一)四; GB 51348 14.2.1(5)",
        _t("每处至少1个", "each location ≥ 1 device"),
        Text("配置的部位", "config roles"),
        Text(
            "门卫（gate）、视频监控室、24小时值班室、财务室各至少一个计入合规的一键报警按钮。",
            "Gate, video monitoring room, 24-hour duty room and finance room each need at "
            "least one required emergency button.",
        ),
        alm_locations,
    ),
    Rule(
        "ALM-SUPERVISION",
        Text("报警主机受巡检且通信正常", "Alarm panels supervised and heard from"),
        "GB 50394 5.2.4†",
        _t(
            "在巡检周期内收到消息；链路中断超过30秒报故障",
            "last message within its supervision interval; link loss > 30 s raises a fault",
        ),
        Text("接警机巡检", "receiver supervision"),
        Text(
            "报警主机须配置巡检周期；巡检丢失、离线或超过周期加宽限期无消息即不合格；"
            "巡检状态未知则为未知。按钮经其主机受巡检。",
            "Each panel must have a supervision interval; supervision lost, offline or "
            "silent beyond interval + grace fails; an unknown supervision state is unknown. "
            "Buttons are supervised through their panel.",
        ),
        alm_supervision,
    ),
    Rule(
        "ALM-TESTED",
        Text("一键报警按钮定期测试", "Every emergency button tested recently"),
        "S64 (monthly checks, quarterly drills)",
        lambda c: Text(
            f"每个按钮最近一次测试/报警 ≤ {c.button_test_days} 天",
            f"last test/alarm from each button ≤ {c.button_test_days} days ago",
        ),
        Text(
            "事件历史（测试模式、测试码、真实报警）",
            "event history (test mode, test codes, real presses)",
        ),
        Text(
            "info.test、info.periodic_test 与真实报警都算测试；"
            "本系统历史不足该天数且无测试时为未知。",
            "info.test, info.periodic_test and real alarms count; with no test and a history "
            "shorter than the period the rule is unknown.",
        ),
        alm_tested,
    ),
    Rule(
        "ALM-RESPONSE",
        Text("报警快速送达公安平台", "Alarms reach the police platform fast"),
        "GB 50394 5.2.8†",
        lambda c: Text(
            f"近30天 ≥ 99.9% 的事件接收→发出 ≤ {c.alarm_response_s:g} 秒",
            f"received→published ≤ {c.alarm_response_s:g} s for ≥ 99.9 % over 30 days",
        ),
        Text("逐事件实测", "measured per event"),
        Text(
            "报警与测试事件（同一路径）的 first_published_at − received_at；尚未发出且已超时的"
            "事件计为超时；没有事件则为未知。",
            "first_published_at − received_at of alarm and test events (same path); an event "
            "not yet published past its budget counts as late; no events is unknown.",
        ),
        alm_response,
    ),
    Rule(
        "ALM-LOG",
        Text(
            "报警及操作记录保存且不可篡改", "Alarm, fault and operator records kept and unalterable"
        ),
        "GB 50394 5.2.5†; 保安服务管理条例 Art. 25",
        _t(
            "哈希链完整，最早记录 ≥ 30天或自安装起",
            "hash chain intact, oldest record ≥ 30 days or since install",
        ),
        Text("审计日志校验", "audit log verification"),
        Text(
            "从第一条记录起校验审计日志哈希链；链完整即说明自安装起未删改；链断即不合格；日志为空为未知。",
            "The audit log's hash chain is verified from its first record; intact means "
            "nothing was removed or altered since installation; a break fails; an empty log "
            "is unknown.",
        ),
        alm_log,
    ),
    Rule(
        "POL-LINK",
        Text("接入公安报警平台", "Connected to the police alarm platform"),
        "S64 §二(一)四, §二(五)",
        lambda c: Text(
            f"MQTT 已连接，发件箱已清空，启用回执时最近回执 ≤ {c.receipt_max_age_s / 60:g} 分钟",
            f"MQTT connected, outbox drained, last receipt (if receipts on) ≤ "
            f"{c.receipt_max_age_s / 60:g} min",
        ),
        Text("公安链路状态", "police link state"),
        Text(
            f"未连接即不合格；最早待发消息等待超过 {OUTBOX_DRAIN_S:g} 秒视为未清空；"
            "启用回执且有待回执"
            "消息时，超过限值未收到回执即不合格；本系统未运行时为未知。",
            f"Not connected fails; the outbox counts as drained while its oldest message waits "
            f"≤ {OUTBOX_DRAIN_S:g} s; with receipts on and messages waiting, no receipt within "
            "the limit fails; when the hub is not running the rule is unknown.",
        ),
        pol_link,
    ),
    Rule(
        "BRD-READY",
        Text("应急广播可用且各分区已测试", "Broadcast reachable and every zone tested"),
        "S64 §二(一)四",
        lambda c: Text(
            f"状态正常；各分区 {c.broadcast_test_days} 天内播放过测试",
            f"status ok; each zone played a test ≤ {c.broadcast_test_days} days ago",
        ),
        Text("广播探测 + 历史", "broadcast probes + history"),
        Text(
            "广播主机须在线且 broadcast_ok；"
            "分区测试为广播主机上 source.zone_test=分区 的 info.test 事件，"
            "或成功的广播联动；未配置广播即不合格。",
            "Each controller must be online with broadcast_ok; a zone test is an info.test "
            "event on the controller with source.zone_test=<zone>, or a successful broadcast "
            "linkage; no broadcast system configured fails.",
        ),
        brd_ready,
    ),
    Rule(
        "BRD-LINKED",
        Text("报警联动疏散广播", "Alarms start the evacuation broadcast"),
        "S64 §二(一)四",
        _t(
            "每个应急按钮的一级报警都有含广播动作的联动规则",
            "every priority-1 alarm rule (for each emergency button) has a broadcast action",
        ),
        Text("联动规则配置", "config linkage rules"),
        Text(
            "每个计入合规的一键报警按钮的一级报警（alarm.panic）都须被一条全天有效（无时段限制）且含广播"
            "动作的联动规则匹配。",
            "Every required emergency button's priority-1 alarm (alarm.panic) must match an "
            "all-day (unscheduled) linkage rule that has a broadcast action.",
        ),
        brd_linked,
    ),
    Rule(
        "DUTY-ACK",
        Text("24小时值班室响应报警", "The 24-hour duty room answers alarms"),
        "S64 (24 h duty, 先期处置)",
        lambda c: Text(
            f"每次报警 {c.ack_within_s:g} 秒内本地确认",
            f"every alarm acknowledged locally ≤ {c.ack_within_s:g} s",
        ),
        Text("事件确认记录", "event acknowledgements"),
        Text(
            "近30天每次真实报警须在限值内由本地（控制台、接口）确认；公安平台的确认不算；超时未确认即不合格；"
            "30天内无报警则为未知。",
            "Every real alarm in the last 30 days must be acknowledged locally (console, API) "
            "within the limit; acknowledgements by the police platform do not count; none in "
            "30 days is unknown.",
        ),
        duty_ack,
    ),
    Rule(
        "STAFF-GUARDS",
        Text("按营业面积配足专职保安", "Enough full-time guards for the floor area"),
        "S64 §二(一)三",
        _t(
            "1–2万平方米 ≥ 20名；2–3万平方米 ≥ 30名；3万平方米以上每增加1000平方米加1名",
            "10–20k m² ≥ 20; 20–30k m² ≥ 30; above 30k m², 30 + 1 per further 1000 m²",
        ),
        Text("站点配置", "site config"),
        Text(
            "不足1000平方米的部分按1000计（30,001平方米需31名，45,000平方米需45名）；恰为20,000平方米按高档"
            "（30名）。不足1万平方米时方案未规定人数：有保安即合格并注明。面积或人数未配置为未知。",
            "A started 1,000 m² counts in full (30,001 m² → 31, 45,000 m² → 45); exactly "
            "20,000 m² takes the higher band (30). Below 10,000 m² the notice sets no number: "
            "pass with a note if guards are declared. Area or guards not configured is unknown.",
        ),
        staff_guards,
    ),
    Rule(
        "STAFF-TEAM",
        Text("内部防范组织与商户联防小组", "Internal defence team and shop joint-defence groups"),
        "S64 §二(一)三",
        _t("声明", "declared"),
        Text("人工声明", "attested"),
        Text(
            "5–10人的内部防范组织、5–10家店铺的治安联防小组，由负责人登记声明（含证据与有效期）。",
            "A 5–10 person internal defence team and joint-defence groups of 5–10 shops, "
            "declared by a responsible person (with evidence and an expiry).",
        ),
        _declared_only("内部防范组织与联防小组", "the defence team and joint-defence groups exist"),
        attestable=True,
    ),
    Rule(
        "DRILL-QUARTERLY",
        Text("每季度应急演练", "An emergency drill every quarter"),
        "S64 §二(一)二",
        lambda c: Text(f"最近一次演练 ≤ {c.drill_days} 天", f"last drill ≤ {c.drill_days} days"),
        Text("本系统登记的演练记录", "drill records entered in the hub"),
        Text(
            "按当地日期计算距最近一次演练（火灾、抢劫、劫持人质、行凶、破坏、爆炸）的天数；无记录即不合格。"
            "记录自登记之时起计入。",
            "Days (local dates) since the last drill (fire, robbery, hostage, attack, "
            "sabotage, explosion); no record fails. A record counts from when it was entered.",
        ),
        _last_record_rule("drill", Text("演练", "drill"), lambda c: c.drill_days),
    ),
    Rule(
        "TRAIN-MONTHLY",
        Text("每月安全教育培训", "Staff security training every month"),
        "S64 §二(一)二",
        lambda c: Text(
            f"最近一次培训 ≤ {c.training_days} 天", f"last training ≤ {c.training_days} days"
        ),
        Text("培训记录", "training records"),
        Text(
            "按当地日期计算距最近一次培训的天数；无记录即不合格。",
            "Days (local dates) since the last training; no record fails.",
        ),
        _last_record_rule("training", Text("培训", "training"), lambda c: c.training_days),
    ),
    Rule(
        "HAZ-REGISTER",
        Text("隐患排查登记与限期整改", "Hazards registered monthly and rectified on time"),
        "S64 §二(二); S62",
        lambda c: Text(
            f"台账 {c.hazard_register_days} 天内更新；无逾期未整改项",
            f"register updated ≤ {c.hazard_register_days} days; no overdue item",
        ),
        Text("本系统隐患台账", "hazard register in the hub"),
        Text(
            "台账更新 = 发现并登记隐患（按发现日期）、整改销项或月度排查（未发现隐患）；"
            "每项隐患须有整改期限和责任人，期限当日结束仍未销项即逾期。",
            "An update is a hazard found (its date), a hazard closed, or a monthly review "
            "(none found); each hazard needs a deadline and an owner and is overdue once its "
            "deadline day has ended while still open.",
        ),
        haz_register,
    ),
    Rule(
        "PHYS-BARRIERS",
        Text("出入口防冲撞设施与警示标志", "Anti-vehicle barriers, speed bumps and warning signs"),
        "S64 §二(一)五",
        _t("声明", "declared"),
        Text("人工声明", "attested"),
        Text(
            "隔离栏、升降柱等硬质防冲撞设施及减速带、警示标志，由负责人登记声明。",
            "Barriers, bollards, speed bumps and warning signs at entrances, declared by a "
            "responsible person.",
        ),
        _declared_only("防冲撞设施与警示标志", "barriers and warning signs are in place"),
        attestable=True,
    ),
    Rule(
        "SYS-EMERGENCY",
        Text("应急照明、广播、消防系统", "Emergency lighting, broadcast and fire systems"),
        "S64 §二(一)四",
        _t("声明（广播另经探测）", "declared (broadcast also probed)"),
        Text("人工声明 + 探测", "attested + probes"),
        Text(
            "广播主机故障或离线即不合格；否则需登记声明应急照明与消防系统已安装。",
            "A broadcast controller down fails; otherwise a declaration that emergency "
            "lighting and fire systems are installed is needed.",
        ),
        sys_emergency,
        attestable=True,
    ),
)

RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
ATTESTABLE: tuple[str, ...] = tuple(r.id for r in RULES if r.attestable)


def rule_ids() -> Iterable[str]:
    return RULES_BY_ID.keys()
