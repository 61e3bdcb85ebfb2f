"""The city overview's words: Chinese first (the default), English available."""

from __future__ import annotations

from typing import Final

LANGS: Final = ("zh-CN", "en")
LANG_COOKIE: Final = "patrol_lang"

STRINGS: dict[str, tuple[str, str]] = {
    "app": ("商场安全网上巡查", "Mall security online patrol"),
    "overview": ("全市商场总览", "City overview"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "user": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "login_failed": ("用户名或密码错误", "Wrong user name or password"),
    "login_locked": ("密码错误次数过多，请稍后再试", "Too many wrong passwords; try again later"),
    "switch_lang": ("English", "中文"),
    "mall": ("商场", "Mall"),
    "district": ("辖区", "District"),
    "all_districts": ("全部辖区", "All districts"),
    "connection": ("连接", "Connection"),
    "online": ("在线", "online"),
    "offline": ("离线", "offline"),
    "unknown": ("未知", "unknown"),
    "offline_since": ("离线自", "offline since"),
    "open_alarms": ("未处理报警", "Open alarms"),
    "compliance": ("合规", "Compliance"),
    "compliant": ("合规", "compliant"),
    "non_compliant": ("不合规", "non-compliant"),
    "devices_offline": ("离线设备", "Devices offline"),
    "receipts_outstanding": ("未回执", "Receipts outstanding"),
    "alarm_queue": ("全市报警队列", "Alarm queue, all malls"),
    "no_alarms": ("当前无未处理报警", "No open alarms"),
    "priority": ("级别", "Priority"),
    "time": ("时间", "Time"),
    "kind": ("类型", "Kind"),
    "device": ("设备", "Device"),
    "state": ("状态", "State"),
    "acknowledge": ("确认", "Acknowledge"),
    "st_open": ("待处理", "open"),
    "st_ack_sent": ("已确认，等待商场回执", "acknowledged, waiting for the mall"),
    "st_acknowledged": ("商场已确认", "acknowledged"),
    "st_closed": ("已关闭", "closed"),
    "live": ("实时", "live"),
    "reconnecting": ("连接中断，正在重连…", "connection lost, reconnecting…"),
    "malls_total": ("商场总数", "Malls"),
    "malls_offline": ("离线商场", "Malls offline"),
}


def lang_of(value: str | None) -> str:
    return value if value in LANGS else "zh-CN"


def strings(lang: str) -> dict[str, str]:
    i = 1 if lang == "en" else 0
    return {k: v[i] for k, v in STRINGS.items()}
