"""Police link, broadcast and duty rules: the link to the police platform, the broadcast system
ready and linked to alarms, acknowledgement on duty."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from hub.compliance.facts import DeviceFacts, Facts
from hub.compliance.outcome import Evidence, Outcome, Text, Verdicts
from hub.compliance.rules.base import (
    Rule,
    detail,
    fixed,
    history_covers,
    history_note,
    when,
)
from hub.config import BroadcastAction, LinkageRule

#: The outbox counts as drained while its oldest pending message is younger than this.
OUTBOX_DRAIN_S = 60.0
ALARM_ACK_VIA = ("console", "api", "hub", None)
"""Acknowledgements made at the mall (the police platform's own acks do not count)."""


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
        ok = detail(d, "broadcast_ok")
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
            elif at is None and not history_covers(f, days):
                v.evidence.append(Evidence(subject, "last_test", None, days, None))
                v.unknown(
                    Text(
                        f"广播分区 {subject} 的测试（{history_note(f, days).zh}）",
                        f"a test of zone {subject} ({history_note(f, days).en})",
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


NOTICE_STATE_TEXT = {
    "open": Text("待整改", "open"),
    "answered": Text("已回复待民警确认", "answered, awaiting the officer"),
    "rejected": Text("被民警退回", "rejected by the officer"),
}


def pol_notices(f: Facts) -> Outcome:
    """Every rectification notice from the police is closed; an open one fails, an overdue
    one (no answer by its deadline) fails as overdue."""
    v = Verdicts()
    closed = 0
    for n in f.notices:
        state = NOTICE_STATE_TEXT.get(n.state)
        if state is None:
            closed += 1
            continue
        overdue = n.state in ("open", "rejected") and f.at >= n.deadline
        deadline = when(f.config, n.deadline)
        v.evidence.append(
            Evidence(
                f"notice:{n.notice_id}",
                "overdue" if overdue else "open",
                n.state,
                deadline,
                False,
                n.deadline if overdue else n.issued_at,
            )
        )
        if overdue:
            v.fail(
                Text(
                    f"整改通知 {n.notice_id} 已超过整改期限（{deadline}）未回复",
                    f"notice {n.notice_id} is overdue: no answer by {deadline}",
                ),
                n.deadline,
            )
        else:
            v.fail(
                Text(
                    f"整改通知 {n.notice_id} 未销号（{state.zh}，期限 {deadline}）",
                    f"notice {n.notice_id} is open ({state.en}, deadline {deadline})",
                ),
                n.issued_at,
            )
    if closed:
        return v.outcome(
            Text(f"{closed} 份整改通知均已销号", f"all {closed} rectification notices closed")
        )
    return v.outcome(Text("无整改通知", "no rectification notices"))


RULES: tuple[Rule, ...] = (
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
        "POL-NOTICE",
        Text("公安整改通知按期整改销号", "Police rectification notices put right and closed"),
        "S64 §二(二), §二(五)",
        fixed(
            "无未销号的整改通知；逾期未回复另行标明",
            "no open rectification notice; an overdue one is marked as such",
        ),
        Text("公安下发的整改通知", "rectification notices from the police"),
        Text(
            "公安民警通过网上巡查下发的整改通知，在民警确认销号前（待整改、已回复、被退回）"
            "均为不合格；超过整改期限仍未回复（待整改或被退回）的标明逾期，自期限起算。",
            "A rectification notice from the police fails the rule until the officer closes "
            "it (open, answered or rejected); one still without an answer past its deadline "
            "(open or rejected) is marked overdue, failing since the deadline.",
        ),
        pol_notices,
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
        fixed(
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
)
