"""A small mall for the inspection and notice tests: two simulated cameras (gate, parking), one
camera nobody can reach (finance room), a panel with buttons, a real hub on a real broker."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from hub.app import Hub
from hub.config import SiteConfig
from hub.store.models import AuditLog, Notice, NoticeStep, Snapshot
from simulators.camera import CameraFarm
from simulators.police import PolicePlatform
from tests.health.mall import MANUAL, camera_entry
from tests.support.sites import make_site

SITE = "test-mall"
OFFICER = {"name": "李警官", "id": "110101", "unit": "金水分局"}


def mall_config(
    farm: CameraFarm, password: str, broker_url: str, data_dir: Path, database_url: str | None
) -> SiteConfig:
    unreachable = {
        "id": "cam-fin-1",
        "name": "财务室摄像机",
        "host": "127.0.0.1",
        "port": 1,
        "location": {"floor": "2F", "zone": "finance", "role": "finance_room"},
    }
    return make_site(
        broker_url=broker_url,
        data_dir=data_dir,
        database_url=database_url,
        cameras=[
            camera_entry("cam-gate-1", farm[0], password),
            camera_entry(
                "cam-park-1", farm[1], password, floor="B1", zone="parking", role="parking"
            ),
            unreachable,
        ],
        health={**MANUAL, "probe_timeout_s": 3},
    )


def issue(notice_id: str = "ZG-2026-001", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": "issue",
        "notice_id": notice_id,
        "site_id": SITE,
        "finding": "正门摄像机画面被遮挡",
        "deadline": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
        "officer": OFFICER,
        "item": {"item_id": "camera:cam-gate-1"},
    }
    body.update(over)
    return body


async def notice_rows(hub: Hub, notice_id: str) -> tuple[Any, list[Any]]:
    async with hub.engine.connect() as c:
        row = (await c.execute(select(Notice).where(Notice.notice_id == notice_id))).first()
        steps = (
            await c.execute(
                select(NoticeStep).where(NoticeStep.notice_id == notice_id).order_by(NoticeStep.id)
            )
        ).all()
    return row, list(steps)


async def audit_actions(hub: Hub, prefix: str = "notice.") -> list[str]:
    async with hub.engine.connect() as c:
        rows = await c.execute(
            select(AuditLog.action).where(AuditLog.action.like(f"{prefix}%")).order_by(AuditLog.id)
        )
        return [r[0] for r in rows]


async def audit_count(hub: Hub) -> int:
    async with hub.engine.connect() as c:
        return int((await c.execute(select(func.count()).select_from(AuditLog))).scalar() or 0)


async def snapshot_file_sha(hub: Hub, sha256: str) -> str:
    """The sha256 of the file the hub kept for the snapshot with this digest."""
    async with hub.engine.connect() as c:
        row = (await c.execute(select(Snapshot).where(Snapshot.sha256 == sha256))).one()
    data = await asyncio.to_thread(Path(row.path).read_bytes)
    return hashlib.sha256(data).hexdigest()


@asynccontextmanager
async def police_hub(cfg: SiteConfig, broker_url: str) -> AsyncIterator[tuple[PolicePlatform, Hub]]:
    from tests.e2e.hubtest import police_and_hub

    async with police_and_hub(cfg, broker_url) as pair:
        yield pair


async def health_settled(hub: Hub, cameras: tuple[str, ...] = ("cam-gate-1", "cam-park-1")) -> None:
    """Wait for the first (and, with hour-long intervals, only) video check of each camera,
    so compliance changes only through what the test does."""
    from hub.store.models import DeviceState
    from tests.support.wait import wait_until

    async def done() -> bool:
        async with hub.engine.connect() as c:
            rows = (
                await c.execute(
                    select(DeviceState.device_id, DeviceState.detail).where(
                        DeviceState.device_id.in_(cameras)
                    )
                )
            ).all()
        return len(rows) == len(cameras) and all("findings" in (d or {}) for _, d in rows)

    await wait_until(done, within=90, interval=0.2, what="first video checks")


async def cameras_warm(hub: Hub, cameras: tuple[str, ...] = ("cam-gate-1", "cam-park-1")) -> None:
    """Each simulated camera has given one picture through the hub's pool: the simulator
    renders its scene once, on a loaded machine slowly, and the test is about what follows."""
    from adapters.errors import AdapterError
    from tests.support.wait import wait_until

    pool = hub.linkage.cameras

    async def ok(cam: str) -> bool:
        try:
            return bool(await pool.snapshot(cam))
        except AdapterError:
            return False

    for cam in cameras:

        def picture(c: str = cam) -> Awaitable[bool]:
            return ok(c)

        await wait_until(picture, within=90, interval=0.5, what=f"{cam} picture")
