"""The city overview: pages, the JSON API (``/api/v1``, described by ``/api/v1/openapi.json``)
and the live stream of alarms (server-sent events). The inspection workflow's API and pages
are in patrol.web_inspect; what both share is in patrol.webbase.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
from typing import Any

from aiohttp import web
from nats.aio.msg import Msg

from patrol.auth import login
from patrol.commands import CommandRefused, acknowledge
from patrol.config import valid_site_id
from patrol.consumer import LIVE_SUBJECT
from patrol.i18n import LANG_COOKIE, strings
from patrol.intake import decode
from patrol.openapi import openapi_document
from patrol.pages_inspect import add_inspection_pages
from patrol.queries import ALARM_STATES, MALL_SORTS, get_alarm, list_alarms, list_malls
from patrol.web_inspect import add_inspection_routes
from patrol.webbase import (
    SESSION_COOKIE,
    STATE,
    STATIC,
    ApiError,
    State,
    address_of,
    bearer_ok,
    json_body,
    json_errors,
    lang_for,
    lang_link,
    officer_of,
    origin_ok,
    page,
    require,
    security_headers,
)

log = logging.getLogger(__name__)

EVENT_ID_MAX = 64
LIVE_QUEUE = 2000

# --- API -----------------------------------------------------------------------------------


async def post_session(request: web.Request) -> web.Response:
    st = request.app[STATE]
    if not origin_ok(request):
        raise ApiError(403, "csrf", "the request comes from another origin")
    address = address_of(request)
    body = await json_body(request)
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
    body = await json_body(request)
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


async def get_metrics(request: web.Request) -> web.Response:
    """Prometheus text for a scraper holding the metrics token (no session: a scraper
    cannot log in); 404 while no token is configured."""
    st = request.app[STATE]
    if st.metrics is None or st.metrics_token is None:
        raise ApiError(404, "not_found", "Not Found")
    if not bearer_ok(st.metrics_token, request.headers.get("Authorization")):
        raise ApiError(
            401,
            "unauthenticated",
            "send Authorization: Bearer <the metrics token>",
            **{"WWW-Authenticate": 'Bearer realm="patrol metrics"'},
        )
    body = await st.metrics.render()
    return web.Response(body=body, headers={"Content-Type": st.metrics.content_type})


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def fan_out(st: State, msg: Msg) -> None:
    """A worker's batch as server-sent events: ``alarm`` per new alarm, ``state`` per state
    change, ``malls`` when any mall's summary changed."""
    chunks = live_chunks(msg.data)
    for q in list(st.live):
        for c in chunks:
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(c)


def live_chunks(data: bytes) -> list[str]:
    """The server-sent events for one ``patrol.v1.live`` notification. Only the patrol
    workers publish there, but the subject is one any client of an account without
    permissions could reach: the payload goes through the same checks as a hub's message
    (size, depth, surrogates, NUL), and anything not shaped as a worker writes it is left out."""
    body = decode(data)
    if isinstance(body, str):
        log.warning("live notification ignored: %s", body)
        return []
    chunks = []
    for e in _objects(body.get("events")):
        if e.get("category") == "alarm":
            chunks.append(f"event: alarm\ndata: {json.dumps(e, ensure_ascii=False)}\n\n")
    for s in _objects(body.get("states")):
        chunks.append(f"event: state\ndata: {json.dumps(s, ensure_ascii=False)}\n\n")
    malls = body.get("malls")
    if isinstance(malls, list) and malls and all(isinstance(m, str) for m in malls):
        chunks.append(f"event: malls\ndata: {json.dumps(malls, ensure_ascii=False)}\n\n")
    return chunks


def _objects(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# --- pages -----------------------------------------------------------------------------------


async def page_login(request: web.Request) -> web.Response:
    lang = lang_for(request)
    t = strings(lang)
    body = (
        f'<main class="login"><h1>{html.escape(t["app"])}</h1>'
        f'<form id="login-form"><label>{html.escape(t["user"])}'
        f'<input name="name" id="name" autocomplete="username" required></label>'
        f'<label>{html.escape(t["password"])}<input name="password" id="password" '
        f'type="password" autocomplete="current-password" required></label>'
        f'<button type="submit" id="login">{html.escape(t["login"])}</button>'
        f'<p id="login-error" role="alert"></p></form>{lang_link(lang)}</main>'
    )
    resp = page(lang, t["login"], body, "login.js")
    if "lang" in request.query:
        resp.set_cookie(LANG_COOKIE, lang, samesite="Strict", path="/")
    return resp


async def page_overview(request: web.Request) -> web.StreamResponse:
    if await officer_of(request) is None:
        raise web.HTTPFound("/login")
    lang = lang_for(request)
    t = strings(lang)

    def th(key: str, sort: str | None = None) -> str:
        attr = f' data-sort="{sort}" class="sortable"' if sort else ""
        return f"<th{attr}>{html.escape(t[key])}</th>"

    body = (
        f"<header><h1>{html.escape(t['overview'])}</h1><nav>"
        f'<a href="/inspections">{html.escape(t["nav_inspections"])}</a>'
        f'<a href="/inspection-results">{html.escape(t["nav_results"])}</a>'
        f'<a href="/notices">{html.escape(t["nav_notices"])}</a>'
        f'<a href="/escalations">{html.escape(t["nav_escalations"])}</a></nav>'
        f'<span id="who"></span>'
        f'<span id="live-state">{html.escape(t["live"])}</span>{lang_link(lang)}'
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
        f"{th('devices_offline', 'devices_offline')}{th('receipts_outstanding')}"
        f"{th('nav_notices')}<th></th>"
        f"</tr></thead>"
        f"<tbody></tbody></table></section></main>"
    )
    resp = page(lang, t["overview"], body, "overview.js")
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
    r.add_get("/metrics", get_metrics)
    add_inspection_routes(r)
    add_inspection_pages(r)
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
