"""The event model: every kind the hub knows, its category and priority, and event ids.

This module is the one place that defines event kinds. Priorities follow GB/T 28181
AlarmPriority (1 highest … 4): panic, duress, hold-up and fire are 1; intrusion and tamper 2;
device offline, video loss and communication failure 3; power, battery, tests and restores 4.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Literal

Category = Literal["alarm", "fault", "info"]
CATEGORIES: tuple[Category, ...] = ("alarm", "fault", "info")
RESTORE_SUFFIX = ".restore"


@dataclass(frozen=True, slots=True)
class EventKind:
    """What the hub knows about one kind of event."""

    name: str
    category: Category
    priority: int
    zh: str
    en: str
    gb28181_method: int | None = None
    """GB/T 28181 AlarmMethod: 2 device alarm, 5 video alarm, 6 device fault."""
    gb28181_type: int | None = None
    """GB/T 28181 AlarmType within the method, where one applies."""


def _k(
    name: str, priority: int, zh: str, en: str, method: int | None = None, atype: int | None = None
) -> EventKind:
    category = name.split(".", 1)[0]
    assert category in CATEGORIES, name
    return EventKind(name, category, priority, zh, en, method, atype)


_KINDS: tuple[EventKind, ...] = (
    # Alarms: a person or a detector calls for help.
    _k("alarm.panic", 1, "一键报警", "Panic alarm", 2),
    _k("alarm.duress", 1, "胁迫报警", "Duress alarm", 2),
    _k("alarm.holdup", 1, "抢劫报警", "Hold-up alarm", 2),
    _k("alarm.medical", 1, "医疗求助", "Medical alarm", 2),
    _k("alarm.fire", 1, "火警", "Fire alarm", 2),
    _k("alarm.intrusion", 2, "入侵报警", "Intrusion alarm", 2),
    _k("alarm.tamper", 2, "防拆/遮挡报警", "Tamper alarm", 2, 2),
    _k("alarm.auxiliary", 2, "辅助报警", "Auxiliary alarm", 2),
    _k("alarm.digital_input", 2, "开关量输入报警", "Digital input alarm", 2),
    _k("alarm.unknown", 2, "未知报警代码", "Unknown alarm code", 2),
    # Faults: something that protects the mall no longer works.
    _k("fault.supervision", 3, "设备通信中断", "Supervision lost", 6),
    _k("fault.communication", 3, "通信故障", "Communication trouble", 6),
    _k("fault.device_offline", 3, "设备离线", "Device offline", 6),
    _k("fault.device_degraded", 3, "设备工作异常", "Device degraded", 6),
    _k("fault.video_loss", 3, "视频信号丢失", "Video signal loss", 2, 1),
    _k("fault.video_quality", 3, "视频质量异常", "Video quality fault", 5, 11),
    _k("fault.storage", 3, "存储故障", "Storage failure", 6, 1),
    _k("fault.siren", 3, "警号故障", "Siren trouble", 6),
    _k("fault.jamming", 3, "无线干扰", "RF jamming", 6),
    _k("fault.fire_loop", 3, "火警回路故障", "Fire loop trouble", 6),
    _k("fault.unknown_account", 3, "未登记的报警主机", "Unknown alarm account", 6),
    _k("fault.broadcast", 3, "广播故障", "Broadcast fault", 6),
    _k("fault.linkage", 3, "联动失败", "Linkage failed", 6),
    _k("fault.store", 3, "数据存储故障", "Event store failure", 6),
    _k("fault.clock", 3, "设备时钟偏差", "Device clock offset", 6),
    _k("fault.ac_loss", 4, "交流电断电", "AC power loss", 6),
    _k("fault.battery", 4, "电池欠压", "Low battery", 6),
    # Information: state, tests and the like.
    _k("info.device_online", 4, "设备恢复在线", "Device back online"),
    _k("info.arming", 4, "布撤防", "Arm / disarm"),
    _k("info.bypass", 4, "防区旁路", "Zone bypass"),
    _k("info.test", 4, "测试报警", "Test"),
    _k("info.periodic_test", 4, "定期测试", "Periodic test"),
    _k("info.motion", 4, "移动侦测", "Motion", 5, 2),
    _k("info.escalation", 4, "报警升级", "Alarm escalated"),
    _k("info.status", 4, "状态报告", "Status report"),
    _k("info.power_up", 4, "报警主机上电", "Panel powered up"),
)

KINDS: dict[str, EventKind] = {k.name: k for k in _KINDS}
UNKNOWN_KIND = KINDS["alarm.unknown"]


def kind_info(name: str) -> EventKind:
    """Return the kind's definition.

    ``X.restore`` is the restore of ``X``: always category ``info``, priority 4. A kind the
    table does not know is treated as ``alarm.unknown`` so it is still forwarded, never lost.
    """
    known = KINDS.get(name)
    if known is not None:
        return known
    if name.endswith(RESTORE_SUFFIX):
        base = KINDS.get(name[: -len(RESTORE_SUFFIX)])
        if base is not None:
            return EventKind(
                name, "info", 4, f"{base.zh}恢复", f"{base.en} restored", base.gb28181_method
            )
    return UNKNOWN_KIND


def is_known_kind(name: str) -> bool:
    return kind_info(name) is not UNKNOWN_KIND or name == UNKNOWN_KIND.name


# --- time-ordered ids ---------------------------------------------------------------------

_uuid_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """A UUID version 7 (RFC 9562): 48-bit Unix milliseconds, then a counter, then random bits.

    Ids made by one process are strictly increasing, even within one millisecond, so an
    ``event_id`` sorts in the order the hub stored the events.
    """
    global _last_ms, _counter
    with _uuid_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted within one millisecond: borrow the next
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = 0
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand
    return uuid.UUID(int=value)
