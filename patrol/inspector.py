"""The inspection workflow's clock: every few seconds it records the inspections whose hub
did not answer in time, escalates overdue notices to the supervisors and starts the
scheduled inspections that are due; beside it, the pictures that came as URLs are fetched.
Every step is a conditional write, so any number of processes may run it side by side and
each thing happens once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from nats.aio.client import Client as NatsClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from patrol.clock import now_utc
from patrol.commands import CommandRefused
from patrol.config import PatrolConfig
from patrol.inspections import expire_unanswered, start_inspection
from patrol.models import InspectionRow, MallRow
from patrol.notices import escalate_overdue
from patrol.pictures import fetch_pictures
from patrol.schedule import due
from patrol.store import PatrolStore

log = logging.getLogger(__name__)

TICK_S = 2.0


async def start_scheduled(
    config: PatrolConfig, store: PatrolStore, nc: NatsClient, now: datetime
) -> list[str]:
    """Start the scheduled inspections due by ``now`` that have not been started."""
    cfg = config.inspections
    if cfg.schedule == "off":
        return []
    registry = {m.site_id for m in config.malls}
    async with store.engine.connect() as conn:
        sites = registry | set((await conn.execute(select(MallRow.site_id))).scalars())
        started = {
            (str(r[0]), str(r[1]))
            for r in await conn.execute(
                select(InspectionRow.site_id, InspectionRow.schedule_key).where(
                    InspectionRow.schedule_key.is_not(None)
                )
            )
        }
    out = []
    seed = cfg.schedule_seed.get_secret_value()
    for site in sorted(sites):
        got = due(site, now, cfg.schedule, seed, cfg.schedule_hours)
        if got is None or (site, got[0]) in started:
            continue
        try:
            out.append(
                await start_inspection(
                    store,
                    nc,
                    cfg,
                    site,
                    officer=cfg.scheduled_by,
                    known_sites=frozenset(registry),
                    schedule_key=got[0],
                )
            )
        except IntegrityError:
            pass  # another process started it
        except CommandRefused as exc:
            log.info("scheduled inspection of %s not started: %s", site, exc)
    return out


async def tick(config: PatrolConfig, store: PatrolStore, nc: NatsClient) -> None:
    now = now_utc()
    for inspection_id in await expire_unanswered(store, now):
        log.info("inspection %s: the hub did not answer in time", inspection_id)
    for notice_id in await escalate_overdue(store, now):
        log.info("notice %s is overdue: escalated to the supervisors", notice_id)
    for inspection_id in await start_scheduled(config, store, nc, now):
        log.info("scheduled inspection %s started", inspection_id)


async def _every(what: str, interval: float, step: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:  # a supervisor: the next round tries again
            log.exception("%s failed", what)
        await asyncio.sleep(interval)


async def run_inspector(config: PatrolConfig, store: PatrolStore, nc: NatsClient) -> None:
    """The clock, and the picture fetcher beside it (a slow hub does not hold the clock)."""
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_every("inspection clock", TICK_S, lambda: tick(config, store, nc)))
        consoles = {m.site_id: m.console_url for m in config.malls}
        tg.create_task(_every("picture fetch", TICK_S, lambda: fetch_pictures(store, consoles)))
