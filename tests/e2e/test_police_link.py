"""The police link end to end: a real hub, a real Mosquitto and the police simulator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy import func, select

from hub.app import Hub
from hub.broker import LocalMosquitto
from hub.store.models import AuditLog, Outbox
from hub.store.writer import EnqueueMessage
from simulators.police import PolicePlatform
from tests.e2e.hubtest import assert_no_violations, event, police_and_hub
from tests.support.sites import make_site
from tests.support.wait import wait_until


async def test_events_arrive_in_order_validated_with_status(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        kinds = ["alarm.panic", "fault.ac_loss", "info.test", "alarm.made_up"] * 5
        for k in kinds:
            await hub.ingest.ingest(event(k))
        view = police.view(cfg.site.id)
        await police.wait_for(lambda: len(view.events) == 20)
        assert sorted(view.seqs) == list(range(1, 21))
        assert view.status is not None and view.status["state"] == "online"
        got = [view.events[e]["kind"] for e in view.event_order]
        assert got.count("alarm.unknown") == 5  # unknown kinds are forwarded, not dropped
        first = view.events[view.event_order[0]]
        assert first["device"]["id"] == "btn-gate-1" and first["priority"] == 1
        assert hub.police.state.protocol == "5"
        # Receipts (optional) come back and are recorded.
        await wait_until(lambda: hub.police.state.receipts >= 20, what="receipts")
    assert_no_violations(police)
    # Orderly stop says "offline" on the retained status topic.
    async with PolicePlatform(broker.url, site=cfg.site.id) as late:
        await late.wait_for(lambda: late.view(cfg.site.id).status is not None)
        assert late.view(cfg.site.id).status["state"] == "offline"  # type: ignore[index]


async def test_broker_outage_loses_nothing_and_alarms_overtake(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        view = police.view(cfg.site.id)
        for _ in range(10):
            await hub.ingest.ingest(event("info.periodic_test"))
        await police.wait_for(lambda: len(view.events) == 10)
        broker.stop()
        await wait_until(lambda: not hub.police.state.connected, what="link down")
        queued_low = [await hub.ingest.ingest(event("info.periodic_test")) for _ in range(200)]
        queued_faults = [await hub.ingest.ingest(event("fault.ac_loss")) for _ in range(20)]
        queued_alarms = [await hub.ingest.ingest(event("alarm.panic")) for _ in range(5)]
        await asyncio.sleep(30)  # the outage the acceptance asks for
        broker.start()
        await police.wait_for(lambda: len(view.events) == 235, within=60)
        assert sorted(view.seqs) == list(range(1, 236))
        order = [view.events[e]["seq"] for e in view.event_order[10:]]
        alarm_seqs = {s.seq for s in queued_alarms}
        fault_seqs = {s.seq for s in queued_faults}
        low_seqs = {s.seq for s in queued_low}
        # Alarms first, then faults (priority 4 AC loss ties with tests: by seq), in seq order.
        assert set(order[:5]) == alarm_seqs and order[:5] == sorted(alarm_seqs)
        assert order[5:] == sorted(fault_seqs | low_seqs)
    assert_no_violations(police)


async def test_required_receipt_republishes_until_receipted(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(
        broker_url=broker.url, data_dir=tmp_path, receipts="required", receipt_timeout_s=0.5
    )
    async with police_and_hub(cfg, broker.url, receipts=False) as (police, hub):
        view = police.view(cfg.site.id)
        alarm = await hub.ingest.ingest(event("alarm.panic"))
        info = await hub.ingest.ingest(event("info.periodic_test"))
        await police.wait_for(lambda: view.deliveries[alarm.event_id] >= 3, within=10)
        # Not an alarm: no receipt required, so published once.
        assert view.deliveries[info.event_id] == 1
        # The platform confirms; republishing stops.
        await police.send_receipt(cfg.site.id, alarm.event_id)
        await wait_until(
            lambda: _receipted(hub, alarm.event_id), what="receipt recorded in the outbox"
        )
        seen = view.deliveries[alarm.event_id]
        await asyncio.sleep(2.0)  # four receipt timeouts: long enough to see a republish
        assert view.deliveries[alarm.event_id] <= seen + 1  # at most one already in flight
        assert len({json.dumps(view.events[alarm.event_id], sort_keys=True)}) == 1
    assert_no_violations(police)


async def _receipted(hub: Hub, event_id: str) -> bool:
    async with hub.engine.connect() as c:
        row = (
            await c.execute(
                select(Outbox.receipted_at).where(
                    Outbox.event_id == event_id, Outbox.kind == "event"
                )
            )
        ).scalar_one()
    return row is not None


async def test_commands_answer_errors_and_ack_is_audited(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    site = cfg.site.id
    async with police_and_hub(cfg, broker.url) as (police, hub):
        view = police.view(site)
        malformed = await police.command(site, "ack", b"{not json")
        assert malformed["ok"] is False and malformed["error"]["code"] == "malformed"
        no_id = await police.command(site, "ack", b'{"event_id": "x"}')
        assert no_id["error"]["code"] == "malformed"
        unknown = await police.command(site, "self_destruct", {"x": 1})
        assert unknown["error"]["code"] == "unknown_command"
        huge = await police.command(site, "ack", {"note": "x" * 100_000})
        assert huge["error"]["code"] == "too_large"
        missing = await police.command(site, "ack", {"event_id": "nope", "by": "警员A"})
        assert missing["error"]["code"] == "not_found"
        bad_type = await police.command(site, "ack", {"event_id": 5, "by": "警员A"})
        assert bad_type["error"]["code"] == "invalid"

        alarm = await hub.ingest.ingest(event("alarm.panic"))
        await police.wait_for(lambda: alarm.event_id in view.events)
        ok = await police.command(
            site, "ack", {"event_id": alarm.event_id, "by": "警员A", "note": "已出警"}
        )
        assert ok["ok"] is True and ok["result"]["state"] == "acknowledged"
        await police.wait_for(lambda: any(u["event_id"] == alarm.event_id for u in view.updates))
        upd = next(u for u in view.updates if u["event_id"] == alarm.event_id)
        assert upd["state"]["state"] == "acknowledged" and upd["state"]["via"] == "police"
        async with hub.engine.connect() as c:
            actions = (
                await c.execute(select(AuditLog.action).where(AuditLog.subject == alarm.event_id))
            ).scalars()
            assert "event.acknowledged" in list(actions)
        # The hub is unaffected: the next event still flows.
        after = await hub.ingest.ingest(event("alarm.panic"))
        await police.wait_for(lambda: after.event_id in view.events)
    assert_no_violations(police)


async def test_availability_coalesced_while_down_and_retained_republished(
    tmp_path: Path,
) -> None:
    # A broker without persistence: a restart loses every retained message.
    broker = LocalMosquitto(tmp_path / "b", persistence=False)
    broker.start()
    try:
        cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
        async with Hub(cfg) as hub:
            await wait_until(lambda: hub.police.state.connected, what="link up")
            broker.stop()
            await wait_until(lambda: not hub.police.state.connected, what="link down")
            topic = f"{hub.prefix}/devices/cam-gate-1/availability"
            for state in ("offline", "online", "degraded"):
                await hub.submit(
                    EnqueueMessage(
                        "availability",
                        topic,
                        _availability(cfg.site.id, state),
                        priority=5,
                        retain=True,
                        coalesce_key="availability:cam-gate-1",
                    )
                )
            async with hub.engine.connect() as c:
                pending = (
                    await c.execute(
                        select(func.count()).where(
                            Outbox.kind == "availability", Outbox.published_at.is_(None)
                        )
                    )
                ).scalar()
            assert pending == 1  # superseded states coalesced
            broker.start()
            await wait_until(lambda: hub.police.state.connected, within=20, what="link up")
            async with PolicePlatform(broker.url, site=cfg.site.id) as police:
                view = police.view(cfg.site.id)
                await police.wait_for(lambda: "cam-gate-1" in view.availability)
                assert view.availability["cam-gate-1"]["state"] == "degraded"
            # Restart the broker again: the retained message is gone from it, and the hub
            # publishes it again after reconnecting.
            broker.stop()
            broker.start()
            await wait_until(lambda: hub.police.state.connects >= 3, within=20, what="reconnect")
            async with PolicePlatform(broker.url, site=cfg.site.id) as police:
                view = police.view(cfg.site.id)
                await police.wait_for(lambda: "cam-gate-1" in view.availability)
                assert view.availability["cam-gate-1"]["state"] == "degraded"
                assert_no_violations(police)
    finally:
        broker.stop()


def _availability(site: str, state: str) -> dict[str, object]:
    return {
        "schema": "mallhub/availability/1",
        "site_id": site,
        "device_id": "cam-gate-1",
        "device_type": "camera",
        "state": state,
        "since": "2026-11-24T08:00:00.000Z",
        "reason": "test",
        "last_seen": None,
        "ts": "2026-11-24T08:00:00.000Z",
    }


async def test_embedded_broker_and_mqtt_311_fallback(tmp_path: Path) -> None:
    from hub.broker import EmbeddedBroker

    async with EmbeddedBroker() as broker:
        cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
        async with police_and_hub(cfg, broker.url) as (police, hub):
            stored = await hub.ingest.ingest(event("alarm.panic"))
            view = police.view(cfg.site.id)
            await police.wait_for(lambda: stored.event_id in view.events, within=30)
            assert hub.police.state.protocol == "3.1.1"
        assert_no_violations(police)
