"""Every route of the patrol service's OpenAPI document, fed hostile values
(tests/support/hostile.py) in every path and query parameter and in the body, anonymously
and logged in as an admin: never a 5xx, never a traceback, every error a JSON body with
``error`` and ``message``.

The document is walked, not a list kept here, so a new route is covered the day it is
added. The values and the way they are put in a request are the hub's own hostile-route
test's (tests/web/test_hostile_routes.py), drawn with a fixed seed.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select
from yarl import URL

from patrol.auth import add_user
from patrol.inspections import start_inspection
from patrol.models import InspectionRow
from patrol.natsnode import NatsCluster
from patrol.openapi import openapi_document
from patrol.queries import list_alarms
from patrol.service import PatrolService
from simulators.city import EmulatedHub, MallSpec
from tests.patrol.citytest import patrol_config
from tests.support.hostile import percent_encoded
from tests.support.hostile_routes import Checker, Operation, hostile_run, url_values
from tests.support.wait import wait_until

SITE = "zz-routes-001"


@pytest.fixture
async def service(nats_node: NatsCluster, tmp_path: Path) -> AsyncIterator[PatrolService]:
    pc = patrol_config(
        nats_node, tmp_path, malls=[{"site_id": SITE, "name": "路由商场", "district": "中原区"}]
    )
    async with PatrolService(pc) as svc:
        yield svc


async def _samples(svc: PatrolService) -> dict[str, str]:
    """Ids that exist, so that hostile bodies reach the handlers instead of a 404."""
    assert svc.store is not None and svc.nc is not None
    engine = svc.store.engine
    alarm = EmulatedHub(MallSpec(SITE, "路由商场", "中原区"), "127.0.0.1", 0).event(
        "alarm.panic", 1, "一键报警", "panic", "btn-000"
    )
    await svc.nc.jetstream().publish(f"mallhub.v1.{SITE}.events.alarm", json.dumps(alarm).encode())

    async def stored() -> bool:
        return bool(await list_alarms(engine))

    await wait_until(stored, within=30, what="the sample alarm stored")
    inspection_id = await start_inspection(
        svc.store,
        svc.nc,
        svc.config.inspections,
        SITE,
        officer="李警官",
        known_sites=frozenset({SITE}),
    )
    async with engine.connect() as conn:
        assert (
            await conn.execute(
                select(InspectionRow.state).where(InspectionRow.inspection_id == inspection_id)
            )
        ).scalar_one() == "waiting"
    return {
        "event_id": str(alarm["event_id"]),
        "inspection_id": inspection_id,
        "item_id": "camera:cam-001",
        "notice_id": "ZG-1",
        "sha256": "a" * 64,
        "site_id": SITE,
    }


class Counting(Checker):
    """Also counts the answers that came from a route (not a refusal of the caller)."""

    reached = 0

    async def send(self, op: Operation, url: URL, data: bytes | None, what: str) -> None:
        async with self.s.get("/api/v1/me", headers=self.headers) as r:
            logged_in = r.status == 200
        before = self.sent
        await super().send(op, url, data, what)
        if logged_in and self.sent > before:
            self.reached += 1


@pytest.mark.parametrize("who", ["anonymous", "admin"])
async def test_every_patrol_route_survives_hostile_values(
    service: PatrolService, who: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert service.store is not None and service.web is not None
    samples = await _samples(service)
    password = secrets.token_urlsafe(12)
    await add_user(service.store.engine, "root", "admin", password)
    caplog.set_level(logging.WARNING)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(service.web.url, cookie_jar=jar) as s:
        headers: dict[str, str] = {}
        if who == "admin":
            async with s.post("/api/v1/session", json={"name": "root", "password": password}) as r:
                assert r.status == 200, await r.text()
                headers["X-CSRF-Token"] = str((await r.json())["csrf_token"])
            async with s.get("/api/v1/me") as r:
                assert r.status == 200
        c = Counting(s, headers)
        await hostile_run(c, samples, openapi_document())
        assert c.problems == [], "\n".join(c.problems[:30])
        # Logged in, the requests reached the routes: the session outlived every one of
        # them but the hostile logins and the logout at the very end.
        if who == "admin":
            async with s.get("/api/v1/me") as r:
                assert r.status == 401
            assert c.reached > c.sent // 2, (c.reached, c.sent)
    assert c.sent > 1000
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert crashes == [], [(r.name, r.getMessage()) for r in crashes[:10]]


PAGE_QUERY = ("lang", "site_id", "state", "by", "next", "limit")
"""Query parameters tried on every page (the pages read some of these)."""


async def test_every_patrol_page_survives_hostile_values(
    service: PatrolService, caplog: pytest.LogCaptureFixture
) -> None:
    """The HTML pages (not in the API document), found in the app's router: each path
    parameter and query parameter hostile, logged in as an officer — an answer, never a
    5xx or a traceback."""
    assert service.store is not None and service.web is not None
    samples = await _samples(service)
    password = secrets.token_urlsafe(12)
    await add_user(service.store.engine, "li", "officer", password)
    pages = sorted(
        {
            r.canonical
            for r in service.web.app.router.resources()
            if not r.canonical.startswith(("/api/", "/static"))
        }
    )
    assert "/" in pages and "/notices/{notice_id}" in pages, pages
    caplog.set_level(logging.WARNING)
    values = url_values()
    problems: list[str] = []
    sent = 0
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(service.web.url, cookie_jar=jar) as s:
        async with s.post("/api/v1/session", json={"name": "li", "password": password}) as r:
            assert r.status == 200, await r.text()
        for page in pages:
            names = re.findall(r"\{([a-z_]+)\}", page)
            urls: list[tuple[str, URL]] = []
            for v in values:
                for name in names:
                    path = page
                    for other in names:
                        value = v if other == name else samples.get(other, "x")
                        path = path.replace("{" + other + "}", percent_encoded(value) or "x")
                    urls.append((f"{name}={v!r}", URL(path, encoded=True)))
                base = page
                for other in names:
                    base = base.replace("{" + other + "}", samples.get(other, "x"))
                for q in PAGE_QUERY:
                    url = URL(f"{base}?{q}={percent_encoded(v)}", encoded=True)
                    urls.append((f"{q}={v!r}", url))
            for what, url in urls:
                async with s.get(url, allow_redirects=False) as r:
                    sent += 1
                    text = await r.text(errors="replace")
                    if r.status >= 500 or "Traceback" in text:
                        problems.append(f"GET {page} [{what}] → {r.status}"[:160])
        async with s.get("/api/v1/me") as r:
            assert r.status == 200  # still logged in: the pages were reached as an officer
    assert sent > 500
    assert problems == [], "\n".join(problems[:30])
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert crashes == [], [(r.name, r.getMessage()) for r in crashes[:10]]
