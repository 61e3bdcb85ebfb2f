"""The pages' words in Chinese (default) and English."""

from __future__ import annotations

from typing import Final

LANGS: Final = ("zh-CN", "en")
LANG_COOKIE: Final = "mallhub_lang"

STRINGS: dict[str, tuple[str, str]] = {
    "app": ("商场安防中心", "Mall security hub"),
    "console": ("报警台", "Alarm console"),
    "devices": ("设备", "Devices"),
    "events": ("事件", "Events"),
    "compliance": ("合规", "Compliance"),
    "records": ("台账", "Records"),
    "logout": ("退出", "Log out"),
    "login": ("登录", "Log in"),
    "user": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "login_failed": ("用户名或密码错误", "Wrong user name or password"),
    "login_locked": (
        "密码错误次数过多，请稍后再试",
        "Too many wrong passwords; try again later",
    ),
    "login_csrf": ("登录页面已过期，请重试", "The login page expired; please try again"),
    "switch_lang": ("English", "中文"),
    "live": ("实时", "live"),
    "offline_conn": ("连接中断，正在重连…", "connection lost, reconnecting…"),
    "sound_on": ("开启声音", "Enable sound"),
    "sound_enabled": ("声音已开启", "Sound on"),
    "no_alarms": ("当前无未处理报警", "No open alarms"),
    "floor": ("楼层", "Floor"),
    "zone": ("区域", "Zone"),
    "priority": ("级别", "Priority"),
    "state": ("状态", "State"),
    "all": ("全部", "All"),
    "time": ("时间", "Time"),
    "kind": ("类型", "Kind"),
    "device": ("设备", "Device"),
    "cameras": ("联动摄像机", "Linked cameras"),
    "snapshots": ("抓拍", "Snapshots"),
    "actions": ("操作", "Actions"),
    "acknowledge": ("确认", "Acknowledge"),
    "close": ("关闭", "Close"),
    "note": ("备注", "Note"),
    "add_note": ("添加备注", "Add note"),
    "disposition": ("处置结果", "Disposition"),
    "disp_handled": ("已处置", "handled"),
    "disp_false_alarm": ("误报", "false alarm"),
    "disp_test": ("测试", "test"),
    "disp_drill": ("演练", "drill"),
    "disp_other": ("其他", "other"),
    "st_new": ("新报警", "new"),
    "st_acknowledged": ("已确认", "acknowledged"),
    "st_closed": ("已关闭", "closed"),
    "ds_online": ("在线", "online"),
    "ds_degraded": ("异常", "degraded"),
    "ds_offline": ("离线", "offline"),
    "ds_unknown": ("未知", "unknown"),
    "p1": ("一级", "P1"),
    "p2": ("二级", "P2"),
    "p3": ("三级", "P3"),
    "p4": ("四级", "P4"),
    "test_event": ("测试", "test"),
    "not_online": ("仅显示不在线", "Only not online"),
    "last_seen": ("最后在线", "Last seen"),
    "latency": ("延迟", "Latency"),
    "clock_offset": ("时钟偏差", "Clock offset"),
    "video": ("视频（实测 · 画面来源）", "Video (measured · picture from)"),
    "findings": ("问题", "Findings"),
    "probe_now": ("立即检测", "Probe now"),
    "probe_requested": ("已请求检测", "Probe requested"),
    "test_mode": ("测试模式", "Test mode"),
    "test_on": ("开启测试模式(30分钟)", "Test mode on (30 min)"),
    "test_off": ("结束测试模式", "Test mode off"),
    "test_until": ("测试至", "Test until"),
    "search": ("搜索", "Search"),
    "search_ph": ("设备、类型、备注…", "device, kind, note…"),
    "category": ("类别", "Category"),
    "cat_alarm": ("报警", "alarm"),
    "cat_fault": ("故障", "fault"),
    "cat_info": ("信息", "info"),
    "since": ("自", "Since"),
    "until": ("至", "Until"),
    "export_csv": ("导出CSV", "Export CSV"),
    "prev": ("上一页", "Previous"),
    "next": ("下一页", "Next"),
    "total": ("共", "Total"),
    "story": ("事件经过", "Event story"),
    "timeline": ("时间线", "Timeline"),
    "linkage": ("联动结果", "Linkage outcomes"),
    "receipt": ("公安平台回执", "Police receipt"),
    "no_receipt": ("尚未收到回执", "No receipt yet"),
    "updates": ("更新消息", "Updates"),
    "notes": ("备注", "Notes"),
    "by": ("操作人", "By"),
    "rule": ("规则", "Rule"),
    "status": ("结论", "Status"),
    "explanation": ("说明", "Explanation"),
    "evidence": ("证据", "Evidence"),
    "overall": ("总体", "Overall"),
    "report_for": ("查看日期", "Report for"),
    "show": ("查看", "Show"),
    "printable": ("打印报告", "Printable report"),
    "evaluated_at": ("评估时间", "Evaluated at"),
    "drills": ("应急演练", "Drills"),
    "trainings": ("安全培训", "Trainings"),
    "hazards": ("隐患台账", "Hazard register"),
    "reviews": ("月度隐患排查", "Monthly reviews"),
    "attestations": ("声明", "Attestations"),
    "date": ("日期", "Date"),
    "title": ("内容", "Title"),
    "type": ("类型", "Type"),
    "owner": ("责任人", "Owner"),
    "due": ("整改期限", "Deadline"),
    "found": ("发现日期", "Found"),
    "closed": ("已整改", "Rectified"),
    "overdue": ("已逾期", "Overdue"),
    "open": ("未整改", "Open"),
    "rectify": ("标记已整改", "Mark rectified"),
    "add": ("添加", "Add"),
    "expires": ("有效期至", "Expires"),
    "created_by": ("登记人", "Entered by"),
    "failed": ("操作失败", "Failed"),
    "not_found": ("未找到", "Not found"),
    "forbidden": ("无权限", "Forbidden"),
    "role": ("角色", "Role"),
    "none": ("无", "none"),
    "back": ("返回", "Back"),
    "times_in": ("本页时间均为{tz}时间", "All times on this page are {tz} time"),
    "target": ("对象", "Target"),
    "detail": ("详情", "Detail"),
    "seq": ("序号", "seq"),
    # Event states of events that are not alarms: a restore or a fault is not a new alarm.
    "st_new_fault": ("新故障", "new fault"),
    "st_new_info": ("未处理", "open"),
    # Compliance verdicts (the printable report says the same).
    "cs_pass": ("合格", "pass"),
    "cs_fail": ("不合格", "fail"),
    "cs_unknown": ("未知", "unknown"),
    "cs_attested": ("已声明", "attested"),
    "cs_compliant": ("合规", "compliant"),
    "cs_non_compliant": ("不合规", "non-compliant"),
    # Device types.
    "dt_alarm_panel": ("报警主机", "alarm panel"),
    "dt_alarm_button": ("一键报警按钮", "alarm button"),
    "dt_detector": ("探测器", "detector"),
    "dt_fire_detector": ("火灾探测器", "fire detector"),
    "dt_camera": ("摄像机", "camera"),
    "dt_broadcast": ("广播", "broadcast"),
    "dt_receiver": ("接警接收机", "alarm receiver"),
    "dt_hub": ("安防中心", "hub"),
    # Roles.
    "role_viewer": ("查看员", "viewer"),
    "role_operator": ("值班员", "operator"),
    "role_technician": ("技术员", "technician"),
    "role_admin": ("管理员", "admin"),
    # Linkage actions and their outcomes.
    "lk_snapshot": ("抓拍", "snapshot"),
    "lk_ptz_preset": ("云台预置位", "PTZ preset"),
    "lk_relay_pulse": ("继电器脉冲", "relay pulse"),
    "lk_relay_on": ("继电器开", "relay on"),
    "lk_broadcast": ("广播", "broadcast"),
    "lk_renotify": ("再次通知", "re-notify"),
    "out_ok": ("成功", "ok"),
    "out_failed": ("失败", "failed"),
    # What happened to an event (its timeline).
    "tl_stored": ("已存储", "stored"),
    "tl_published": ("已上报公安", "sent to the police"),
    "tl_update": ("更新消息", "update"),
    "tl_police.receipt": ("公安回执", "police receipt"),
    "tl_event.acknowledged": ("确认", "acknowledged"),
    "tl_event.closed": ("关闭", "closed"),
    "tl_event.note": ("备注", "note"),
    "tl_event.linkage": ("联动", "linkage"),
    "tl_event.escalated": ("升级提醒", "escalated"),
    "tl_snapshot.taken": ("抓拍", "snapshot taken"),
    "notices": ("整改通知", "Notices"),
    "notice": ("整改通知", "Notice"),
    "notices_open": ("未销号", "Open"),
    "no_notices": ("暂无整改通知", "No rectification notices"),
    "notice_id": ("编号", "Number"),
    "finding": ("发现问题", "Finding"),
    "officer": ("民警", "Officer"),
    "issued_at": ("下发时间", "Issued"),
    "closed_at": ("销号时间", "Closed"),
    "item": ("巡查项", "Inspection item"),
    "notice_steps": ("办理过程", "Steps"),
    "reason": ("退回原因", "Reason"),
    "answer_notice": ("回复整改情况", "Answer the notice"),
    "answer_note": ("整改情况说明", "What was done"),
    "answer_cameras": ("现场抓拍（证据）", "Fresh snapshots (evidence)"),
    "answer_devices": ("设备状态（证据）", "Device states (evidence)"),
    "answer_send": ("提交回复", "Send the answer"),
    "notices_banner": ("份整改通知未销号", "rectification notice(s) open"),
    "notices_banner_overdue": ("份已逾期", "overdue"),
}


def word(t: dict[str, str], prefix: str, value: object) -> str:
    """The page word for an enum ``value`` (``t[prefix + value]``), or the value itself
    when there is none (tests/web/test_browser_zh.py fails on those in the Chinese pages)."""
    if value is None or value == "":
        return ""
    return t.get(f"{prefix}{value}", str(value))


def state_word(t: dict[str, str], state: str, category: str | None) -> str:
    """An event's state as the console says it: only an alarm is a "new alarm"."""
    if state == "new" and category in ("fault", "info"):
        return t[f"st_new_{category}"]
    return word(t, "st_", state)


def pick(lang: str) -> dict[str, str]:
    """All strings in one language."""
    i = 1 if lang == "en" else 0
    return {k: v[i] for k, v in STRINGS.items()}


def choose(requested: str | None, accept: str | None, default: str) -> str:
    """The cookie's language, else the site default (Accept-Language is not second-guessed:
    the monitoring centre's screens show what the mall configured)."""
    if requested in LANGS:
        return requested
    return default if default in LANGS else "zh-CN"
