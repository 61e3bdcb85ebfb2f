"""Running a real hub against a real broker with the police simulator, in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from adapters.device_event import DeviceEvent
from hub.app import Hub
from hub.config import SiteConfig
from simulators.police import PolicePlatform
from tests.support.wait import wait_until


def event(kind: str = "alarm.panic", device: str = "btn-gate-1", **source: Any) -> DeviceEvent:
    return DeviceEvent(device, kind, datetime.now(UTC), source=source)


@asynccontextmanager
async def police_and_hub(
    cfg: SiteConfig, broker_url: str, **police_kwargs: Any
) -> AsyncIterator[tuple[PolicePlatform, Hub]]:
    async with PolicePlatform(broker_url, site=cfg.site.id, **police_kwargs) as police:
        await police.connected.wait()
        async with Hub(cfg) as hub:
            await wait_until(lambda: hub.police.state.connected, within=30, what="police link up")
            yield police, hub


def assert_no_violations(police: PolicePlatform) -> None:
    assert police.violations == [], police.violations[:5]
