"""Store operations of the health system, all applied by the hub's single writer.

Probe results are kept for ``health.probe_retention_days``. Rows older than
``DOWNSAMPLE_AFTER`` are thinned to the first passing and the first failing probe per device
per ``DOWNSAMPLE_BUCKET``, so a site with thousands of cameras probed every minute keeps a
bounded table (state changes are kept in full in ``device_state_changes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.health.state import DeviceHealth, Transition
from hub.store.models import DeviceState, DeviceStateChange, Probe, VideoBaseline
from hub.store.writer import WriteContext

DOWNSAMPLE_AFTER: Final = timedelta(days=1)
DOWNSAMPLE_BUCKET: Final = timedelta(hours=1)
DELETE_CHUNK: Final = 500


@dataclass(slots=True)
class Availability:
    topic: str
    payload: dict[str, Any]


@dataclass(slots=True)
class RecordProbe:
    """One probe's outcome: the probe row, the device's state row, a change row if the state
    changed, and the retained availability message when it must be (re)published."""

    device_id: str
    at: datetime
    ok: bool
    latency_ms: float | None
    detail: dict[str, Any]
    health: DeviceHealth | None
    """The device's state after this probe; None for a probe that is only history."""
    transition: Transition | None = None
    availability: Availability | None = None
    store_probe: bool = True

    async def apply(self, ctx: WriteContext) -> None:
        if self.store_probe:
            ctx.session.add(
                Probe(
                    device_id=self.device_id,
                    at=self.at,
                    ok=self.ok,
                    latency_ms=self.latency_ms,
                    detail=self.detail,
                )
            )
        h = self.health
        if h is not None:
            row = await ctx.session.get(DeviceState, self.device_id)
            since = h.since or self.at
            if row is None:
                ctx.session.add(
                    DeviceState(
                        device_id=self.device_id,
                        state=h.state,
                        since=since,
                        reason=h.reason,
                        last_seen=h.last_seen,
                        fail_count=h.fail_count,
                        ok_count=h.ok_count,
                        detail=self.detail,
                    )
                )
            else:
                row.state = h.state
                row.since = since
                row.reason = h.reason
                row.last_seen = h.last_seen
                row.fail_count = h.fail_count
                row.ok_count = h.ok_count
                row.detail = self.detail
        if self.transition is not None:
            ctx.session.add(
                DeviceStateChange(
                    device_id=self.device_id,
                    at=self.transition.at,
                    state=self.transition.new,
                    reason=self.transition.reason,
                )
            )
        if self.availability is not None:
            await ctx.enqueue(
                kind="availability",
                topic=self.availability.topic,
                payload=self.availability.payload,
                priority=5,
                retain=True,
                coalesce_key=f"availability:{self.device_id}",
            )


@dataclass(slots=True)
class SaveBaseline:
    camera_id: str
    data: bytes

    async def apply(self, ctx: WriteContext) -> None:
        await ctx.session.merge(
            VideoBaseline(camera_id=self.camera_id, learned_at=ctx.now, data=self.data)
        )


@dataclass(slots=True)
class PruneProbes:
    """Delete probe rows older than the retention period."""

    older_than: timedelta

    async def apply(self, ctx: WriteContext) -> int:
        res = await ctx.session.execute(delete(Probe).where(Probe.at < ctx.now - self.older_than))
        return int(getattr(res, "rowcount", 0) or 0)


@dataclass(slots=True)
class DownsampleProbes:
    """Keep the first ok and the first failed probe per device per bucket in [start, end)."""

    start: datetime
    end: datetime
    bucket: timedelta = DOWNSAMPLE_BUCKET

    async def apply(self, ctx: WriteContext) -> int:
        rows = (
            await ctx.session.execute(
                select(Probe.id, Probe.device_id, Probe.at, Probe.ok)
                .where(Probe.at >= self.start, Probe.at < self.end)
                .order_by(Probe.device_id, Probe.at, Probe.id)
            )
        ).all()
        seen: set[tuple[str, int, bool]] = set()
        doomed: list[int] = []
        size = self.bucket.total_seconds()
        for pid, device_id, at, ok in rows:
            key = (device_id, int(at.timestamp() // size), bool(ok))
            if key in seen:
                doomed.append(pid)
            else:
                seen.add(key)
        for i in range(0, len(doomed), DELETE_CHUNK):
            await ctx.session.execute(
                delete(Probe).where(Probe.id.in_(doomed[i : i + DELETE_CHUNK]))
            )
        return len(doomed)


async def load_states(engine: AsyncEngine) -> dict[str, DeviceState]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(DeviceState))).all()
    out: dict[str, DeviceState] = {}
    for r in rows:
        out[r.device_id] = DeviceState(
            device_id=r.device_id,
            state=r.state,
            since=r.since,
            reason=r.reason,
            last_seen=r.last_seen,
            fail_count=r.fail_count,
            ok_count=r.ok_count,
            detail=r.detail,
        )
    return out


async def load_baselines(engine: AsyncEngine) -> dict[str, bytes]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(VideoBaseline.camera_id, VideoBaseline.data))).all()
    return {cid: bytes(data) for cid, data in rows}


async def oldest_probe(engine: AsyncEngine) -> datetime | None:
    async with engine.connect() as conn:
        value: datetime | None = (await conn.execute(select(func.min(Probe.at)))).scalar()
    return value
