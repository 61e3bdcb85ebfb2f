"""A patrol worker that is still starting when NATS nodes die keeps trying, moves to a
node that is up, and then works: on a real 3-node cluster.

Two nodes are stopped first, so the cluster has no quorum and the service cannot get past
its start (creating its stream); then the node the service is connected to is killed and
the other two come back. The service must finish starting on them and store an alarm."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from nats.errors import Error as NatsError

from patrol.natsnode import NatsCluster
from patrol.queries import list_alarms
from patrol.service import PatrolService
from simulators.city import EmulatedHub, MallSpec
from tests.patrol.citytest import patrol_config
from tests.support.wait import wait_until

SITE = "zz-start-001"


@pytest.mark.timeout(600)  # bounded waits below add up to more than the default 300 s
async def test_a_starting_worker_survives_nodes_dying_and_fails_over(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    first, second, third = nats_cluster.nodes
    pc = patrol_config(nats_cluster, tmp_path, workers=1)
    # Two replicas, so that the two nodes left at the end can hold the stream.
    pc = pc.model_copy(update={"nats": pc.nats.model_copy(update={"replicas": 2})})
    await asyncio.to_thread(nats_cluster.kill_node, second)
    await asyncio.to_thread(nats_cluster.kill_node, third)
    svc = PatrolService(pc, web=False)
    starting = asyncio.create_task(svc.__aenter__(), name="patrol-start")
    try:
        # Connected to the one node left, and trying again for want of a quorum.
        await wait_until(
            lambda: starting.done() or svc.start_retries >= 2, within=120, what="retrying"
        )
        assert not starting.done(), starting
        assert svc.nc is not None and svc.nc.connected_url is not None
        assert svc.nc.connected_url.port == first.client_port
        # The node it is on dies; the others come back.
        await asyncio.to_thread(nats_cluster.kill_node, first)
        await asyncio.to_thread(nats_cluster.start_node, second)
        await asyncio.to_thread(nats_cluster.start_node, third)
        await wait_until(starting.done, within=240, what="the start finished on the others")
        assert starting.exception() is None, (svc.start_retries, nats_cluster.log_tail(second))
        assert svc.nc.connected_url is not None
        assert svc.nc.connected_url.port in (second.client_port, third.client_port)
        # It works: an alarm published now is stored.
        alarm = EmulatedHub(MallSpec(SITE, "启动商场", "金水区"), "127.0.0.1", 0).event(
            "alarm.panic", 1, "一键报警", "panic", "btn-000"
        )
        js = svc.nc.jetstream()

        async def published() -> bool:
            # The cluster may still be settling its stream leader: try again until it takes.
            try:
                await js.publish(f"mallhub.v1.{SITE}.events.alarm", json.dumps(alarm).encode())
            except NatsError:
                return False
            return True

        await wait_until(published, within=90, interval=0.5, what="the alarm published")
        assert svc.store is not None
        engine = svc.store.engine

        async def stored() -> bool:
            return any(a["event_id"] == alarm["event_id"] for a in await list_alarms(engine))

        await wait_until(stored, within=90, what="the alarm stored after the failover")
    finally:
        if not starting.done():
            starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await svc.__aexit__(None, None, None)
