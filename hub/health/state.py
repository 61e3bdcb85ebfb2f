"""The per-device health state machine: pure, debounced, driven by probe observations.

States are ``online``, ``degraded`` (answers, but something is wrong with it), ``offline``
and ``unknown`` (nothing known yet). A probe gives one :class:`Observation` whose level is
``ok``, ``degraded`` or ``failed``. ``fail_threshold`` failures in a row take a device
offline; ``fail_threshold`` observations in a row that are not ``ok`` take an online device
to degraded; ``recover_threshold`` answers in a row bring an offline or unknown device back
(online or degraded, as the last answer says), and ``recover_threshold`` ``ok`` answers in a
row bring a degraded device back online. So a single failed probe never flaps the state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

State = Literal["online", "degraded", "offline", "unknown"]
Level = Literal["ok", "degraded", "failed"]
STATES: tuple[State, ...] = ("online", "degraded", "offline", "unknown")


@dataclass(frozen=True, slots=True)
class Observation:
    """What one probe says about a device."""

    level: Level
    reason: str = ""
    """Short human text: why the device is not ok (empty when ok)."""
    fault_kind: str = "fault.device_degraded"
    """The event kind a change to ``degraded`` becomes (``fault.video_quality``, ...)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, to be stored and reported."""

    device_id: str
    old: State
    new: State
    at: datetime
    reason: str
    fault_kind: str
    """For a change to degraded: the fault kind; for a change away from it: the kind that ends."""


@dataclass(slots=True)
class DeviceHealth:
    """The debounced state of one device. Not thread-safe; one owner."""

    device_id: str
    fail_threshold: int = 3
    recover_threshold: int = 2
    state: State = "unknown"
    since: datetime | None = None
    reason: str = ""
    last_seen: datetime | None = None
    fail_count: int = 0
    """Failed observations in a row."""
    bad_count: int = 0
    """Observations in a row that were not ok (failed or degraded)."""
    ok_count: int = 0
    """Ok observations in a row."""
    up_count: int = 0
    """Observations in a row where the device answered (ok or degraded)."""
    degraded_kind: str = "fault.device_degraded"

    def observe(self, obs: Observation, at: datetime) -> Transition | None:
        """Count one observation; return the transition it causes, if any."""
        if obs.level == "failed":
            self.fail_count += 1
            self.bad_count += 1
            self.ok_count = 0
            self.up_count = 0
        else:
            self.last_seen = at
            self.fail_count = 0
            self.up_count += 1
            if obs.level == "ok":
                self.ok_count += 1
                self.bad_count = 0
            else:
                self.ok_count = 0
                self.bad_count += 1
        target = self._target(obs)
        if target is None or target == self.state:
            if self.state != "online" and obs.reason and obs.level != "ok":
                # Still down or degraded, perhaps for a different reason: keep it current.
                self.reason = obs.reason
            return None
        old = self.state
        kind = obs.fault_kind if target == "degraded" else self.degraded_kind
        if target == "degraded":
            self.degraded_kind = obs.fault_kind
        self.state = target
        self.since = at
        self.reason = obs.reason if target != "online" else ""
        return Transition(self.device_id, old, target, at, self.reason, kind)

    def _target(self, obs: Observation) -> State | None:
        n, m = self.fail_threshold, self.recover_threshold
        if obs.level == "failed":
            return "offline" if self.fail_count >= n else None
        answered: State = "degraded" if obs.level == "degraded" else "online"
        if self.state in ("offline", "unknown"):
            return answered if self.up_count >= m else None
        if self.state == "online":
            return "degraded" if self.bad_count >= n else None
        # degraded
        return "online" if self.ok_count >= m else None

    def copy(self) -> DeviceHealth:
        """An independent copy: observe on it, keep it once the outcome is stored."""
        return replace(self)
