"""Values an attacker or a broken client sends: each is a 4xx with a JSON error, never a
500 — deep nesting, lone surrogates, control characters, dates that overflow, digits of
other scripts, numbers JSON should not carry."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from yarl import URL

from tests.web.webtest import PASSWORD, WebHub

DEEP = b"[" * 50_000 + b"]" * 50_000
DEEP_OBJECT = b'{"name": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000 + b', "password": "x"}'


def bearer(wh: WebHub, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {wh.tokens[role]}"}


async def expect_4xx(r: aiohttp.ClientResponse, what: Any) -> dict[str, Any]:
    assert 400 <= r.status < 500, (what, r.status, await r.text())
    assert r.content_type == "application/json", (what, r.content_type)
    body: dict[str, Any] = await r.json()
    assert isinstance(body.get("error"), str) and body.get("message"), (what, body)
    assert "Traceback" not in await r.text()
    return body


async def test_deep_nesting_and_surrogates_in_bodies_are_400(wh: WebHub) -> None:
    surrogate = '"\\ud800"'
    async with aiohttp.ClientSession(wh.url) as s:
        # Anonymous: the login endpoint.
        for raw in (
            DEEP,
            DEEP_OBJECT,
            b'{"name": ' + surrogate.encode() + b', "password": "correct horse battery"}',
            b'{"name": "admin", "password": ' + surrogate.encode() + b"}",
            b'{"name": "admin\\u0000", "password": "correct horse battery"}',
            b'{"name": "admin", "password": NaN}',
            b'{"name": "admin", "password": 1e999}',
        ):
            async with s.post(
                "/api/v1/session", data=raw, headers={"Content-Type": "application/json"}
            ) as r:
                await expect_4xx(r, raw[:60])
        # Authenticated: notes, titles, users, tokens, passwords.
        cases: list[tuple[str, str, str, bytes]] = [
            ("admin", "POST", "/api/v1/events/01936c2e-0000-7000-8000-000000000000/notes", DEEP),
            (
                "admin",
                "POST",
                "/api/v1/events/01936c2e-0000-7000-8000-000000000000/notes",
                b'{"text": ' + surrogate.encode() + b"}",
            ),
            (
                "admin",
                "POST",
                "/api/v1/records/trainings",
                b'{"date": "2026-01-05", "title": "fire \\udfff"}',
            ),
            (
                "admin",
                "POST",
                "/api/v1/users",
                b'{"name": "x\\ud800", "role": "viewer", "password": "correct horse battery"}',
            ),
            (
                "admin",
                "POST",
                "/api/v1/users",
                b'{"name": "newbie", "role": "viewer", "password": "correct horse \\ud800"}',
            ),
            ("admin", "POST", "/api/v1/tokens", b'{"name": "t\\ud800", "user": "viewer"}'),
            (
                "viewer",
                "PUT",
                "/api/v1/me/password",
                b'{"current": "\\ud800", "new": "another long one"}',
            ),
        ]
        for role, method, url, raw in cases:
            headers = {**bearer(wh, role), "Content-Type": "application/json"}
            async with s.request(method, url, data=raw, headers=headers) as r:
                await expect_4xx(r, (url, raw[:60]))


async def test_dates_that_overflow_are_400(wh: WebHub) -> None:
    early = "0001-01-01T00:00:00+14:00"
    late = "9999-12-31T23:59:59-14:00"
    async with aiohttp.ClientSession(wh.url, headers=bearer(wh, "admin")) as s:
        for url, params in (
            ("/api/v1/events", {"since": early}),
            ("/api/v1/events", {"until": late}),
            ("/api/v1/events.csv", {"since": early}),
            ("/api/v1/events.csv", {"until": late}),
            ("/api/v1/compliance", {"at": early}),
            ("/api/v1/compliance", {"at": late}),
            ("/api/v1/compliance/report.html", {"at": early}),
            ("/api/v1/compliance/report.html", {"at": late}),
            ("/api/v1/events", {"since": "٢٠٢٦-01-01T00:00:00Z"}),
        ):
            async with s.get(url, params=params) as r:
                await expect_4xx(r, (url, params))


async def test_integers_take_ascii_digits_only(wh: WebHub) -> None:
    async with aiohttp.ClientSession(wh.url, headers=bearer(wh, "admin")) as s:
        for url in (
            "/api/v1/snapshots/%D9%A3",  # ARABIC-INDIC DIGIT THREE
            "/api/v1/snapshots/%EF%BC%91",  # FULLWIDTH DIGIT ONE
            "/api/v1/snapshots/%C2%B2",  # SUPERSCRIPT TWO
            "/api/v1/events?limit=%D9%A3",
            "/api/v1/events?offset=1%00",
        ):
            async with s.get(URL(url, encoded=True)) as r:
                body = await expect_4xx(r, url)
                assert r.status == 400, (url, r.status, body)


def _local(location: str) -> bool:
    """Where a browser goes: it drops tabs and line breaks and reads '\\' as '/'."""
    seen = location.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")
    return seen.startswith("/") and not seen.startswith("//")


NEXTS = (
    "/\t/evil.example/phish",
    "/%09/evil.example",
    "/\n/evil.example",
    "/\\evil.example",
    "//evil.example",
    "https://evil.example/",
    "/ /evil.example",
)


async def test_no_redirect_leaves_the_hub(wh: WebHub) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(wh.url, cookie_jar=jar) as s:
        for nxt in (*NEXTS, "/%2509/evil.example"):
            url = URL("/lang/en", encoded=True).with_query(next=nxt)
            async with s.get(url, allow_redirects=False) as r:
                assert r.status == 302
                assert _local(r.headers["Location"]), (nxt, r.headers["Location"])
        async with s.get(
            URL("/lang/en?next=/%09/evil.example", encoded=True),
            allow_redirects=False,
        ) as r:
            assert r.headers["Location"] == "/console"
        for nxt in NEXTS:
            async with s.get("/login") as r:
                html = await r.text()
            value = re.search(r'name="csrf_token" value="([^"]+)"', html)
            assert value is not None
            form = {
                "name": "admin",
                "password": PASSWORD,
                "csrf_token": value.group(1),
                "next": nxt,
            }
            async with s.post("/login", data=form, allow_redirects=False) as r:
                assert r.status == 302, await r.text()
                assert _local(r.headers["Location"]), (nxt, r.headers["Location"])
        async with s.get("/login", params={"next": "/\t/evil.example"}) as r:
            assert 'name="next" value="/console"' in await r.text()
