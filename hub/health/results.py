"""What a health probe hands the state machine, the store and ``mallhub check``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.health.state import Level, Observation

DEVICE_DEGRADED = "fault.device_degraded"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a device that still answers (clock, resolution, picture ...)."""

    check: str
    message_zh: str
    message_en: str
    fix: str
    fault_kind: str = DEVICE_DEGRADED
    warning: bool = False
    """A warning is shown but does not degrade the device."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
            "fix": self.fix,
            "warning": self.warning,
        }


@dataclass(slots=True)
class ProbeResult:
    """One probe of one device.

    ``level`` is None when the probe could not tell (an alarm panel that has not spoken yet):
    such a result is stored but does not move the state machine.
    """

    device_id: str
    device_type: str
    at: datetime
    level: Level | None
    latency_s: float | None = None
    reason: str = ""
    fix: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    """The ``device_state.detail`` keys (see ``hub.health``) plus anything useful to show."""
    problems: list[Problem] = field(default_factory=list)
    seen_at: datetime | None = None
    """When the device was last heard from, where that differs from a successful probe
    (an alarm panel is seen when it reports, not when the hub looks at the receiver)."""

    @property
    def ok(self) -> bool:
        return self.level in ("ok", "degraded")

    @property
    def fault_kind(self) -> str:
        for p in self.problems:
            if not p.warning:
                return p.fault_kind
        return DEVICE_DEGRADED

    def observation(self) -> Observation | None:
        if self.level is None:
            return None
        return Observation(self.level, self.reason, self.fault_kind)

    def stored_detail(self) -> dict[str, Any]:
        """What goes into ``probes.detail`` and ``device_state.detail``."""
        out = dict(self.detail)
        if self.latency_s is not None:
            out["latency_ms"] = round(self.latency_s * 1000.0, 1)
        if self.problems:
            out["problems"] = [p.as_dict() for p in self.problems]
        if self.reason:
            out["reason"] = self.reason
        if self.fix:
            out["fix"] = self.fix
        return out


def summarise(problems: list[Problem]) -> tuple[str, str]:
    """(reason, fix) for a list of problems: the non-warnings, or the warnings if only those."""
    serious = [p for p in problems if not p.warning] or problems
    reason = "; ".join(p.message_en for p in serious)
    fix = " ".join(dict.fromkeys(p.fix for p in serious if p.fix))
    return reason, fix
