"""Helpers for tests of the patrol service: a config on a test cluster, hub-side queries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from hub.app import Hub
from hub.store.models import Event, Outbox
from patrol.config import PatrolConfig, parse_patrol_config
from patrol.natsnode import NatsCluster


def patrol_config(
    cluster: NatsCluster, tmp_path: Path, *, database_url: str | None = None, **extra: Any
) -> PatrolConfig:
    data: dict[str, Any] = {
        "nats": {"servers": cluster.urls, "replicas": len(cluster.nodes)},
        "database_url": database_url or f"sqlite+aiosqlite:///{tmp_path / 'patrol.db'}",
        "http": {"port": 0},
        **extra,
    }
    return parse_patrol_config(data, env={})


async def hub_event_state(hub: Hub, event_id: str) -> tuple[str, str | None, str | None]:
    """(state, by, via) of an event in the hub's own store."""
    async with hub.engine.connect() as conn:
        row = (
            await conn.execute(
                select(Event.state, Event.state_by, Event.state_via).where(
                    Event.event_id == event_id
                )
            )
        ).one()
    return row.state, row.state_by, row.state_via


async def hub_receipted(hub: Hub, event_id: str) -> bool:
    async with hub.engine.connect() as conn:
        at = (
            await conn.execute(
                select(Outbox.receipted_at).where(
                    Outbox.event_id == event_id, Outbox.kind == "event"
                )
            )
        ).first()
    return at is not None and at[0] is not None


class OfficerApi:
    """An officer's calls to the patrol service's JSON API (session cookie and CSRF token):
    JSON in, (status, JSON) out."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url, self.csrf = http, url, ""

    async def login(self, name: str, password: str) -> None:
        status, body = await self.call(
            "POST", "/api/v1/session", {"name": name, "password": password}
        )
        assert status == 200, body
        self.csrf = body["csrf_token"]

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf} if self.csrf else {}
        async with self.http.request(method, self.url + path, json=body, headers=headers) as r:
            return r.status, await r.json()

    async def get(self, path: str) -> Any:
        status, body = await self.call("GET", path)
        assert status == 200, (path, body)
        return body
