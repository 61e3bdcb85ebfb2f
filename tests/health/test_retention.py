"""Probe rows: retention and downsampling keep the table bounded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from hub.app import Hub
from hub.broker import LocalMosquitto
from hub.health.service import HealthService
from hub.store.models import Probe
from hub.store.writer import WriteContext
from tests.health.mall import MANUAL, health
from tests.support.sites import make_site


@dataclass
class AddProbes:
    rows: list[tuple[timedelta, bool]]

    async def apply(self, ctx: WriteContext) -> None:
        for age, ok in self.rows:
            ctx.session.add(Probe(device_id="cam-x", at=ctx.now - age, ok=ok, detail={}))


async def test_old_probes_are_deleted_and_older_than_a_day_thinned(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=[],
        health=health(**MANUAL, probe_retention_days=30),
    )
    async with Hub(cfg) as hub:
        h = hub.health
        assert isinstance(h, HealthService)
        day3 = timedelta(days=3)
        rows = [(timedelta(days=40), True)] * 5  # past retention
        # Three days old: one probe a minute for two hours, every tenth one failed.
        rows += [(day3 + timedelta(minutes=i), i % 10 != 0) for i in range(120)]
        rows += [(timedelta(minutes=i), True) for i in range(30)]  # recent: kept in full
        await hub.submit(AddProbes(rows))
        await h.maintenance()
        async with hub.engine.connect() as c:
            kept = (
                await c.execute(select(Probe.at, Probe.ok).where(Probe.device_id == "cam-x"))
            ).all()
        now = max(at for at, _ in kept)
        old = [(at, ok) for at, ok in kept if now - at > timedelta(days=1)]
        recent = [at for at, _ in kept if now - at <= timedelta(days=1)]
        assert len(recent) == 30
        assert not any(now - at > timedelta(days=30) for at, _ in kept)
        # At most one passing and one failing probe per hour remain (2 or 3 hour buckets).
        buckets = {(int(at.timestamp() // 3600), ok) for at, ok in old}
        assert len(old) == len(buckets) and 4 <= len(old) <= 6
        assert {ok for _, ok in old} == {True, False}
        # Running it again changes nothing.
        await h.maintenance()
        async with hub.engine.connect() as c:
            again = (await c.execute(select(Probe.id).where(Probe.device_id == "cam-x"))).all()
        assert len(again) == len(kept)
