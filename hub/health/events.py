"""What a device's health transition becomes: the events stored and forwarded to the police."""

from __future__ import annotations

from typing import Any

from adapters.device_event import DeviceEvent
from hub.health.results import ProbeResult
from hub.health.state import DeviceHealth, Transition


def transition_events(
    t: Transition, before: DeviceHealth, result: ProbeResult
) -> list[DeviceEvent]:
    """The events a device's state change becomes: offline, back online, a degradation and
    its restore, with the reason, the fix and the failed checks."""
    kinds: list[str] = []
    if t.new == "offline":
        kinds.append("fault.device_offline")
    elif t.new == "online":
        if t.old == "offline":
            kinds.append("info.device_online")
        elif t.old == "degraded":
            kinds.append(f"{t.fault_kind}.restore")
    elif t.new == "degraded":
        if t.old == "offline":
            kinds.append("info.device_online")
        kinds.append(t.fault_kind)
    detail: dict[str, Any] = {
        "previous_state": t.old,
        "state": t.new,
        "reason": t.reason,
    }
    if result.fix and t.new != "online":
        detail["fix"] = result.fix
    problems = [p for p in result.problems if not p.warning]
    if problems and t.new == "degraded":
        detail["problems"] = [p.as_dict() for p in problems]
        findings = [
            f
            for f in result.detail.get("findings", [])
            if f.get("ok") is False and not f.get("masked_by")
        ]
        if findings:
            detail["findings"] = findings
    since = before.since.isoformat() if before.since else "start"
    return [
        DeviceEvent(
            t.device_id,
            kind,
            t.at,
            source={"protocol": "health", "probe": result.device_type},
            # A retry after a failed store repeats the same transition: same key.
            dedupe_key=f"health:{t.device_id}:{t.old}>{t.new}:{since}:{kind}",
            detail=detail,
        )
        for kind in kinds
    ]
