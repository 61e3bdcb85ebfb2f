"""Alarm rules: where alarm devices are, supervision, periodic tests, response time and the
alarm log."""

from __future__ import annotations

from datetime import timedelta

from hub.compliance.facts import Facts
from hub.compliance.outcome import Evidence, Outcome, Text, Verdicts
from hub.compliance.rules.base import (
    Rule,
    detail,
    fixed,
    history_covers,
    history_note,
    pct,
    when,
)

#: Where S64 §二(一)四 and GB 51348 14.2.1(5) want emergency alarm devices.
ALARM_ROLES: tuple[tuple[str, Text], ...] = (
    ("gate", Text("门卫", "gate")),
    ("monitoring_room", Text("视频监控室", "video monitoring room")),
    ("duty_room", Text("24小时值班室", "24-hour duty room")),
    ("finance_room", Text("财务室", "finance room")),
)


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
        sup = detail(d, "supervision")
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
        if b.last_test_at is None and not history_covers(f, days):
            v.evidence.append(Evidence(b.id, "last_test", None, days, None))
            v.unknown(
                Text(
                    f"{b.id} 的测试记录（{history_note(f, days).zh}）",
                    f"a test of {b.id} ({history_note(f, days).en})",
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
                f"近30天 {measured} 个事件中仅 {pct(ratio)} 在 {th.alarm_response_s:g} 秒内上报",
                f"only {pct(ratio)} of {measured} events forwarded within "
                f"{th.alarm_response_s:g} s over 30 days",
            )
        )
    return v.outcome(
        Text(
            f"近30天 {measured} 个事件 {pct(ratio)} 在 {th.alarm_response_s:g} 秒内上报",
            f"{pct(ratio)} of {measured} events forwarded within {th.alarm_response_s:g} s",
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


RULES: tuple[Rule, ...] = (
    Rule(
        "ALM-LOCATIONS",
        Text("要害部位设置应急报警装置", "Emergency alarm devices at the required locations"),
        "S64 §二(一)四; GB 51348 14.2.1(5)",
        fixed("每处至少1个", "each location ≥ 1 device"),
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
        fixed(
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
        fixed(
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
)
