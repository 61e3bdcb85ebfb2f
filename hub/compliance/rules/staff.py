"""Staff, drill and record rules: guards on duty, the security team, drills, trainings, the hazard
register, physical barriers and the emergency system."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta

from hub.compliance.facts import Facts, RecordFacts
from hub.compliance.outcome import Evidence, Outcome, Text, Verdicts
from hub.compliance.rules.base import (
    Rule,
    day,
    detail,
    fixed,
    local_date,
)
from hub.config import Compliance

DRILL_TYPES: dict[str, Text] = {
    "fire": Text("火灾", "fire"),
    "robbery": Text("抢劫", "robbery"),
    "hostage": Text("劫持人质", "hostage taking"),
    "attack": Text("行凶杀人", "violent attack"),
    "sabotage": Text("破坏", "sabotage"),
    "explosion": Text("爆炸", "explosion"),
}


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
        ok = detail(d, "broadcast_ok")
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


RULES: tuple[Rule, ...] = (
    Rule(
        "STAFF-GUARDS",
        Text("按营业面积配足专职保安", "Enough full-time guards for the floor area"),
        "S64 §二(一)三",
        fixed(
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
        fixed("声明", "declared"),
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
        fixed("声明", "declared"),
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
        fixed("声明（广播另经探测）", "declared (broadcast also probed)"),
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
