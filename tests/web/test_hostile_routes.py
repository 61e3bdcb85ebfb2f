"""Every route of the OpenAPI document, fed hostile values (tests/support/hostile.py) in
every parameter and in the body, anonymously and with the admin's token: never a 5xx,
never a traceback, every error a JSON body.

The document is walked, not a list kept here: a new route is covered the day it is added.
Schema-driven fuzzing (test_openapi.py, schemathesis) generates what the schema allows;
this test sends what it does not — deep nesting, lone surrogates, control characters,
extreme dates and numbers, other scripts' digits, invalid UTF-8.

The values and the walk are in tests/support/hostile_routes.py, shared with the patrol
service's test; they are replayed here against one running hub.
"""

from __future__ import annotations

import logging
import re

import aiohttp
import pytest
from yarl import URL

from hub.web.openapi import document
from tests.notices.mall import issue
from tests.support.hostile import percent_encoded
from tests.support.hostile_routes import Checker, hostile_run, url_values
from tests.web.test_api import press_button
from tests.web.webtest import WebHub

SAMPLE = {
    "device_id": "cam-gate-1",
    "event_id": "01936c2e-0000-7000-8000-000000000000",
    "snapshot_id": "1",
    "record_id": "1",
    "notice_id": "ZG-1",
    "name": "viewer",
    "token_id": "999",
    "target": "cam-gate-1",
}


@pytest.mark.parametrize("who", ["anonymous", "admin"])
async def test_every_route_survives_hostile_values(
    wh: WebHub, who: str, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {} if who == "anonymous" else {"Authorization": f"Bearer {wh.tokens['admin']}"}
    # An event, a notice and a hazard that exist: a valid id in the path lets the hostile
    # bodies of acknowledge, close, notes, answer and close-hazard reach their handlers
    # instead of a 404.
    samples = dict(SAMPLE)
    samples["event_id"] = (await press_button(wh))["event_id"]
    issued = await wh.hub.notices.cmd_notice(issue(samples["notice_id"]))
    assert issued["state"] == "open", issued
    caplog.set_level(logging.WARNING)
    async with aiohttp.ClientSession(wh.url) as s:
        admin = {"Authorization": f"Bearer {wh.tokens['admin']}"}
        hazard = {"title": "消防通道堵塞", "owner": "张三", "due": "2030-01-01"}
        async with s.post("/api/v1/records/hazards", json=hazard, headers=admin) as r:
            assert r.status == 201, await r.text()
            samples["record_id"] = str((await r.json())["id"])
        c = Checker(s, headers)
        await hostile_run(c, samples, document())
        assert c.problems == [], "\n".join(c.problems[:30])
        # The admin's token was not revoked along the way: every request reached its route.
        async with s.get("/api/v1/me", headers=headers) as r:
            assert r.status == (401 if who == "anonymous" else 200)
    assert c.sent > 2000
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert crashes == [], [(r.name, r.getMessage()) for r in crashes[:10]]


PAGES: dict[str, tuple[str, ...]] = {
    "/console": (),
    "/devices": ("not_online",),
    "/events": (
        "q",
        "kind",
        "floor",
        "zone",
        "device",
        "category",
        "priority",
        "state",
        "since",
        "until",
        "offset",
    ),
    "/events/{event_id}": (),
    "/compliance": ("date",),
    "/records": (),
    "/notices": (),
    "/notices/{notice_id}": (),
    "/login": ("next",),
    "/lang/en": ("next",),
}


async def test_every_page_survives_hostile_values(
    wh: WebHub, caplog: pytest.LogCaptureFixture
) -> None:
    """The console's pages (not in the API document) with a session, each query parameter
    and the path's event id hostile: an answer, never a 5xx or a traceback."""
    caplog.set_level(logging.WARNING)
    values = url_values()
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(wh.url, cookie_jar=jar) as s:
        async with s.post(
            "/api/v1/session", json={"name": "viewer", "password": "correct horse battery"}
        ) as r:
            assert r.status == 200
        problems = []
        sent = 0
        for page, params in PAGES.items():
            for name in params or ("event_id",) if "{" in page else params:
                for v in values:
                    if name == "event_id":
                        # The path's one parameter (an event id, a notice id) is hostile.
                        path = re.sub(r"\{[a-z_]+\}", "\0", page).replace(
                            "\0", percent_encoded(v) or "x"
                        )
                        url = URL(path, encoded=True)
                    else:
                        url = URL(f"{page}?{name}={percent_encoded(v)}", encoded=True)
                    async with s.get(url, allow_redirects=False) as r:
                        sent += 1
                        text = await r.text(errors="replace")
                        if r.status >= 500 or "Traceback" in text:
                            problems.append(f"GET {page} [{name}={v!r}] → {r.status}"[:160])
    assert sent > 500
    assert problems == [], "\n".join(problems[:30])
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert crashes == [], [(r.name, r.getMessage()) for r in crashes[:10]]
