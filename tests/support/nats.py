"""Real nats-server processes for tests (one node or a 3-node JetStream cluster with MQTT
listeners, on free ports, store directories in the test's tmp), and a small JetStream
consumer that plays the police platform: dedupes alarms by event_id, counts duplicates and
sends receipts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import StreamConfig

from patrol.natsnode import NatsCluster, nats_server_path

STREAM = "MALLHUB"


def _need_nats_server() -> None:
    if nats_server_path() is None:
        pytest.skip("nats-server is not installed")


@contextlib.asynccontextmanager
async def running_cluster(workdir: Path, nodes: int, **kwargs: Any) -> AsyncIterator[NatsCluster]:
    """Start ``nodes`` nats-servers and wait for JetStream; always kill them afterwards."""
    _need_nats_server()
    cluster = NatsCluster(workdir, nodes, **kwargs)
    try:
        await asyncio.to_thread(cluster.start)
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop)


@pytest.fixture
async def nats_node(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    async with running_cluster(tmp_path / "nats", 1) as c:
        await c.wait_jetstream()
        yield c


@pytest.fixture
async def nats_cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    async with running_cluster(tmp_path / "nats", 3) as c:
        await c.wait_jetstream()
        yield c


async def add_stream(nc: NatsClient, replicas: int) -> None:
    await nc.jetstream().add_stream(
        StreamConfig(name=STREAM, subjects=["mallhub.v1.>"], num_replicas=replicas)
    )


class AlarmCollector:
    """A durable JetStream pull consumer over every mall's events: each event_id once,
    deliveries counted, a receipt published for every delivery (as the contract asks)."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries: Counter[str] = Counter()
        self.receipts_sent = 0
        self._nc: NatsClient | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.deliveries.values())

    async def __aenter__(self) -> AlarmCollector:
        self._nc = await nats.connect(
            servers=self.servers, max_reconnect_attempts=-1, reconnect_time_wait=0.1
        )
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._nc is not None:
            await self._nc.close()

    async def _run(self) -> None:
        assert self._nc is not None
        js = self._nc.jetstream()
        sub = None
        while True:
            try:
                if sub is None:
                    sub = await js.pull_subscribe("mallhub.v1.*.events.>", durable="test-police")
                msgs = await sub.fetch(100, timeout=0.5)
            except (NatsTimeout, TimeoutError):
                continue
            except Exception:  # a node went away mid-request: JetStream answers again soon
                await asyncio.sleep(0.1)
                continue
            for m in msgs:
                body = json.loads(m.data)
                event_id = body["event_id"]
                self.deliveries[event_id] += 1
                self.events.setdefault(event_id, body)
                site = m.subject.split(".")[2]
                receipt = {"event_id": event_id, "received_at": body["received_at"], "by": "test"}
                with contextlib.suppress(Exception):
                    await self._nc.publish(
                        f"mallhub.v1.{site}.receipts", json.dumps(receipt).encode()
                    )
                    self.receipts_sent += 1
                with contextlib.suppress(Exception):
                    await m.ack()
