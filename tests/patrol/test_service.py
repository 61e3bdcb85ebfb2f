"""The patrol service with a real hub on a real nats-server: alarms stored once with their
receipts back at the hub, the malls' view from retained messages, the officer's
acknowledgement reaching the hub through the ``ack`` command."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from hub.app import Hub
from patrol.models import CommandRow, EventRow
from patrol.natsnode import NatsCluster
from patrol.queries import list_alarms, list_malls
from patrol.service import PatrolService
from tests.e2e.hubtest import event
from tests.patrol.citytest import hub_event_state, hub_receipted, patrol_config
from tests.support.sites import make_site
from tests.support.wait import wait_until


async def test_alarm_stored_receipted_and_acknowledged_through_the_hub(
    nats_node: NatsCluster, tmp_path: Path
) -> None:
    cfg = make_site(
        broker_url=nats_node.mqtt_urls[0],
        data_dir=tmp_path / "hub",
        protocol="3.1.1",
        receipts="required",
        receipt_timeout_s=5,
    )
    pc = patrol_config(
        nats_node,
        tmp_path,
        malls=[{"site_id": cfg.site.id, "name": "测试商场", "district": "金水区"}],
    )
    async with PatrolService(pc, web=False) as svc, Hub(cfg) as hub:
        assert svc.store is not None and svc.nc is not None
        engine = svc.store.engine
        await wait_until(lambda: hub.police.state.connected, within=30, what="link up")
        stored = await hub.ingest.ingest(event("alarm.panic"))

        async def patrol_has_it() -> bool:
            return bool(await list_alarms(engine, state="open"))

        await wait_until(patrol_has_it, within=20, what="alarm in the patrol store")
        [alarm] = await list_alarms(engine, state="open")
        assert alarm["event_id"] == stored.event_id and alarm["priority"] == 1
        await wait_until(
            lambda: hub_receipted(hub, stored.event_id), within=20, what="receipt at the hub"
        )

        async def mall_online() -> bool:
            malls = await list_malls(engine, registry={cfg.site.id: ("测试商场", "金水区")})
            return bool(malls) and malls[0]["online"]

        await wait_until(mall_online, within=20, what="mall online")

        from patrol.commands import acknowledge

        request_id = await acknowledge(svc.store, svc.nc, stored.event_id, "张警官")
        await wait_until(
            lambda: _state_is(hub, stored.event_id, "acknowledged"), within=20, what="hub ack"
        )
        assert (await hub_event_state(hub, stored.event_id))[1:] == ("张警官", "police")

        async def patrol_sees_ack() -> bool:
            async with engine.connect() as conn:
                state = (
                    await conn.execute(
                        select(EventRow.state).where(EventRow.event_id == stored.event_id)
                    )
                ).scalar_one()
                ok = (
                    await conn.execute(
                        select(CommandRow.ok).where(CommandRow.request_id == request_id)
                    )
                ).scalar_one()
            return state == "acknowledged" and ok is True

        await wait_until(patrol_sees_ack, within=20, what="update and response at patrol")
    # The hub stopped in order: the retained status says offline, and a patrol service
    # started afresh on an empty store rebuilds that from the retained messages.
    pc2 = patrol_config(nats_node, tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/2.db")
    async with PatrolService(pc2, web=False, workers=0) as svc2:
        assert svc2.store is not None
        malls = await list_malls(svc2.store.engine)
        assert [(m["site_id"], m["state"]) for m in malls] == [(cfg.site.id, "offline")]
        assert malls[0]["offline_since"] is not None


async def _state_is(hub: Hub, event_id: str, state: str) -> bool:
    return (await hub_event_state(hub, event_id))[0] == state
