"""The city overview: pages, the JSON API (``/api/v1``, described by ``/api/v1/openapi.json``)
and the live stream of alarms (server-sent events).

The protections are the hub console's: sessions in memory behind an HttpOnly, SameSite
cookie; a CSRF token (header ``X-CSRF-Token``) and an Origin check on every state-changing
call; a per-account lockout and a per-address login throttle; the same security headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from hub.web.auth import CSRF_HEADER, LoginGuard, SessionStore, csrf_ok
from patrol.auth import Officer, get_officer, login
from patrol.commands import CommandRefused, acknowledge
from patrol.config import PatrolConfig, valid_site_id
from patrol.consumer import LIVE_SUBJECT
from patrol.i18n import LANG_COOKIE, lang_of, strings
from patrol.openapi import openapi_document
from patrol.queries import ALARM_STATES, MALL_SORTS, get_alarm, list_alarms, list_malls
from patrol.store import PatrolStore

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SESSION_COOKIE = "patrol_session"
EVENT_ID_MAX = 64
LIVE_QUEUE = 2000


class ApiError(web.HTTPException):
    def __init__(self, status: int, code: str, message: str, **headers: str) -> None:
        self.status_code = status
        super().__init__(
            text=json.dumps({"error": code, "message": message}, ensure_ascii=False),
            content_type="application/json",
            headers=headers or None,
        )


@dataclass(slots=True)
class State:
    config: PatrolConfig
    store: PatrolStore
    nc: NatsClient
    sessions: SessionStore = field(default_factory=SessionStore)
    guard: LoginGuard = field(default_factory=LoginGuard)
    live: set[asyncio.Queue[str]] = field(default_factory=set)
    tls: bool = False

    @property
    def registry(self) -> dict[str, tuple[str, str]]:
        return {m.site_id: (m.name, m.district) for m in self.config.malls}


STATE = web.AppKey("patrol_state", State)
OFFICER = "patrol_officer"


# --- middlewares -------------------------------------------------------------------------


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        resp = exc
    if not resp.prepared:
        h = resp.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.secure:
            h.setdefault("Strict-Transport-Security", "max-age=31536000")
        if not request.path.startswith("/static/"):
            h.setdefault("Cache-Control", "no-store")
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Under /api every error is JSON, the router's 404/405 and unexpected failures too."""
    api = request.path.startswith("/api/")
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if not api or exc.status < 400:
            raise
        raise ApiError(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason) from None
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("patrol web: %s %s failed", request.method, request.path)
        if api:
            raise ApiError(500, "internal", "internal error (logged)") from None
        raise web.HTTPInternalServerError(text="internal error (logged)") from None


# --- who is asking -------------------------------------------------------------------------


def origin_ok(request: web.Request) -> bool:
    """A browser's Origin (or Referer), when it sends one, must be this host."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return True
    return origin != "null" and urlsplit(origin).netloc == request.host


async def officer_of(request: web.Request) -> tuple[Officer, str] | None:
    """The logged-in officer and the session's CSRF token."""
    st = request.app[STATE]
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > 200:
        return None
    found = st.sessions.get(cookie)
    if found is None:
        return None
    key, session = found
    officer = await get_officer(st.store.engine, session.user_id)
    if officer is None:
        st.sessions.drop(key)
        return None
    return officer, session.csrf_token


async def require(request: web.Request, role: str, *, changes: bool = False) -> Officer:
    got = await officer_of(request)
    if got is None:
        raise ApiError(401, "unauthenticated", "log in first", **{"WWW-Authenticate": "Session"})
    officer, csrf = got
    if not officer.may(role):
        raise ApiError(403, "forbidden", f"this needs the {role} role")
    if changes:
        if not csrf_ok(csrf, request.headers.get(CSRF_HEADER)):
            raise ApiError(403, "csrf", f"the {CSRF_HEADER} header is missing or wrong")
        if not origin_ok(request):
            raise ApiError(403, "csrf", "the request comes from another origin")
    return officer


def _lang(request: web.Request) -> str:
    return lang_of(request.query.get("lang") or request.cookies.get(LANG_COOKIE))


def _address(request: web.Request) -> str:
    return request.remote or "unknown"


async def _json_body(request: web.Request, limit: int = 16 * 1024) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send application/json")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "too_large", f"the body is over {limit} bytes")
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed", "the body must be a JSON object")
    return body


# --- API -----------------------------------------------------------------------------------


async def post_session(request: web.Request) -> web.Response:
    st = request.app[STATE]
    if not origin_ok(request):
        raise ApiError(403, "csrf", "the request comes from another origin")
    address = _address(request)
    body = await _json_body(request)
    name, password = body.get("name"), body.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        raise ApiError(400, "invalid", "name and password are strings")
    wait = st.guard.retry_after(name, address)
    if wait is not None:
        retry = {"Retry-After": str(int(wait))}
        raise ApiError(429, "throttled", "too many failed logins; try again later", **retry)
    delay = st.guard.delay(name)
    if delay:
        await asyncio.sleep(delay)  # an account under attack: each try waits
    officer = await login(st.store.engine, name, password, address)
    if officer is None:
        st.guard.failed(name, address)
        raise ApiError(401, "login_failed", "wrong user name or password")
    st.guard.succeeded(name, address)
    cookie, session = st.sessions.create(officer.id, officer.name)
    resp = web.json_response(
        {"name": officer.name, "role": officer.role, "csrf_token": session.csrf_token}
    )
    resp.set_cookie(
        SESSION_COOKIE, cookie, httponly=True, samesite="Strict", secure=st.tls, path="/"
    )
    return resp


