"""Build a broadcast driver by the name used in the site configuration."""

from __future__ import annotations

from typing import Final

from adapters.broadcast.base import BroadcastDriver, ControllerConfig
from adapters.broadcast.http import HttpBroadcastDriver
from adapters.broadcast.sip import SipPagingDriver

DRIVERS: Final[dict[str, type[BroadcastDriver]]] = {
    "http": HttpBroadcastDriver,
    "sip": SipPagingDriver,
}


def make_driver(driver: str, cfg: ControllerConfig) -> BroadcastDriver:
    """A driver of kind ``http`` or ``sip`` for ``cfg`` (not yet opened: use ``async with``)."""
    try:
        cls = DRIVERS[driver]
    except KeyError:
        raise ValueError(
            f"{cfg.device_id}: unknown broadcast driver {driver!r} (known: {', '.join(DRIVERS)})"
        ) from None
    return cls(cfg)
