"""Every endpoint is guarded: 401 without a session or token, 403 with too low a role or
without the CSRF token; wrong passwords throttle the address, never lock the account;
headers and cookies are strict."""

from __future__ import annotations

import re

import aiohttp
from sqlalchemy import select

from hub.store.models import ApiToken, AuditLog, User
from hub.web.api import ENDPOINTS
from hub.web.auth import RANK, ROLES, hash_password, verify_password
from hub.web.routing import Endpoint
from hub.web.state import STATE
from hub.web.throttle import (
    MAX_FAILURES,
    SLOW_AFTER,
    SLOW_MAX_S,
    THROTTLE_WINDOW_S,
    LoginGuard,
)
from tests.web.webtest import PASSWORD, Browserless, WebHub

SAMPLE = {
    "device_id": "cam-gate-1",
    "event_id": "01936c2e-0000-7000-8000-000000000000",
    "snapshot_id": "1",
    "record_id": "1",
    "notice_id": "ZG-1",
    "name": "viewer",
    "token_id": "1",
    "target": "cam-gate-1",
}


def url_of(ep: Endpoint) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], ep.path)


GUARDED = [ep for ep in ENDPOINTS if ep.role is not None]


async def test_every_guarded_endpoint_answers_401_without_credentials(wh: WebHub) -> None:
    assert len(GUARDED) >= 35
    async with aiohttp.ClientSession(wh.url) as s:
        for ep in GUARDED:
            for headers in (
                {},
                {"Authorization": "Bearer mh_not-a-token"},
                {"Cookie": "mallhub_session=forged"},
            ):
                async with s.request(ep.method, url_of(ep), json={}, headers=headers) as r:
                    assert r.status == 401, (ep.method, ep.path, headers, r.status)
                    body = await r.json()
                    assert body["error"] == "unauthenticated"


async def test_too_low_a_role_answers_403(wh: WebHub) -> None:
    checked = 0
    async with aiohttp.ClientSession(wh.url) as s:
        for ep in GUARDED:
            assert ep.role is not None
            lower = [r for r in ROLES if RANK[r] < RANK[ep.role]]
            for role in lower:
                headers = {"Authorization": f"Bearer {wh.tokens[role]}"}
                async with s.request(ep.method, url_of(ep), json={}, headers=headers) as r:
                    assert r.status == 403, (ep.method, ep.path, role, r.status)
                    checked += 1
    assert checked >= 30


async def test_state_changing_request_without_csrf_token_is_403(wh: WebHub) -> None:
    async with Browserless(wh.url) as c:
        assert (await c.login("admin")).status == 200
        changing = [ep for ep in GUARDED if ep.state_changing]
        for ep in changing:
            async with c.session.request(ep.method, url_of(ep), json={}) as r:
                assert r.status == 403, (ep.method, ep.path, r.status)
                assert (await r.json())["error"] == "csrf"
            bad = {"X-CSRF-Token": "wrong"}
            async with c.session.request(ep.method, url_of(ep), json={}, headers=bad) as r:
                assert r.status == 403, (ep.method, ep.path, r.status)
        # With the token the same session gets through (here: a note on an unknown event).
        async with c.session.post(
            f"/api/v1/events/{SAMPLE['event_id']}/notes", json={"text": "x"}, headers=c.headers()
        ) as r:
            assert r.status == 404
        # A cross-site origin is refused even with the token.
        async with c.session.post(
            "/api/v1/records/trainings",
            json={"date": "2020-01-01", "title": "t"},
            headers={**c.headers(), "Origin": "https://evil.example"},
        ) as r:
            assert r.status == 403


def from_address(wh: WebHub, address: str) -> Browserless:
    """A client whose connections come from ``address`` (any 127.x.y.z is loopback)."""
    c = Browserless(wh.url)
    c.session._connector = aiohttp.TCPConnector(local_addr=(address, 0))
    return c


async def _attempts(c: Browserless, name: str, password: str, n: int) -> list[tuple[int, str]]:
    out = []
    for _ in range(n):
        r = await c.login(name, password)
        out.append((r.status, (await r.json())["error"] if r.status != 200 else "ok"))
    return out