async def delete_session(request: web.Request) -> web.Response:
    await require(request, "officer", changes=True)
    st = request.app[STATE]
    found = st.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
    if found is not None:
        st.sessions.drop(found[0])
    resp = web.json_response({"ok": True})
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


async def get_me(request: web.Request) -> web.Response:
    got = await officer_of(request)
    if got is None:
        raise ApiError(401, "unauthenticated", "log in first")
    o, csrf = got
    return web.json_response(
        {"name": o.name, "display_name": o.display_name, "role": o.role, "csrf_token": csrf}
    )


async def get_malls(request: web.Request) -> web.Response:
    await require(request, "officer")
    st = request.app[STATE]
    q = request.query
    sort = q.get("sort", "site_id")
    if sort not in MALL_SORTS:
        raise ApiError(400, "invalid", f"sort is one of: {', '.join(MALL_SORTS)}")
    order = q.get("order", "asc")
    if order not in ("asc", "desc"):
        raise ApiError(400, "invalid", "order is asc or desc")
    district = q.get("district") or None
    if district is not None and len(district) > 100:
        raise ApiError(400, "invalid", "district is at most 100 characters")
    malls = await list_malls(
        st.store.engine,
        registry=st.registry,
        district=district,
        sort=sort,
        descending=order == "desc",
    )
    return web.json_response({"malls": malls, "count": len(malls)})


async def get_alarms(request: web.Request) -> web.Response:
    await require(request, "officer")
    st = request.app[STATE]
    q = request.query
    state = q.get("state", "open")
    if state not in ALARM_STATES:
        raise ApiError(400, "invalid", f"state is one of: {', '.join(ALARM_STATES)}")
    site = q.get("site_id") or None
    if site is not None and not valid_site_id(site):
        raise ApiError(400, "invalid", "site_id is not a valid site id")
    try:
        limit = int(q.get("limit", "200"))
    except ValueError:
        raise ApiError(400, "invalid", "limit is a whole number") from None
    if not 1 <= limit <= 1000:
        raise ApiError(400, "invalid", "limit is between 1 and 1000")
    sites = None
    district = q.get("district") or None
    if district is not None:
        malls = await list_malls(st.store.engine, registry=st.registry, district=district[:100])
        sites = [m["site_id"] for m in malls]
    alarms = await list_alarms(st.store.engine, state=state, site_id=site, sites=sites, limit=limit)
    return web.json_response({"alarms": alarms, "count": len(alarms)})


async def post_ack(request: web.Request) -> web.Response:
    officer = await require(request, "officer", changes=True)
    st = request.app[STATE]
    event_id = request.match_info["event_id"]
    if not 1 <= len(event_id) <= EVENT_ID_MAX:
        raise ApiError(400, "invalid", "not an event id")
    body = await _json_body(request)
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 500):
        raise ApiError(400, "invalid", "note is a string of at most 500 characters")
    try:
        request_id = await acknowledge(st.store, st.nc, event_id, officer.label, note)
    except CommandRefused as exc:
        status = {"not_found": 404, "conflict": 409}.get(exc.code, 400)
        raise ApiError(status, exc.code, str(exc)) from None
    alarm = await get_alarm(st.store.engine, event_id)
    return web.json_response({"request_id": request_id, "alarm": alarm}, status=202)


async def get_live(request: web.Request) -> web.StreamResponse:
    await require(request, "officer")
    st = request.app[STATE]
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await resp.prepare(request)
    queue: asyncio.Queue[str] = asyncio.Queue(LIVE_QUEUE)
    st.live.add(queue)
    try:
        await resp.write(b": connected\n\n")
        while True:
            try:
                async with asyncio.timeout(15):
                    chunk = await queue.get()
            except TimeoutError:
                chunk = ": keep-alive\n\n"
            await resp.write(chunk.encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        st.live.discard(queue)
    return resp


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def fan_out(st: State, msg: Msg) -> None:
    """A worker's batch as server-sent events: ``alarm`` per new alarm, ``state`` per state
    change, ``malls`` when any mall's summary changed."""
    try:
        body = json.loads(msg.data)
    except ValueError:
        return
    chunks = []
    for e in body.get("events", []):
        if e.get("category") == "alarm":
            chunks.append(f"event: alarm\ndata: {json.dumps(e, ensure_ascii=False)}\n\n")
    for s in body.get("states", []):
        chunks.append(f"event: state\ndata: {json.dumps(s, ensure_ascii=False)}\n\n")
    if body.get("malls"):
        chunks.append(f"event: malls\ndata: {json.dumps(body['malls'])}\n\n")
    for q in list(st.live):
        for c in chunks:
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(c)


# --- pages -----------------------------------------------------------------------------------


def _page(lang: str, title: str, body: str, script: str | None = None) -> web.Response:
    t = strings(lang)
    data = html.escape(json.dumps(t, ensure_ascii=False))
    js = f'<script src="/static/{script}" defer></script>' if script else ""
    doc = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · {html.escape(t['app'])}</title>"
        f'<link rel="stylesheet" href="/static/patrol.css">{js}</head>'
        f'<body data-strings="{data}" data-lang="{lang}">{body}</body></html>'
    )
    return web.Response(text=doc, content_type="text/html")


