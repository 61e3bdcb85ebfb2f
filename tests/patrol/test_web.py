"""The city overview's JSON API and its protections: anonymous callers get 401, logins are
throttled and lock accounts, state changes need the CSRF token and the same origin, the
security headers are set, hostile input gets a 4xx JSON answer, and an emulated mall's
alarm is acknowledged through the API."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator

from patrol.auth import add_user
from patrol.natsnode import NatsCluster
from patrol.service import PatrolService
from simulators.city import EmulatedHub, MallSpec
from tests.patrol.citytest import patrol_config
from tests.support.wait import wait_until

SITE = "zz-web-001"


@pytest.fixture
async def service(nats_node: NatsCluster, tmp_path: Path) -> AsyncIterator[PatrolService]:
    pc = patrol_config(
        nats_node, tmp_path, malls=[{"site_id": SITE, "name": "网测商场", "district": "中原区"}]
    )
    async with PatrolService(pc) as svc:
        yield svc


async def _login(http: aiohttp.ClientSession, url: str, name: str, password: str) -> str:
    async with http.post(f"{url}/api/v1/session", json={"name": name, "password": password}) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
        assert r.headers["X-Frame-Options"] == "DENY"
        return str(body["csrf_token"])


async def test_anonymous_callers_get_401_and_logins_are_protected(service: PatrolService) -> None:
    assert service.store is not None and service.web is not None
    url = service.web.url
    password = secrets.token_urlsafe(12)
    await add_user(service.store.engine, "wang", "officer", password)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for path in ("/api/v1/malls", "/api/v1/alarms", "/api/v1/live", "/api/v1/me"):
            async with http.get(url + path) as r:
                assert r.status == 401, path
                assert (await r.json())["error"] == "unauthenticated"
                assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        async with http.post(f"{url}/api/v1/alarms/x/ack", json={}) as r:
            assert r.status == 401
        async with http.get(f"{url}/api/v1/nothing-here") as r:
            assert r.status == 404 and (await r.json())["error"] == "not_found"
        async with http.get(f"{url}/api/v1/openapi.json") as r:
            doc = await r.json()
        assert {"/api/v1/malls", "/api/v1/alarms"} <= set(doc["paths"])
        mall = doc["components"]["schemas"]["Mall"]
        Draft202012Validator.check_schema(mall)
        # Hostile bodies: clear 4xx JSON, never a 500.
        for data, ctype, status in [
            (b"not json", "application/json", 400),
            (b"[1, 2]", "application/json", 400),
            (b"name=a", "application/x-www-form-urlencoded", 415),
            (b'{"name": 1, "password": []}', "application/json", 400),
            (b"{" + b'"a":"' + b"x" * 70000 + b'"}', "application/json", 413),
        ]:
            async with http.post(
                f"{url}/api/v1/session", data=data, headers={"Content-Type": ctype}
            ) as r:
                assert r.status == status, (data[:20], r.status)
                assert "error" in await r.json()
        # A foreign origin cannot log in (login CSRF).
        async with http.post(
            f"{url}/api/v1/session",
            json={"name": "wang", "password": password},
            headers={"Origin": "https://evil.example"},
        ) as r:
            assert r.status == 403
        # Five wrong passwords for one name from one address: that address may not try
        # that name again for a while, even with the right password.
        for _ in range(5):
            async with http.post(
                f"{url}/api/v1/session", json={"name": "wang", "password": "wrong-wrong-1"}
            ) as r:
                assert r.status == 401
        async with http.post(
            f"{url}/api/v1/session", json={"name": "wang", "password": password}
        ) as r:
            assert r.status == 429 and int(r.headers["Retry-After"]) > 0
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        # The address is refused after 20 failures (5 above), whatever the user name.
        statuses = []
        for i in range(21):
            async with http.post(
                f"{url}/api/v1/session", json={"name": f"nobody{i}", "password": "x" * 12}
            ) as r:
                statuses.append(r.status)
        first = statuses.index(429)
        assert set(statuses[:first]) == {401} and set(statuses[first:]) == {429}
        assert first == 20 - 5


async def test_malls_alarms_and_acknowledgement_through_the_api(
    service: PatrolService, nats_node: NatsCluster
) -> None:
    assert service.store is not None and service.web is not None
    url = service.web.url
    password = secrets.token_urlsafe(12)
    await add_user(service.store.engine, "zhao", "officer", password, "赵警官")
    hub = EmulatedHub(
        MallSpec(SITE, "网测商场", "中原区", devices=12), "127.0.0.1", nats_node.nodes[0].mqtt_port
    )
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    try:
        await asyncio.wait_for(hub.connected.wait(), 20)
        await hub.set_device("cam-001", "offline")
        event_id = await hub.press("alarm.panic", "btn-000")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            csrf = await _login(http, url, "zhao", password)

            async def get(path: str) -> Any:
                async with http.get(url + path) as r:
                    assert r.status == 200, await r.text()
                    return await r.json()

            async def mall_ready() -> bool:
                [m] = (await get("/api/v1/malls"))["malls"]
                return bool(m["online"] and m["open_alarms"] == 1 and m["devices_offline"] == 1)

            await wait_until(mall_ready, within=20, what="mall summary")
            [m] = (await get("/api/v1/malls?district=中原区&sort=open_alarms&order=desc"))["malls"]
            assert (m["site_id"], m["name"], m["district"]) == (SITE, "网测商场", "中原区")
            assert m["offline_since"] is None and m["open_alarms_by_priority"] == {"1": 1}
            assert m["compliance"]["overall"] == "non_compliant"
            assert m["devices"] == 12
            assert (await get("/api/v1/malls?district=nowhere"))["malls"] == []
            [a] = (await get("/api/v1/alarms"))["alarms"]
            assert a["event_id"] == event_id and a["state"] == "open"
            for bad in ("?state=x", "?limit=0", "?limit=abc", "?site_id=a.b", "?sort=x"):
                path = "/api/v1/malls" if "sort" in bad else "/api/v1/alarms"
                async with http.get(url + path + bad) as r:
                    assert r.status == 400, bad
            ack = f"{url}/api/v1/alarms/{event_id}/ack"
            async with http.post(ack, json={}) as r:
                assert r.status == 403 and (await r.json())["error"] == "csrf"
            async with http.post(
                ack, json={}, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
            ) as r:
                assert r.status == 403
            async with http.post(
                f"{url}/api/v1/alarms/unknown/ack", json={}, headers={"X-CSRF-Token": csrf}
            ) as r:
                assert r.status == 404
            async with http.post(ack, json={"note": "已派警"}, headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 202, await r.text()
                assert (await r.json())["alarm"]["state"] == "ack_sent"
            await wait_until(lambda: hub.states[event_id] == "acknowledged", what="hub ack")

            async def acknowledged() -> bool:
                [a] = (await get("/api/v1/alarms?state=all"))["alarms"]
                return bool(a["state"] == "acknowledged" and a["ack_by"] == "赵警官")

            await wait_until(acknowledged, within=20, what="update back at patrol")
            async with http.post(ack, json={}, headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 409
            assert (await get("/api/v1/alarms"))["alarms"] == []
            # Logout ends the session.
            async with http.delete(f"{url}/api/v1/session", headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 200
            async with http.get(f"{url}/api/v1/malls") as r:
                assert r.status == 401
        assert hub.stats.receipts >= 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    json.dumps(hub.stats.sent_at)