async def test_wrong_passwords_throttle_the_address_not_the_account(wh: WebHub) -> None:
    async with from_address(wh, "127.0.0.1") as c:
        fails = await _attempts(c, "admin", "wrong password!", MAX_FAILURES)
        assert fails == [(401, "invalid_credentials")] * MAX_FAILURES
        # From this address even the right password is refused now, with a Retry-After.
        r = await c.login("admin", PASSWORD)
        assert r.status == 429 and (await r.json())["error"] == "throttled"
        assert int(r.headers["Retry-After"]) > 60
        # Other accounts from the same address are not.
        assert (await c.login("viewer")).status == 200
    # The only admin is not locked out: from the monitoring room's own screen they log in.
    async with from_address(wh, "127.0.0.2") as c:
        assert (await c.login("admin")).status == 200
    async with wh.hub.engine.connect() as conn:
        user = (await conn.execute(select(User).where(User.name == "admin"))).one()
        fails_logged = (
            await conn.execute(
                select(AuditLog).where(
                    AuditLog.action == "login.failed", AuditLog.subject == "user:admin"
                )
            )
        ).all()
    assert user.locked_until is None
    assert len(fails_logged) == MAX_FAILURES
    # The audit log never holds the password.
    assert all("wrong password" not in str(f.detail) for f in fails_logged)


async def test_unknown_users_get_the_same_answers_as_real_ones(wh: WebHub) -> None:
    answers = {}
    for address, name in (("127.0.0.3", "operator"), ("127.0.0.4", "nobody")):
        async with from_address(wh, address) as c:
            answers[name] = await _attempts(c, name, "wrong password!", MAX_FAILURES + 2)
    assert answers["operator"] == answers["nobody"]
    assert answers["nobody"][-1] == (429, "throttled")


async def test_an_address_failing_for_many_names_is_throttled(wh: WebHub) -> None:
    wh.hub.web.app[STATE].guard.address_limit = 3
    async with from_address(wh, "127.0.0.5") as c:
        for name in ("nobody", "somebody", "viewer"):
            r = await c.login(name, "whatever it is")
            assert r.status == 401
            assert (await r.json())["error"] == "invalid_credentials"
        r = await c.login("admin", PASSWORD)
        assert r.status == 429 and (await r.json())["error"] == "throttled"
    async with from_address(wh, "127.0.0.6") as c:
        assert (await c.login("admin")).status == 200


def test_an_account_under_attack_from_many_addresses_is_slowed_never_refused() -> None:
    now = [1000.0]
    guard = LoginGuard(clock=lambda: now[0])
    for i in range(SLOW_AFTER):
        assert guard.delay("Admin") == 0
        guard.failed("admin", f"10.0.0.{i}")
    delays = []
    for i in range(20):
        delays.append(guard.delay("ADMIN"))
        guard.failed("admin", f"10.1.0.{i}")
    assert delays[0] > 0 and delays == sorted(delays) and max(delays) == SLOW_MAX_S
    # A fresh address is never refused for the account, however many addresses failed.
    assert guard.retry_after("admin", "192.168.1.10") is None
    # The window passes: no slow-down any more.
    now[0] += THROTTLE_WINDOW_S + 1
    assert guard.delay("admin") == 0
    # An unknown name is treated exactly alike (the guard never asks the store).
    for i in range(SLOW_AFTER + 1):
        guard.failed("ghost", f"10.2.0.{i}")
        guard.failed("admin", f"10.2.0.{i}")
    assert guard.delay("ghost") == guard.delay("admin") > 0


async def test_password_change_is_throttled_and_ends_other_sessions(wh: WebHub) -> None:
    async with Browserless(wh.url) as other, Browserless(wh.url) as me:
        assert (await other.login("operator")).status == 200
        assert (await me.login("operator")).status == 200
        # With a stolen token, the current password cannot be guessed at will.
        token = {"Authorization": f"Bearer {wh.tokens['operator']}"}
        async with aiohttp.ClientSession(wh.url, headers=token) as s:
            for _ in range(MAX_FAILURES):
                body = {"current": "a guess at it", "new": "a new long password"}
                async with s.put("/api/v1/me/password", json=body) as r:
                    assert r.status == 403, await r.text()
            body = {"current": PASSWORD, "new": "a new long password"}
            async with s.put("/api/v1/me/password", json=body) as r:
                assert r.status == 429 and "Retry-After" in r.headers
        wh.hub.web.app[STATE].guard.forget("operator")
        new = "another long password"
        async with me.session.put(
            "/api/v1/me/password", json={"current": PASSWORD, "new": new}, headers=me.headers()
        ) as r:
            assert r.status == 200, await r.text()
        async with me.session.get("/api/v1/me") as r:
            assert r.status == 200  # the session that changed it stays
        async with other.session.get("/api/v1/me") as r:
            assert r.status == 401  # every other one ends


