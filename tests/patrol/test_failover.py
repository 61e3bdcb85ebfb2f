"""Real hubs on a real 3-node NATS cluster, the patrol service (two workers) consuming:
the node the hubs are connected to is killed while alarms are pressed; every alarm is
stored once (duplicates counted) and every receipt reaches its hub."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from hub.app import Hub
from hub.store.models import Outbox
from patrol.natsnode import NatsCluster
from patrol.queries import list_alarms
from patrol.service import PatrolService
from patrol.store import count_events
from tests.e2e.hubtest import event
from tests.patrol.citytest import patrol_config
from tests.support.sites import make_site
from tests.support.wait import wait_until

ALARMS = 60  # per hub


async def _unreceipted(hub: Hub) -> int:
    async with hub.engine.connect() as conn:
        left = (
            await conn.execute(
                select(func.count()).where(
                    Outbox.receipt_required.is_(True), Outbox.receipted_at.is_(None)
                )
            )
        ).scalar_one()
    return int(left)


async def test_hubs_fail_over_between_nodes_without_losing_an_alarm(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    cfgs = [
        make_site(
            broker_url=",".join(nats_cluster.mqtt_urls),
            data_dir=tmp_path / site,
            site_id=site,
            protocol="3.1.1",
            receipts="required",
            receipt_timeout_s=2,
        )
        for site in ("mall-east", "mall-west")
    ]
    assert cfgs[0].police.urls == nats_cluster.mqtt_urls
    pc = patrol_config(nats_cluster, tmp_path, workers=2)
    # The patrol service prefers the nodes the hubs do not start on.
    pc = pc.model_copy(
        update={"nats": pc.nats.model_copy(update={"servers": list(reversed(pc.nats.servers))})}
    )
    async with PatrolService(pc, web=False) as svc, Hub(cfgs[0]) as east, Hub(cfgs[1]) as west:
        assert svc.store is not None
        engine = svc.store.engine
        hubs = [east, west]
        await wait_until(
            lambda: all(h.police.state.connected for h in hubs), within=30, what="links up"
        )
        for hub in hubs:
            assert hub.police.state.broker == f"127.0.0.1:{nats_cluster.nodes[0].mqtt_port}"
        pressed: list[str] = []

        async def press(hub: Hub) -> None:
            for _ in range(ALARMS):
                stored = await hub.ingest.ingest(event("alarm.panic"))
                pressed.append(stored.event_id)
                await asyncio.sleep(0.02)

        async def stored_count() -> int:
            return (await count_events(engine))[0]

        presses = [asyncio.create_task(press(h)) for h in hubs]

        async def a_quarter_stored() -> bool:
            return await stored_count() >= ALARMS // 2

        await wait_until(a_quarter_stored, within=30, what="first alarms stored")
        killed = nats_cluster.nodes[0]
        await asyncio.to_thread(nats_cluster.kill_node, killed)
        await asyncio.gather(*presses)

        async def all_stored() -> bool:
            return await stored_count() >= 2 * ALARMS

        await wait_until(all_stored, within=90, what="every alarm stored")
        stored, _ = await count_events(engine)
        assert stored == 2 * ALARMS == len(set(pressed))  # each once, none lost
        open_ids = {a["event_id"] for a in await list_alarms(engine, state="all", limit=1000)}
        assert open_ids == set(pressed)
        for hub in hubs:
            assert hub.police.state.failovers >= 1
            assert hub.police.state.broker != f"127.0.0.1:{killed.mqtt_port}"

        async def all_receipted() -> bool:
            return sum([await _unreceipted(h) for h in hubs]) == 0

        await wait_until(all_receipted, within=60, what="a receipt at the hubs for every alarm")
        # Duplicates are counted, not stored: the store's count matches the workers'.

        async def duplicates_recorded() -> bool:
            return (await count_events(engine))[1] == svc.stats.duplicates

        await wait_until(duplicates_recorded, within=10, what="duplicates on record")
        assert (await count_events(engine))[0] == 2 * ALARMS
        print(f"failover: {stored} alarms stored once, {svc.stats.duplicates} duplicates")
        # The killed node comes back and rejoins the cluster.
        await asyncio.to_thread(nats_cluster.restart_node, killed)
        await nats_cluster.wait_jetstream()
