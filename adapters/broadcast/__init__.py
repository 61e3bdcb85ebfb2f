"""Public-address (broadcast) drivers: HTTP/JSON controllers and SIP paging."""

from __future__ import annotations

from adapters.broadcast.base import (
    BroadcastDriver,
    BroadcastStatus,
    ControllerConfig,
    PlayResult,
    ZoneConfig,
)
from adapters.broadcast.factory import make_driver

__all__ = [
    "BroadcastDriver",
    "BroadcastStatus",
    "ControllerConfig",
    "PlayResult",
    "ZoneConfig",
    "make_driver",
]
