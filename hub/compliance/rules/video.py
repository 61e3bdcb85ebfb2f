"""Video rules: camera coverage, availability, frame rate, resolution, clock, picture quality,
recording retention and alarm-to-video linkage."""

from __future__ import annotations

from hub.compliance.facts import UP_STATES, DeviceFacts, Facts
from hub.compliance.outcome import Evidence, Outcome, Text, Verdicts
from hub.compliance.rules.base import (
    Rule,
    detail,
    fixed,
    missing_detail,
    num,
    pct,
    when,
)

#: Camera locations S64 §二(一)四 names; passages and entrances are one requirement.
COVERAGE_GROUPS: tuple[tuple[tuple[str, ...], Text], ...] = (
    (("perimeter",), Text("周界", "perimeter")),
    (("gate",), Text("大门口", "main gates")),
    (("passage", "entrance"), Text("通道和出入口", "passages and entrances")),
    (("parking",), Text("停车场", "parking")),
    (("finance_room",), Text("财务室", "finance room")),
)
#: Roles whose cameras must identify faces: the higher resolution applies.
KEY_ROLES = ("gate", "entrance", "finance_room")
#: Linkage actions that follow later by design and so are not timed.
UNTIMED_ACTIONS = ("renotify",)


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
                    f"{c.id} 24小时在线率 {pct(c.availability)}，低于 {pct(limit)}",
                    f"{c.id} was available {pct(c.availability)} over 24 h, below {pct(limit)}",
                )
            )
    return v.outcome(
        Text(
            f"所有摄像机在线，24小时在线率均不低于 {pct(limit)}",
            f"all cameras online, each available ≥ {pct(limit)} over 24 h",
        )
    )


def _unread(c: DeviceFacts, *keys: str) -> str:
    """Why a camera's video could not be read, as its last video check stored it ('' if it
    could)."""
    for key in keys:
        value = detail(c, key)
        if isinstance(value, str) and value:
            return value[:200]
    return ""


def vid_framerate(f: Facts) -> Outcome:
    th = f.config.compliance
    v = Verdicts()
    cams = f.by_type("camera")
    if not cams:
        v.unknown(Text("摄像机（配置中没有）", "cameras (none configured)"))
    need_measured = th.min_fps * 0.9
    for c in cams:
        limit = num(detail(c, "fps_limit"))
        measured = num(detail(c, "fps_measured"))
        if limit is None:
            missing_detail(v, c, "fps_limit", "编码帧率设置", "encoder frame-rate limit")
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
            why = _unread(c, "stream_error", "video_error")
            if why:
                v.evidence.append(Evidence(c.id, "fps_measured", None, None, None))
                v.unknown(
                    Text(f"{c.id} 的实测帧率（{why}）", f"measured frame rate of {c.id} ({why})")
                )
            else:
                missing_detail(v, c, "fps_measured", "实测帧率", "measured frame rate")
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
        res = detail(c, "resolution")
        if not isinstance(res, list | tuple) or len(res) != 2 or any(num(x) is None for x in res):
            missing_detail(v, c, "resolution", "分辨率", "resolution")
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
        offset = num(detail(c, "clock_offset_s"))
        if offset is None:
            missing_detail(v, c, "clock_offset_s", "时钟偏差", "clock offset")
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
        findings = detail(c, "findings")
        if not isinstance(findings, list):
            missing_detail(v, c, "findings", "视频质量检测结果", "video check results")
            continue
        bad = [x for x in findings if isinstance(x, dict) and x.get("ok") is False]
        why = _unread(c, "video_error")
        if not bad and why:
            # No picture was looked at: nothing failed, and nothing passed either.
            v.evidence.append(Evidence(c.id, "video_checks", None, None, None))
            v.unknown(Text(f"{c.id} 的画面（{why}）", f"the picture of {c.id} ({why})"))
            continue
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
        days = num(detail(c, "retention_days"))
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
                f"近30天 {measured} 次联动中仅 {pct(ratio)} 在 {th.linkage_budget_s:g} 秒内完成",
                f"only {pct(ratio)} of {measured} alarms' linkage done within "
                f"{th.linkage_budget_s:g} s over 30 days",
            )
        )
    return v.outcome(
        Text(
            f"近30天 {measured} 次联动，{pct(ratio)} 在 {th.linkage_budget_s:g} 秒内完成",
            f"{pct(ratio)} of {measured} alarms' linkage done within "
            f"{th.linkage_budget_s:g} s over 30 days",
        )
    )


RULES: tuple[Rule, ...] = (
    Rule(
        "VID-COVERAGE",
        Text("视频监控覆盖要害部位", "Cameras cover every required location"),
        "S64 §二(一)四",
        fixed("每类部位至少1台摄像机，且全部在线", "each role ≥ 1 camera, all of them online"),
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
        fixed("当前无视频检测失败项", "no failing video check now"),
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
)
