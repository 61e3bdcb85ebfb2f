"""Test mode: presses forwarded as info.test, audited, ending by itself; the CLI."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from hub.app import Hub
from hub.broker import LocalMosquitto
from hub.cli import main as mallhub
from hub.config import load_config
from hub.linkage.service import LinkageService
from hub.linkage.testmode import TestModeError, TestModeManager
from hub.store.audit import verify_chain
from hub.store.models import AuditLog, Event, TestMode
from simulators.panel import PanelSimulator
from simulators.police import SiteView
from tests.e2e.hubtest import assert_no_violations, event, police_and_hub
from tests.support.sites import make_site, write_site
from tests.support.wait import wait_until


async def audit(hub: Hub, entry_id: int) -> list[tuple[str, str]]:
    async with hub.engine.connect() as c:
        rows = await c.execute(
            select(AuditLog.actor, AuditLog.action)
            .where(AuditLog.subject == f"testmode:{entry_id}")
            .order_by(AuditLog.id)
        )
        return [(r.actor, r.action) for r in rows]


def kinds(view: SiteView) -> list[str]:
    return [view.events[e]["kind"] for e in view.event_order]


async def test_press_in_test_mode_is_info_test_and_test_mode_ends_by_itself(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        view = police.view(cfg.site.id)
        testmode: TestModeManager = hub.testmode
        entry = await testmode.start("device:btn-gate-1", 0.03, by="技术员张")  # 1.8 s
        assert [e.id for e in testmode.active()] == [entry.id]
        assert testmode.is_active("btn-gate-1") and not testmode.is_active("btn-duty-1")

        async with PanelSimulator("127.0.0.1", hub.sia.tcp_port, "1234") as panel:
            panel.press(15)
            await panel.wait_acked(1, within=10)
            await police.wait_for(lambda: len(view.events) == 1)
            test = view.events[view.event_order[0]]
            assert (test["kind"], test["category"], test["test"]) == ("info.test", "info", True)
            assert test["detail"]["original_kind"] == "alarm.panic"
            assert test["device"]["id"] == "btn-gate-1"
            # No linkage for a test press: no evacuation during a monthly check.
            linkage: LinkageService = hub.linkage
            async with hub.engine.connect() as c:
                stored = (
                    await c.execute(select(Event.kind, Event.test_mode, Event.event_id))
                ).one()
            assert (stored.kind, stored.test_mode) == ("info.test", True)
            assert stored.event_id not in linkage.outcomes

            # It ends by itself, audited.
            async def expired() -> bool:
                return ("hub", "testmode.expired") in await audit(hub, entry.id)

            await wait_until(expired, within=15, what="test mode expiry")
            assert testmode.active() == [] and not testmode.is_active("btn-gate-1")
            assert await audit(hub, entry.id) == [
                ("console:技术员张", "testmode.started"),
                ("hub", "testmode.expired"),
            ]
            async with hub.engine.connect() as c:
                row = (await c.execute(select(TestMode).where(TestMode.id == entry.id))).one()
            assert row.ended_at is not None and row.ended_at <= row.until

            # Afterwards a press is a real alarm again.
            panel.press(15)
            await panel.wait_acked(2, within=10)
            await police.wait_for(lambda: len(view.events) == 2)
            assert kinds(view) == ["info.test", "alarm.panic"]
    assert_no_violations(police)


async def test_zone_and_panel_targets_stop_and_validation(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        view = police.view(cfg.site.id)
        testmode: TestModeManager = hub.testmode
        zone = await testmode.start("zone:duty", 10, by="技术员张")
        assert testmode.is_active("btn-duty-1") and not testmode.is_active("btn-gate-1")
        panel = await testmode.start("panel-1", 10, by="技术员张")  # a bare id: the device
        assert panel.target == "device:panel-1"
        assert testmode.is_active("btn-gate-1")  # a panel's test covers its buttons

        await hub.ingest.ingest(event("alarm.panic", device="btn-gate-1"))
        await hub.ingest.ingest(event("fault.ac_loss", device="btn-gate-1"))  # not an alarm
        await police.wait_for(lambda: len(view.events) == 2)
        assert kinds(view) == ["info.test", "fault.ac_loss"]

        ended = await testmode.stop("device:panel-1", by="技术员李")
        assert [e.id for e in ended] == [panel.id]
        assert not testmode.is_active("btn-gate-1") and testmode.is_active("btn-duty-1")
        assert await audit(hub, panel.id) == [
            ("console:技术员张", "testmode.started"),
            ("console:技术员李", "testmode.stopped"),
        ]
        assert await testmode.stop(zone.id, by="技术员李", via="api")
        assert testmode.active() == []

        for bad, minutes in [("device:nope", 5), ("zone:nowhere", 5), ("thing:x", 5)]:
            with pytest.raises(TestModeError):
                await testmode.start(bad, minutes, by="技术员张")
        with pytest.raises(TestModeError, match="at most"):
            await testmode.start("btn-gate-1", cfg.alarms.test_mode_max_minutes + 1, by="x")
        with pytest.raises(TestModeError, match="who"):
            await testmode.start("btn-gate-1", 5, by=" ")
    assert_no_violations(police)


async def test_cli_start_list_stop_are_applied_and_audited_by_the_running_hub(
    broker: LocalMosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_site(tmp_path / "site.yaml", broker_url=broker.url, data_dir=tmp_path / "data")
    cfg = load_config(path)
    cfg = cfg.model_copy(update={"alarms": cfg.alarms.model_copy(update={"test_mode_poll_s": 0.1})})

    async def cli(*args: str) -> int:
        return await asyncio.to_thread(mallhub, ["testmode", *args, "--config", str(path)])

    async with police_and_hub(cfg, broker.url) as (police, hub):
        testmode: TestModeManager = hub.testmode
        assert (
            await cli("start", "--device", "btn-gate-1", "--minutes", "30", "--by", "技术员王") == 0
        )
        await wait_until(lambda: testmode.is_active("btn-gate-1"), what="hub noticed the CLI")
        (entry,) = testmode.active()
        started: Any = None

        async def audited(action: str) -> bool:
            nonlocal started
            started = await audit(hub, entry.id)
            return ("cli:技术员王", action) in started

        await wait_until(lambda: audited("testmode.started"), what="CLI start audited")
        capsys.readouterr()
        assert await cli("list") == 0
        assert "device:btn-gate-1" in capsys.readouterr().out

        assert await cli("start", "--device", "nope", "--minutes", "5", "--by", "x") == 2
        # Nothing matches a zone entry.
        assert await cli("stop", "--zone", "main-gate", "--by", "技术员王") == 1
        assert await cli("stop", "--device", "btn-gate-1", "--by", "技术员王") == 0
        await wait_until(lambda: not testmode.is_active("btn-gate-1"), what="hub noticed stop")
        await wait_until(lambda: audited("testmode.stopped"), what="CLI stop audited")
        # Each change audited exactly once, however many polls saw it.
        polls = testmode.synced
        await wait_until(lambda: testmode.synced >= polls + 3, what="more polls")
        assert await audit(hub, entry.id) == [
            ("cli:技术员王", "testmode.started"),
            ("cli:技术员王", "testmode.stopped"),
        ]
        # Two writers (hub and CLI) on one store: the hash chain is still intact.
        verdict = await verify_chain(hub.engine)
        assert verdict.ok, verdict
    assert_no_violations(police)


async def test_entries_written_without_audit_are_audited_once_when_noticed(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    cfg = cfg.model_copy(update={"alarms": cfg.alarms.model_copy(update={"test_mode_poll_s": 0.1})})
    async with police_and_hub(cfg, broker.url) as (police, hub):
        testmode: TestModeManager = hub.testmode
        now = datetime.now(UTC)
        async with hub.engine.begin() as c:
            result = await c.execute(
                insert(TestMode).values(
                    target="zone:main-gate",
                    started_at=now,
                    until=now + timedelta(minutes=5),
                    by="某人",
                    ended_at=None,
                )
            )
            (entry_id,) = result.inserted_primary_key or (None,)
        assert isinstance(entry_id, int)
        await wait_until(lambda: testmode.is_active("btn-gate-1"), what="entry noticed")

        async def has(action: str) -> bool:
            return ("cli", action) in await audit(hub, entry_id)

        await wait_until(lambda: has("testmode.started"), what="start audited")
        async with hub.engine.begin() as c:
            await c.execute(
                update(TestMode).where(TestMode.id == entry_id).values(ended_at=datetime.now(UTC))
            )
        await wait_until(lambda: not testmode.is_active("btn-gate-1"), what="end noticed")
        await wait_until(lambda: has("testmode.stopped"), what="end audited")
        polls = testmode.synced
        await wait_until(lambda: testmode.synced >= polls + 3, what="more polls")
        assert [a for _, a in await audit(hub, entry_id)] == [
            "testmode.started",
            "testmode.stopped",
        ]
        assert (await verify_chain(hub.engine)).ok
    assert_no_violations(police)
