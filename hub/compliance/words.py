"""What the evidence of a rule says, in words: the name of each check and the words its
values use, in Chinese and in English, for the printable report (a manager reads
"在线状态：离线", not "state: offline"). A check or value without a name here is shown as
it is: numbers, dates, titles and ids need none."""

from __future__ import annotations

from .outcome import Text
from .rules.base import ROLE_NAMES

CHECK_NAMES: dict[str, Text] = {
    # alarm devices and panels
    "alarm_devices": Text("报警装置数", "alarm devices"),
    "alarm_buttons": Text("一键报警按钮数", "alarm buttons"),
    "supervision_interval_s": Text("巡检间隔（秒）", "supervision interval (s)"),
    "supervision": Text("巡检状态", "supervision"),
    "silent_s": Text("无消息时长（秒）", "silent for (s)"),
    "last_test": Text("最近一次测试", "last test"),
    # the police link and the alarms it carries
    "connected": Text("已连接", "connected"),
    "outbox_pending": Text("待发送消息数", "messages waiting"),
    "oldest_pending_s": Text("最久待发送（秒）", "oldest waiting (s)"),
    "last_receipt_age_s": Text("距最近回执（秒）", "since the last receipt (s)"),
    "on_time_ratio": Text("按时比例（%）", "on time (%)"),
    "events_measured": Text("统计事件数", "events measured"),
    "alarms_measured": Text("统计报警数", "alarms measured"),
    "worst_delay_s": Text("最长延迟（秒）", "worst delay (s)"),
    "late": Text("超时", "late"),
    "alarms": Text("报警数", "alarms"),
    "late_or_unanswered": Text("超时或未确认", "late or unanswered"),
    "ack_late": Text("确认超时", "acknowledged late"),
    "linkage_late_or_failed": Text("联动超时或失败", "linkage late or failed"),
    # the audit log
    "rows": Text("记录数", "records"),
    "hash_chain": Text("哈希链", "hash chain"),
    "first_bad_record": Text("首条异常记录", "first bad record"),
    "oldest": Text("最早记录", "oldest record"),
    # broadcast
    "broadcast_controllers": Text("广播控制器数", "broadcast controllers"),
    "broadcast_ok": Text("广播正常", "broadcast works"),
    "broadcast_rules": Text("联动广播规则", "broadcast rules"),
    # devices and video
    "state": Text("设备状态", "device state"),
    "availability_24h": Text("24 小时在线率（%）", "online in 24 h (%)"),
    "cameras": Text("摄像机数", "cameras"),
    "fps_limit": Text("编码帧率设置", "frame-rate limit"),
    "fps_measured": Text("实测帧率", "measured frame rate"),
    "resolution": Text("分辨率", "resolution"),
    "clock_offset_s": Text("时钟偏差（秒）", "clock offset (s)"),
    "video_checks": Text("视频质量检测", "video checks"),
    "findings": Text("视频质量检测结果", "video check results"),
    "retention_days": Text("录像保存天数", "recordings kept (days)"),
    "signal_loss": Text("信号丢失", "signal loss"),
    "black": Text("黑屏", "black picture"),
    "covered": Text("遮挡", "covered"),
    "frozen": Text("画面冻结", "frozen picture"),
    "dark": Text("过暗", "too dark"),
    "bright": Text("过亮", "too bright"),
    "blur": Text("模糊", "blurred"),
    "noise": Text("噪点", "noise"),
    "colour_cast": Text("偏色", "colour cast"),
    "moved": Text("画面移位", "camera moved"),
    # staff and records
    "floor_area_m2": Text("营业面积（m²）", "floor area (m²)"),
    "guards": Text("保安人数", "guards"),
    "last": Text("最近一次记录", "last record"),
    "age_days": Text("距今天数", "days ago"),
    "last_update": Text("最近更新", "last update"),
    "deadline_and_owner": Text("整改期限与责任人", "deadline and owner"),
    "due": Text("整改期限", "due"),
    "drill": Text("应急演练", "drill"),
    "training": Text("安全培训", "training"),
    "hazard": Text("安全隐患", "hazard"),
    "review": Text("月度隐患排查", "monthly review"),
    "attestation": Text("声明", "attestation"),
    # rectification notices
    "open": Text("整改中", "open"),
    "overdue": Text("已超过整改期限", "overdue"),
}

VALUE_NAMES: dict[str, Text] = {
    "online": Text("在线", "online"),
    "degraded": Text("降级", "degraded"),
    "offline": Text("离线", "offline"),
    "unknown": Text("未知", "unknown"),
    "ok": Text("正常", "ok"),
    "lost": Text("中断", "lost"),
    "intact": Text("完整", "intact"),
    "broken": Text("已断裂", "broken"),
    # notice states
    "open": Text("待整改", "open"),
    "answered": Text("已回复", "answered"),
    "rejected": Text("已退回", "rejected"),
    "closed": Text("已销号", "closed"),
}
YES, NO = Text("是", "yes"), Text("否", "no")

#: What evidence is about when it is not a device or a record with an id of its own.
SUBJECT_NAMES: dict[str, Text] = {
    "police": Text("公安报警平台", "police platform"),
    "audit_log": Text("审计日志", "audit log"),
    "site": Text("本商场", "this site"),
    "drill": Text("应急演练", "drills"),
    "training": Text("安全培训", "training"),
    "hazard": Text("安全隐患", "hazards"),
    "review": Text("月度隐患排查", "monthly reviews"),
}


def check_name(check: str, lang: str) -> str:
    """The check's name in ``lang``, or the check itself when it has none."""
    name = CHECK_NAMES.get(check)
    return name.get(lang) if name is not None else check


def value_words(value: object, lang: str) -> object:
    """A value as the report shows it: booleans and words translated, the rest as it is."""
    if isinstance(value, bool):
        return (YES if value else NO).get(lang)
    if isinstance(value, str) and value in VALUE_NAMES:
        return VALUE_NAMES[value].get(lang)
    return value


def subject_words(subject: str, lang: str) -> str:
    """What a piece of evidence is about, in ``lang``: a place (``role:gate``) and the fixed
    subjects by name; a device id, an event or a record with its id as it is."""
    name = SUBJECT_NAMES.get(subject)
    if name is not None:
        return name.get(lang)
    kind, _, rest = subject.partition(":")
    role = ROLE_NAMES.get(rest) if kind == "role" else None
    return role.get(lang) if role is not None else subject
