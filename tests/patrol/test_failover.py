"""A real hub on a real 3-node NATS cluster: the node the hub is connected to is killed
while alarms are pressed; every alarm arrives, once after dedupe by event_id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
from sqlalchemy import func, select

from hub.app import Hub
from hub.store.models import Outbox
from patrol.natsnode import NatsCluster
from tests.e2e.hubtest import event
from tests.support.nats import AlarmCollector, add_stream
from tests.support.sites import make_site
from tests.support.wait import wait_until

ALARMS = 120


async def test_hub_fails_over_between_nodes_without_losing_an_alarm(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    nc = await nats.connect(servers=nats_cluster.urls)
    await add_stream(nc, replicas=3)
    await nc.close()
    cfg = make_site(
        broker_url=",".join(nats_cluster.mqtt_urls),
        data_dir=tmp_path / "hub",
        protocol="3.1.1",
        receipts="required",
        receipt_timeout_s=2,
    )
    assert cfg.police.urls == nats_cluster.mqtt_urls
    # The platform's consumer prefers the nodes the hub does not start on.
    async with AlarmCollector(list(reversed(nats_cluster.urls))) as police, Hub(cfg) as hub:
        await wait_until(lambda: hub.police.state.connected, within=30, what="link up")
        first = hub.police.state.broker
        assert first == f"127.0.0.1:{nats_cluster.nodes[0].mqtt_port}"
        pressed: list[str] = []

        async def press() -> None:
            for _ in range(ALARMS):
                stored = await hub.ingest.ingest(event("alarm.panic"))
                pressed.append(stored.event_id)
                await asyncio.sleep(0.01)

        presser = asyncio.create_task(press())
        await wait_until(lambda: len(police.events) >= ALARMS // 4, within=30, what="first alarms")
        killed = nats_cluster.nodes[0]
        await asyncio.to_thread(nats_cluster.kill_node, killed)
        await presser
        await wait_until(lambda: set(police.events) >= set(pressed), within=90, what="every alarm")
        assert hub.police.state.failovers >= 1
        assert hub.police.state.broker != first
        assert len(pressed) == ALARMS and len(set(pressed)) == ALARMS
        assert set(police.events) == set(pressed)  # exactly once after dedupe
        assert all(police.deliveries[e] >= 1 for e in pressed)
        # Every alarm's receipt reached the hub (through the surviving nodes).

        async def all_receipted() -> bool:
            async with hub.engine.connect() as conn:
                left = (
                    await conn.execute(
                        select(func.count()).where(
                            Outbox.receipt_required.is_(True), Outbox.receipted_at.is_(None)
                        )
                    )
                ).scalar_one()
            return int(left) == 0

        await wait_until(all_receipted, within=60, what="receipts on every alarm")
        print(f"duplicates after failover: {police.duplicates}")
        # The killed node comes back and rejoins; the hub stays on the node it has.
        await asyncio.to_thread(nats_cluster.restart_node, killed)
        await nats_cluster.wait_jetstream()
