"""Pictures a hub sends as URLs are fetched only from that mall's console address.

Two real HTTP servers on free ports serve the same picture: the mall's console (as the
patrol configuration names it) and somewhere else. A URL on the console is fetched and
kept; a URL elsewhere is never requested and is recorded as "picture not kept: …"."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from patrol.config import parse_patrol_config
from patrol.models import NoticeEvidenceRow, open_store
from patrol.pictures import fetch_pictures, url_refusal
from patrol.store import PatrolStore
from tests.patrol.test_inspect_units import SITE, incoming, notice

PICTURE = b"\xff\xd8\xff\xe0 a small jpeg \xff\xd9"
SHA = hashlib.sha256(PICTURE).hexdigest()


class Server:
    """An HTTP server on a free loopback port that serves PICTURE and counts requests."""

    def __init__(self) -> None:
        self.requests = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _picture(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(body=PICTURE, content_type="image/jpeg")

    async def __aenter__(self) -> Server:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._picture)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[PatrolStore]:
    engine = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    try:
        yield PatrolStore(engine)
    finally:
        await engine.dispose()


def _answered(notice_id: str, url: str) -> Any:
    body = notice(2, state="answered", notice_id=notice_id)
    snap = body["steps"][1]["evidence"]["snapshots"][0]
    snap.update(url=url, sha256=SHA, bytes=len(PICTURE))
    return incoming(body, 5, notice_id=notice_id)


async def _evidence(store: PatrolStore) -> dict[str, tuple[bytes | None, str]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(
                NoticeEvidenceRow.notice_id,
                NoticeEvidenceRow.picture,
                NoticeEvidenceRow.picture_error,
            )
        )
        return {r.notice_id: (r.picture, r.picture_error) for r in rows}


async def test_a_picture_is_fetched_from_the_console_and_never_from_elsewhere(
    store: PatrolStore,
) -> None:
    async with Server() as console, Server() as elsewhere:
        cfg = parse_patrol_config(
            {
                "nats": {"servers": ["nats://127.0.0.1:4222"]},
                "database_url": "sqlite+aiosqlite:///x.db",
                "malls": [{"site_id": SITE, "console_url": f"http://127.0.0.1:{console.port}"}],
            },
            env={},
        )
        consoles = {m.site_id: m.console_url for m in cfg.malls}
        good = f"http://127.0.0.1:{console.port}/snapshots/1?token=t"
        cases = {
            "ZG-1": good,
            "ZG-2": f"http://127.0.0.1:{elsewhere.port}/snapshots/1?token=t",
            "ZG-3": f"http://localhost:{console.port}/snapshots/1",  # another name
            "ZG-4": f"https://127.0.0.1:{console.port}/snapshots/1",  # another scheme
            "ZG-5": f"http://u:p@127.0.0.1:{console.port}/snapshots/1",
            "ZG-6": f"http://127.0.0.1:{console.port}@127.0.0.1:{elsewhere.port}/x",
            "ZG-7": f"http://127.0.0.1:{elsewhere.port}/\\@127.0.0.1:{console.port}/",
            "ZG-8": "file:///etc/passwd",
        }
        for notice_id, url in cases.items():
            await store.write([_answered(notice_id, url)])
        assert await fetch_pictures(store, consoles) == 1
        kept = await _evidence(store)
        assert kept["ZG-1"] == (PICTURE, "")
        for notice_id in cases.keys() - {"ZG-1"}:
            picture, error = kept[notice_id]
            assert picture is None and error.startswith("picture not kept: "), (notice_id, error)
        assert elsewhere.requests == 0 and console.requests == 1
        # A mall whose console is not configured gets nothing fetched.
        await store.write([_answered("ZG-9", good)])
        assert await fetch_pictures(store, {}) == 0
        assert (await _evidence(store))["ZG-9"][1].startswith("picture not kept: ")
        assert console.requests == 1


def test_the_console_address_is_a_scheme_host_and_port_only() -> None:
    base = {"nats": {"servers": ["nats://127.0.0.1:4222"]}, "database_url": "sqlite+aiosqlite:///x"}
    for bad in ("ftp://hub", "http://hub/path", "http://u:p@hub", "http://hub?x=1", "hub:80"):
        with pytest.raises(Exception, match="console_url"):
            parse_patrol_config({**base, "malls": [{"site_id": SITE, "console_url": bad}]}, env={})
    assert url_refusal("http://hub.example:8080/s/1", "http://hub.example:8080") is None
    assert url_refusal("http://hub.example/s/1", "http://hub.example:80/") is None
    assert url_refusal("http://hub.example:8081/s/1", "http://hub.example:8080") is not None
