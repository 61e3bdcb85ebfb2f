"""Real nats-server processes for tests: one node or a 3-node JetStream cluster with MQTT
listeners, on free ports, store directories in the test's tmp; always killed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from patrol.natsnode import NatsCluster, nats_server_path


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
