"""Alarm lifecycle: acknowledge (console, police), close, latching, restore, escalation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hub.app import Hub
from hub.broker import LocalMosquitto
from hub.config import SiteConfig, parse_config
from hub.linkage.lifecycle import Lifecycle, TransitionRefused
from hub.store.models import AuditLog, Event
from simulators.police import SiteView
from tests.e2e.hubtest import assert_no_violations, event, police_and_hub
from tests.support.sites import site_dict
from tests.support.wait import wait_until


def site(broker: LocalMosquitto, tmp_path: Path, **alarms: Any) -> SiteConfig:
    d = site_dict(broker_url=broker.url, data_dir=tmp_path)
    d["alarms"] = alarms
    return parse_config(d, env={})


def updates(view: SiteView, event_id: str, key: str) -> list[Any]:
    return [u[key] for u in view.updates if u["event_id"] == event_id and key in u]


async def audit_actions(hub: Hub, event_id: str) -> list[tuple[str, str]]:
    async with hub.engine.connect() as c:
        rows = await c.execute(
            select(AuditLog.actor, AuditLog.action)
            .where(AuditLog.subject == event_id)
            .order_by(AuditLog.id)
        )
        return [(r.actor, r.action) for r in rows]


async def row(hub: Hub, event_id: str) -> Any:
    async with hub.engine.connect() as c:
        return (await c.execute(select(Event).where(Event.event_id == event_id))).one()


async def test_acknowledge_via_console_and_police_both_audited(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = site(broker, tmp_path)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        view = police.view(cfg.site.id)
        local = await hub.ingest.ingest(event("alarm.panic"))
        remote = await hub.ingest.ingest(event("alarm.panic"))

        got = await hub.acknowledge(local.event_id, by="值班员甲", via="console", note="已派人")
        assert got == {"event_id": local.event_id, "state": "acknowledged", "changed": True}
        again = await hub.acknowledge(local.event_id, by="值班员乙", via="console")
        assert again["changed"] is False and again["state"] == "acknowledged"

        answer = await police.command(
            cfg.site.id, "ack", {"event_id": remote.event_id, "by": "警员A", "note": "已出警"}
        )
        assert answer["ok"] is True and answer["result"]["state"] == "acknowledged"

        await police.wait_for(
            lambda: (
                updates(view, local.event_id, "state") and updates(view, remote.event_id, "state")
            )
        )
        (s1,) = updates(view, local.event_id, "state")
        assert (s1["state"], s1["by"], s1["via"], s1["note"]) == (
            "acknowledged",
            "值班员甲",
            "console",
            "已派人",
        )
        (s2,) = updates(view, remote.event_id, "state")
        assert (s2["by"], s2["via"]) == ("警员A", "police")
        assert ("console:值班员甲", "event.acknowledged") in await audit_actions(
            hub, local.event_id
        )
        assert ("police:警员A", "event.acknowledged") in await audit_actions(hub, remote.event_id)
        r = await row(hub, local.event_id)
        assert (r.state, r.state_by, r.state_via) == ("acknowledged", "值班员甲", "console")
    assert_no_violations(police)


async def test_close_needs_a_person_for_latching_alarms(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = site(broker, tmp_path)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        view = police.view(cfg.site.id)
        lifecycle: Lifecycle = hub.lifecycle
        panic = await hub.ingest.ingest(event("alarm.panic"))
        with pytest.raises(TransitionRefused) as refused:
            await lifecycle.close(panic.event_id, by="hub", via="hub", disposition="restored")
        assert refused.value.code == "latched"
        with pytest.raises(ValueError, match="disposition"):
            await lifecycle.close(panic.event_id, by="值班员甲", via="console", disposition=" ")
        done = await lifecycle.close(
            panic.event_id, by="值班员甲", via="console", disposition="false_alarm", note="误按"
        )
        assert done["changed"] is True
        assert (await lifecycle.close(panic.event_id, by="x", via="console", disposition="y"))[
            "changed"
        ] is False
        # Once closed, it cannot be acknowledged back.
        assert (await hub.acknowledge(panic.event_id, by="x", via="console"))["state"] == "closed"
        await police.wait_for(lambda: updates(view, panic.event_id, "state"))
        (s,) = updates(view, panic.event_id, "state")
        assert (s["state"], s["disposition"], s["note"], s["via"]) == (
            "closed",
            "false_alarm",
            "误按",
            "console",
        )
        r = await row(hub, panic.event_id)
        assert (r.state, r.disposition, r.note) == ("closed", "false_alarm", "误按")
        assert ("console:值班员甲", "event.closed") in await audit_actions(hub, panic.event_id)
    assert_no_violations(police)


async def test_restore_closes_acknowledged_non_latching_alarm_only(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = site(broker, tmp_path)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        panic = await hub.ingest.ingest(event("alarm.panic"))
        intrusion = await hub.ingest.ingest(event("alarm.intrusion"))
        unacked = await hub.ingest.ingest(event("alarm.intrusion", device="btn-duty-1"))
        for e in (panic, intrusion):
            await hub.acknowledge(e.event_id, by="值班员甲", via="console")
        await hub.ingest.ingest(event("alarm.panic.restore"))
        await hub.ingest.ingest(event("alarm.intrusion.restore", device="btn-duty-1"))
        await hub.ingest.ingest(event("alarm.intrusion.restore"))

        async def closed() -> bool:
            return bool((await row(hub, intrusion.event_id)).state == "closed")

        await wait_until(closed, what="intrusion closed on restore")
        r = await row(hub, intrusion.event_id)
        assert (r.state_via, r.disposition) == ("hub", "restored")
        # The restores are handled in order: the panic's came first and left it latched;
        # an alarm nobody acknowledged is not closed behind the duty room's back.
        assert (await row(hub, panic.event_id)).state == "acknowledged"
        assert (await row(hub, unacked.event_id)).state == "new"
    assert_no_violations(police)


async def test_unacknowledged_alarm_escalates_and_acknowledged_one_does_not(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = site(broker, tmp_path, escalate_after_s=0.5, max_escalations=2)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        view = police.view(cfg.site.id)
        acked = await hub.ingest.ingest(event("alarm.intrusion"))
        await hub.acknowledge(acked.event_id, by="值班员甲", via="console")
        ignored = await hub.ingest.ingest(event("alarm.intrusion"))
        assert ignored.priority == 2

        await police.wait_for(lambda: len(updates(view, ignored.event_id, "escalation")) == 2)
        first, second = updates(view, ignored.event_id, "escalation")
        assert (first["level"], first["priority"]) == (1, 1)  # 2 → 1
        assert (second["level"], second["priority"]) == (2, 1)  # 1 is the limit
        assert "not acknowledged" in first["reason"]
        renotify = updates(view, ignored.event_id, "linkage")
        assert [items[0]["type"] for items in renotify] == ["renotify", "renotify"]
        assert (await row(hub, ignored.event_id)).priority == 1
        actions = [a for _, a in await audit_actions(hub, ignored.event_id)]
        assert actions.count("event.escalated") == 2
        # The acknowledged alarm was due first and was passed over.
        assert updates(view, acked.event_id, "escalation") == []
        lifecycle: Lifecycle = hub.lifecycle
        assert acked.event_id not in lifecycle.escalated
        # Acknowledging after the escalation still works (and is what stops it).
        await hub.acknowledge(ignored.event_id, by="值班员甲", via="console")
        assert not await lifecycle.escalate(ignored.event_id, 3)
    assert_no_violations(police)


async def test_escalation_resumes_after_restart(broker: LocalMosquitto, tmp_path: Path) -> None:
    # First run: the timer is far away; escalate once by hand, then stop the hub.
    slow = site(broker, tmp_path, escalate_after_s=3600, max_escalations=2)
    async with police_and_hub(slow, broker.url) as (police, hub):
        alarm = await hub.ingest.ingest(event("alarm.intrusion"))
        assert await hub.lifecycle.escalate(alarm.event_id, 1)
    # After the restart (with a short interval) the alarm continues at level 2, and stops.
    fast = site(broker, tmp_path, escalate_after_s=0.2, max_escalations=2)
    async with police_and_hub(fast, broker.url) as (police, hub):
        view = police.view(fast.site.id)
        # (Level 1 may still be in the outbox from the first run: it goes out first.)
        await police.wait_for(
            lambda: any(e["level"] == 2 for e in updates(view, alarm.event_id, "escalation"))
        )
        e = updates(view, alarm.event_id, "escalation")[-1]
        assert (e["level"], e["priority"]) == (2, 1)
        lifecycle: Lifecycle = hub.lifecycle
        assert lifecycle.escalated == {alarm.event_id: 2}
        actions = [a for _, a in await audit_actions(hub, alarm.event_id)]
        assert actions.count("event.escalated") == 2
    assert_no_violations(police)


async def test_renotify_action_only_for_alarms_still_unacknowledged(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    d = site_dict(broker_url=broker.url, data_dir=tmp_path)
    d["linkage"] = [
        {
            "name": "renotify-gate",
            "match": {"zones": ["main-gate"]},
            "actions": [{"type": "renotify", "after_s": 0.3}],
        }
    ]
    cfg = parse_config(d, env={})
    async with police_and_hub(cfg, broker.url) as (police, hub):
        view = police.view(cfg.site.id)
        acked = await hub.ingest.ingest(event("alarm.panic"))
        await hub.acknowledge(acked.event_id, by="值班员甲", via="console")
        ignored = await hub.ingest.ingest(event("alarm.panic"))
        await police.wait_for(lambda: updates(view, ignored.event_id, "linkage"))
        ((item,),) = updates(view, ignored.event_id, "linkage")
        assert (item["type"], item["target"], item["outcome"]) == ("renotify", "police", "ok")
        assert item["rule"] == "renotify-gate" and item["elapsed_ms"] >= 300
        # The acknowledged alarm's re-notification was due first, and was not needed.
        assert updates(view, acked.event_id, "linkage") == []
    assert_no_violations(police)
