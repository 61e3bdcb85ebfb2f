"""The value every driver hands to the hub: one normalised device event.

Drivers never import the hub. The hub gives each driver an ``IngestFn`` callback; the driver
awaits it *before* acknowledging the device, so an event is durable before the device is told
it was received. If the callback raises, the driver must not acknowledge (the device resends).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SourceValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A normalised event reported by (or about) a device.

    ``kind`` is one of the hub's event kinds (``alarm.panic``, ``fault.supervision``,
    ``info.test`` ...). A driver that cannot classify what it received uses ``alarm.unknown``
    and keeps the raw code in ``source``: nothing is ever dropped.
    """

    device_id: str
    """Configured id of the device the event belongs to (button, panel, camera, controller)."""
    kind: str
    occurred_at: datetime
    """Timezone-aware; the device's own time where it sent one, else the time of receipt."""
    source: Mapping[str, SourceValue] = field(default_factory=dict)
    """Protocol facts: protocol, format, account, code, qualifier, zone, area, topic, token..."""
    state: str | None = None
    """``start`` / ``stop`` for stateful sources (camera motion, digital input), else None."""
    dedupe_key: str | None = None
    """Two events with the same key within the hub's dedupe window are one event (resends)."""
    detail: Mapping[str, Any] = field(default_factory=dict)
    """Extra structured facts: findings, scores, thresholds. JSON-serialisable values only."""


IngestFn = Callable[[DeviceEvent], Awaitable[str]]
"""Store the event durably and return its ``event_id``; raises if it could not be stored."""