def _lang_link(lang: str) -> str:
    other = "en" if lang == "zh-CN" else "zh-CN"
    return f'<a id="lang" href="?lang={other}">{html.escape(strings(lang)["switch_lang"])}</a>'


async def page_login(request: web.Request) -> web.Response:
    lang = _lang(request)
    t = strings(lang)
    body = (
        f'<main class="login"><h1>{html.escape(t["app"])}</h1>'
        f'<form id="login-form"><label>{html.escape(t["user"])}'
        f'<input name="name" id="name" autocomplete="username" required></label>'
        f'<label>{html.escape(t["password"])}<input name="password" id="password" '
        f'type="password" autocomplete="current-password" required></label>'
        f'<button type="submit" id="login">{html.escape(t["login"])}</button>'
        f'<p id="login-error" role="alert"></p></form>{_lang_link(lang)}</main>'
    )
    resp = _page(lang, t["login"], body, "login.js")
    if "lang" in request.query:
        resp.set_cookie(LANG_COOKIE, lang, samesite="Strict", path="/")
    return resp


async def page_overview(request: web.Request) -> web.StreamResponse:
    if await officer_of(request) is None:
        raise web.HTTPFound("/login")
    lang = _lang(request)
    t = strings(lang)

    def th(key: str, sort: str | None = None) -> str:
        attr = f' data-sort="{sort}" class="sortable"' if sort else ""
        return f"<th{attr}>{html.escape(t[key])}</th>"

    body = (
        f'<header><h1>{html.escape(t["overview"])}</h1><span id="who"></span>'
        f'<span id="live-state">{html.escape(t["live"])}</span>{_lang_link(lang)}'
        f'<button id="logout">{html.escape(t["logout"])}</button></header>'
        f'<main><section id="summary"></section>'
        f"<section><h2>{html.escape(t['alarm_queue'])}</h2>"
        f'<table id="alarms"><thead><tr>{th("priority")}{th("time")}{th("mall")}'
        f"{th('kind')}{th('device')}{th('state')}<th></th></tr></thead><tbody></tbody></table>"
        f'<p id="no-alarms">{html.escape(t["no_alarms"])}</p></section>'
        f"<section><h2>{html.escape(t['mall'])}</h2><label>{html.escape(t['district'])} "
        f'<select id="district"><option value="">{html.escape(t["all_districts"])}</option>'
        f"</select></label>"
        f'<table id="malls"><thead><tr>{th("mall", "name")}{th("district", "district")}'
        f"{th('connection', 'online')}{th('open_alarms', 'open_alarms')}{th('compliance')}"
        f"{th('devices_offline', 'devices_offline')}{th('receipts_outstanding')}</tr></thead>"
        f"<tbody></tbody></table></section></main>"
    )
    resp = _page(lang, t["overview"], body, "overview.js")
    if "lang" in request.query:
        resp.set_cookie(LANG_COOKIE, lang, samesite="Strict", path="/")
    return resp


def create_app(state: State) -> web.Application:
    app = web.Application(middlewares=[security_headers, json_errors], client_max_size=64 * 1024)
    app[STATE] = state
    r = app.router
    r.add_get("/", page_overview)
    r.add_get("/login", page_login)
    r.add_post("/api/v1/session", post_session)
    r.add_delete("/api/v1/session", delete_session)
    r.add_get("/api/v1/me", get_me)
    r.add_get("/api/v1/malls", get_malls)
    r.add_get("/api/v1/alarms", get_alarms)
    r.add_post("/api/v1/alarms/{event_id}/ack", post_ack)
    r.add_get("/api/v1/live", get_live)
    r.add_get("/api/v1/openapi.json", get_openapi)
    r.add_static("/static/", STATIC)
    return app


class WebApp:
    """``async with WebApp(state) as w: w.url`` — listens, and feeds the live stream from
    the workers' notifications on ``patrol.v1.live``."""

    def __init__(self, state: State, host: str, port: int) -> None:
        self.state = state
        self.host = host
        self.requested_port = port
        self.app = create_app(state)
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        self.port = 0
        self._sub: Any = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> WebApp:
        async def on_live(msg: Msg) -> None:
            fan_out(self.state, msg)

        self._sub = await self.state.nc.subscribe(LIVE_SUBJECT, cb=on_live)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.requested_port)
        await site.start()
        addresses = self.runner.addresses
        self.port = int(addresses[0][1]) if addresses else self.requested_port
        log.info("city overview on %s", self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        await self.runner.cleanup()
