"""What a hostile network or an ordinary closed browser tab must not do: streamed answers
carry the security headers, a client that goes away is not an error, cookies can be forced
Secure behind a TLS proxy, and the store's file is readable by the hub's user only."""

from __future__ import annotations

import logging
import stat
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import insert

from hub.broker import LocalMosquitto
from hub.store.db import create_engine, upgrade
from hub.store.models import User
from hub.web.auth import hash_password
from hub.web.state import STATE
from tests.support.sites import make_site
from tests.support.wait import wait_until
from tests.web.webtest import FAST, PASSWORD, Browserless, WebHub, web_hub

HEADERS = (
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
    "Permissions-Policy",
)


async def test_live_stream_carries_the_security_headers(wh: WebHub) -> None:
    async with Browserless(wh.url) as c:
        assert (await c.login("viewer")).status == 200
        async with c.session.get("/api/v1/live") as r:
            assert r.status == 200
            for h in HEADERS:
                assert h in r.headers, h
            assert r.headers["Cache-Control"] == "no-store"


async def test_a_client_closing_the_live_stream_is_not_an_error(
    wh: WebHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    live = wh.hub.web.app[STATE].live
    for _ in range(3):
        async with Browserless(wh.url) as c:
            assert (await c.login("viewer")).status == 200
            r = await c.session.get("/api/v1/live")
            assert (await r.content.readline()).startswith(b"retry:")
            await wait_until(lambda: len(live.clients) == 1, what="stream open")
            r.close()  # the browser tab goes away
        # Updates keep coming: the stream's handler finds the connection closed.

        def gone() -> bool:
            live.publish("update", {"event_id": None})
            return not live.clients

        await wait_until(gone, what="the stream's handler ends")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [(r.name, r.getMessage()) for r in errors]


async def test_secure_cookies_behind_a_tls_proxy(broker: LocalMosquitto, tmp_path: Path) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    cfg = cfg.model_copy(update={"http": cfg.http.model_copy(update={"secure_cookies": True})})
    async with web_hub(cfg, broker.url) as w, aiohttp.ClientSession(w.url) as s:
        async with s.post("/api/v1/session", json={"name": "viewer", "password": PASSWORD}) as r:
            assert r.status == 200
            cookie = r.cookies["mallhub_session"]
            assert cookie["secure"] is True and cookie["httponly"] is True
        async with s.get("/login") as r:
            assert r.cookies["mallhub_prelogin"]["secure"] is True


async def test_the_store_file_is_private_in_a_data_dir_the_user_made(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    db = data / "mallhub.db"
    engine = create_engine(f"sqlite+aiosqlite:///{db.as_posix()}")
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(
                insert(User).values(
                    name="x",
                    role="admin",
                    password_hash=hash_password(PASSWORD, **FAST),
                    created_at=datetime.now(UTC),
                    disabled=False,
                    failed_logins=0,
                )
            )
            files = [db, db.with_name("mallhub.db-wal"), db.with_name("mallhub.db-shm")]
            for f in files:
                assert f.exists(), f
                assert stat.S_IMODE(f.stat().st_mode) == 0o600, (f, oct(f.stat().st_mode))
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
    finally:
        await engine.dispose()