async def test_session_cookie_flags_security_headers_and_logout(wh: WebHub) -> None:
    async with Browserless(wh.url) as c:
        r = await c.login("viewer")
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP in this test; Secure with TLS
        for path in ("/console", "/api/v1/me", "/login"):
            async with c.session.get(path) as page:
                assert page.status == 200
                csp = page.headers["Content-Security-Policy"]
                assert "script-src 'self'" in csp and "unsafe-inline" not in csp
                assert "frame-ancestors 'none'" in csp
                assert page.headers["X-Frame-Options"] == "DENY"
                assert page.headers["X-Content-Type-Options"] == "nosniff"
        async with c.session.delete("/api/v1/session", headers=c.headers()) as out:
            assert out.status == 200
        async with c.session.get("/api/v1/me") as after:
            assert after.status == 401
        async with c.session.get("/console", allow_redirects=False) as page:
            assert page.status == 302 and page.headers["Location"].startswith("/login")


async def test_login_form_needs_its_own_csrf_value(wh: WebHub) -> None:
    async with aiohttp.ClientSession(wh.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        form = {"name": "admin", "password": PASSWORD, "csrf_token": "guess", "next": "/"}
        async with s.post("/login", data=form, allow_redirects=False) as r:
            assert r.status == 403
        async with s.get("/login") as page:
            html = await page.text()
        value = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert value is not None
        form["csrf_token"] = value.group(1)
        form["next"] = "//evil.example/"
        async with s.post("/login", data=form, allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"] == "/console"


async def test_tokens_are_stored_hashed_and_revocable(wh: WebHub) -> None:
    token = wh.tokens["admin"]
    async with wh.hub.engine.connect() as conn:
        hashes = (await conn.execute(select(ApiToken.token_hash))).scalars().all()
    assert token not in hashes and all(len(h) == 64 for h in hashes)
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(wh.url) as s:
        async with s.get("/api/v1/me", headers=auth) as r:
            me = await r.json()
            assert me["name"] == "admin" and me["via"] == "token" and me["csrf_token"] is None
        # A token needs no CSRF header (a browser never sends it by itself).
        async with s.post(
            "/api/v1/tokens", json={"user": "viewer", "name": "scraper"}, headers=auth
        ) as r:
            assert r.status == 201
            new = await r.json()
        viewer = {"Authorization": f"Bearer {new['token']}"}
        async with s.get("/api/v1/devices", headers=viewer) as r:
            assert r.status == 200
        async with s.delete(f"/api/v1/tokens/{new['id']}", headers=auth) as r:
            assert r.status == 200 and (await r.json())["revoked_at"] is not None
        async with s.get("/api/v1/devices", headers=viewer) as r:
            assert r.status == 401
        # Disabling a user ends their tokens too.
        async with s.patch("/api/v1/users/technician", json={"disabled": True}, headers=auth) as r:
            assert r.status == 200 and (await r.json())["disabled"] is True
        async with s.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {wh.tokens['technician']}"}
        ) as r:
            assert r.status == 401
        # An admin cannot lock themselves out.
        async with s.patch("/api/v1/users/admin", json={"role": "viewer"}, headers=auth) as r:
            assert r.status == 409


def test_password_hash_is_salted_scrypt_with_its_parameters() -> None:
    a, b = hash_password("same password"), hash_password("same password")
    assert a != b
    assert a.startswith("scrypt$n=32768,r=8,p=3$")
    assert verify_password("same password", a)
    assert not verify_password("other password", a)
    assert not verify_password("same password", "scrypt$n=99999999,r=8,p=1$AA$AA")
    assert not verify_password("x", "garbage")
