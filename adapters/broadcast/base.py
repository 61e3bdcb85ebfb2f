"""The one interface every public-address driver offers, and the values it hands the hub.

A driver is an async context manager. ``play`` and ``test_zone`` never raise for a device
problem: each zone gets a ``PlayResult`` that says ``played`` or ``failed`` and why, so that a
linkage rule can record the outcome per zone. ``status`` never raises either: an unreachable
controller is a status. ``stop`` raises ``AdapterError`` subclasses.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal, Self

log = logging.getLogger(__name__)

Outcome = Literal["played", "failed"]
ZoneState = Literal["idle", "busy", "unknown"]

DEFAULT_TIMEOUT_S: Final = 5.0

REASON_UNKNOWN_ZONE: Final = "unknown zone"
REASON_TIMEOUT: Final = "timeout"
REASON_BUSY: Final = "zone busy"
REASON_NO_AUDIO: Final = "no audio for free text"


@dataclass(frozen=True, slots=True)
class ZoneConfig:
    """One broadcast zone. ``target`` is the controller's zone number or the SIP extension."""

    id: str
    name: str
    target: str = ""

    @property
    def address(self) -> str:
        """What the controller calls this zone: ``target``, or the zone id when it is empty."""
        return self.target or self.id


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """One PA controller or paging gateway as the hub's configuration describes it."""

    device_id: str
    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    zones: Sequence[ZoneConfig] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlayResult:
    """Outcome of one message in one zone."""

    zone: str
    outcome: Outcome
    reason: str
    started_at: datetime
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "played"


@dataclass(frozen=True, slots=True)
class BroadcastStatus:
    """Result of one status probe. ``error`` (and ``error_type``) are set when unreachable."""

    device_id: str
    reachable: bool
    latency_s: float | None = None
    zones: Mapping[str, ZoneState] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    """Name of the ``AdapterError`` subclass: ``DeviceUnreachable``, ``AuthFailed``, ..."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def option_float(options: Mapping[str, Any], name: str, default: float) -> float:
    """A positive number from ``options``; a wrong value is a configuration error."""
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"option {name!r} must be a positive number, got {value!r}")
    return float(value)


class BroadcastDriver(ABC):
    """A public-address controller with named zones."""

    def __init__(self, cfg: ControllerConfig) -> None:
        ids = [z.id for z in cfg.zones]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{cfg.device_id}: duplicate zone ids")
        self.cfg = cfg
        self.device_id = cfg.device_id
        self._zones = MappingProxyType({z.id: z for z in cfg.zones})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.device_id!r}, {len(self._zones)} zones)"

    @property
    def zones(self) -> Mapping[str, ZoneConfig]:
        """The configured zones by id."""
        return self._zones

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:  # noqa: B027 - optional hook, most drivers need nothing
        """Acquire what the driver needs (sessions, sockets)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release everything ``open`` acquired and end calls in progress; idempotent."""

    @abstractmethod
    async def play(self, zones: Sequence[str], message: str) -> list[PlayResult]:
        """Play ``message`` (a stored message name or free text) in ``zones``.

        Returns one result per requested zone, in order; unknown zones fail with
        ``unknown zone``.
        """

    @abstractmethod
    async def stop(self, zones: Sequence[str]) -> None:
        """Stop whatever plays in ``zones``; raises ``AdapterError`` when that fails."""

    @abstractmethod
    async def status(self) -> BroadcastStatus:
        """Reachability, latency and per-zone state; never raises for device problems."""

    async def test_zone(self, zone: str) -> PlayResult:
        """Play the stored ``test`` message in one zone."""
        return (await self.play([zone], "test"))[0]

    # --- helpers for subclasses ----------------------------------------------------------

    def _split_known(self, zones: Sequence[str]) -> tuple[list[ZoneConfig], dict[str, PlayResult]]:
        """Known zones (deduplicated, in order) and failed results for unknown ones."""
        known: list[ZoneConfig] = []
        failed: dict[str, PlayResult] = {}
        for zone_id in zones:
            zone = self._zones.get(zone_id)
            if zone is None:
                log.warning("%s: play requested for unknown zone %r", self.device_id, zone_id)
                failed[zone_id] = PlayResult(zone_id, "failed", REASON_UNKNOWN_ZONE, now_utc())
            elif zone not in known:
                known.append(zone)
        return known, failed

    def _known_zones(self, zones: Sequence[str]) -> list[ZoneConfig]:
        unknown = [z for z in zones if z not in self._zones]
        if unknown:
            raise ValueError(f"{self.device_id}: unknown zones {unknown}")
        return [self._zones[z] for z in dict.fromkeys(zones)]
