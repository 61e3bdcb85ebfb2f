"""Shared pieces of the GB/T 28181 tests: an upper platform on a free port, a channel set."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from adapters.gb28181.model import Channel, PlatformConfig
from simulators.gb28181_platform import UpperPlatform

PASSWORD = "gb-test-secret"
HUB_ID = "34020000002000000099"
SERVER_ID = "34020000002000000001"


def channels(cameras: int = 2, buttons: int = 2) -> list[Channel]:
    out = [
        Channel(
            f"3402000000132{n:07d}",
            f"cam-{n}",
            "camera",
            f"摄像机 {n}",
            f"{n}F 中庭",
            online=n % 2 == 1,
        )
        for n in range(1, cameras + 1)
    ]
    out += [
        Channel(f"3402000000134{n:07d}", f"btn-{n}", "alarm_input", f"紧急按钮 {n}", f"{n}F 服务台")
        for n in range(1, buttons + 1)
    ]
    return out


def platform_config(upper: UpperPlatform, **changes: Any) -> PlatformConfig:
    changes.setdefault("server_id", upper.platform_id)
    return config_at(upper.port, **changes)


def config_at(port: int, server_id: str = SERVER_ID, **changes: Any) -> PlatformConfig:
    """Settings for a platform registering to ``127.0.0.1:port`` with short timers."""
    cfg = PlatformConfig(
        device_id=HUB_ID,
        server_id=server_id,
        server_domain=server_id[:10],
        server_host="127.0.0.1",
        server_port=port,
        password=PASSWORD,
        local_host="127.0.0.1",
        t1_s=0.05,
        retry_min_s=0.1,
        retry_max_s=0.5,
        keepalive_interval_s=5.0,
    )
    return replace(cfg, **changes)


@pytest.fixture
async def upper() -> AsyncIterator[UpperPlatform]:
    async with UpperPlatform(platform_id=SERVER_ID, password=PASSWORD) as platform:
        yield platform


def by_id(items: Sequence[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {item["DeviceID"]: item for item in items}
