"""Server-rendered pages (Jinja2, autoescaped): console, device board, events, compliance,
records, and the login form. Live behaviour is small external JS (no inline scripts)."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select

from hub.compliance.records import end_of_day, list_records, start_of_day
from hub.compliance.report import report_json
from hub.compliance.rules import ATTESTABLE, DRILL_TYPES, local_date, site_tz
from hub.store.models import Snapshot
from hub.store.writer import now_utc
from hub.web import queries
from hub.web.api import (
    LoginRefused,
    authenticate,
    compliance_result,
    event_filter,
    login,
    notice_summary,
    record_json,
    set_session_cookie,
)
from hub.web.auth import CSRF_FIELD, PRELOGIN_COOKIE, SESSION_COOKIE, Principal, csrf_ok
from hub.web.i18n import LANG_COOKIE, LANGS, choose, pick, state_word, word
from hub.web.state import STATE, state_of

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

ENV: web.AppKey[Environment] = web.AppKey("mallhub_jinja", Environment)


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(("html", "j2"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def lang_of(request: web.Request) -> str:
    st = state_of(request)
    return choose(
        request.cookies.get(LANG_COOKIE),
        request.headers.get("Accept-Language"),
        st.deps.config.site.language,
    )


def local_time(request: web.Request, value: str | datetime | None) -> str:
    """An ISO time or datetime in the site's time zone, as people read it."""
    if value is None or value == "":
        return "—"

    t = (
        value
        if isinstance(value, datetime)
        else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    )
    return t.astimezone(site_tz(state_of(request).deps.config)).strftime("%Y-%m-%d %H:%M:%S")


def render(
    request: web.Request,
    template: str,
    p: Principal | None,
    status: int = 200,
    **ctx: Any,
) -> web.Response:
    lang = lang_of(request)
    st = state_of(request)
    words = pick(lang)
    text = (
        request.app[ENV]
        .get_template(template)
        .render(
            t=words,
            word=lambda prefix, value: word(words, prefix, value),
            state_word=lambda state, category=None: state_word(words, state, category),
            lang=lang,
            me=p,
            csrf=p.csrf_token if p is not None else "",
            site=st.deps.config.site,
            path=request.path_qs,
            local=lambda v: local_time(request, v),
            may=lambda role: p is not None and p.may(role),
            static=lambda f: str(request.app.router["static"].url_for(filename=f)),
            **ctx,
        )
    )
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


async def _page_user(request: web.Request) -> Principal:
    st = state_of(request)
    # Pages are for people with a session; API tokens are for machines.
    if request.cookies.get(SESSION_COOKIE) is None:
        raise _to_login(request)
    p = await authenticate(request, st)
    if p is None or p.via != "session":
        raise _to_login(request)
    return p


def _to_login(request: web.Request) -> web.HTTPFound:
    return web.HTTPFound("/login?" + urlencode({"next": request.path_qs}))


def _safe_next(value: str | None) -> str:
    """A local path to go to after login or a language switch, else the console.

    Browsers drop tabs and line breaks from URLs and read a backslash as a slash, so
    ``/\t/evil.example`` is ``//evil.example``: another site. Only printable ASCII without a
    backslash is taken, and what is left must be a path on this host.
    """
    if (
        not value
        or len(value) > 2000
        or not value.isascii()
        or not value.isprintable()
        or any(c in value for c in "\\ \x7f")
    ):
        return "/console"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "/console"
    return value


# --- login, logout, language -----------------------------------------------------------------


async def login_page(request: web.Request) -> web.StreamResponse:
    return _login_form(request, None)


def _login_form(request: web.Request, error: str | None, status: int = 200) -> web.Response:
    st = state_of(request)
    token = secrets.token_urlsafe(24)
    resp = render(
        request,
        "login.html.j2",
        None,
        status=status,
        error=error,
        prelogin=token,
        next=_safe_next(request.query.get("next")),
    )
    resp.set_cookie(
        PRELOGIN_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=st.tls,
        path="/",
        max_age=3600,
    )
    return resp


async def login_submit(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    form = await request.post()
    # Login CSRF: the form must carry the random value we set in a cookie with it.
    if not csrf_ok(request.cookies.get(PRELOGIN_COOKIE), str(form.get(CSRF_FIELD, ""))):
        return _login_form(request, "login_csrf", 403)
    name = str(form.get("name", ""))[:64]
    password = str(form.get("password", ""))[:1024]
    try:
        cookie, _p = await login(st, name, password, request.remote or "?")
    except LoginRefused as exc:
        return _login_form(
            request, "login_locked" if exc.status == 429 else "login_failed", exc.status
        )
    resp = web.HTTPFound(_safe_next(str(form.get("next", ""))))
    set_session_cookie(resp, st, cookie)
    raise resp


async def logout_submit(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    p = await _page_user(request)
    form = await request.post()
    if not csrf_ok(p.csrf_token, str(form.get(CSRF_FIELD, ""))):
        raise web.HTTPForbidden(text="CSRF token missing or wrong")
    if p.session_key:
        st.sessions.drop(p.session_key)
        await st.deps.audit(p.actor, "logout", f"user:{p.name}")
    resp = web.HTTPFound("/login")
    resp.del_cookie(SESSION_COOKIE, path="/")
    raise resp


async def set_lang(request: web.Request) -> web.StreamResponse:
    lang = request.match_info["lang"]
    if lang not in LANGS:
        raise web.HTTPNotFound()
    resp = web.HTTPFound(_safe_next(request.query.get("next")))
    resp.set_cookie(
        LANG_COOKIE,
        lang,
        samesite="Lax",
        path="/",
        max_age=365 * 86400,
        secure=state_of(request).tls,
    )
    raise resp


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console")


# --- pages -----------------------------------------------------------------------------------


def _floors_zones(request: web.Request) -> tuple[list[str], list[str]]:
    deps = state_of(request).deps
    floors = sorted({d.location.floor for d in deps.index.devices.values() if d.location})
    zones = sorted({d.location.zone for d in deps.index.devices.values() if d.location})
    return floors, zones


async def console(request: web.Request) -> web.StreamResponse:
    p = await _page_user(request)
    deps = state_of(request).deps
    items, _ = await queries.events(
        deps.engine,
        deps.index,
        queries.EventFilter(states=("new", "acknowledged"), max_priority=3),
        200,
        0,
    )
    snaps = await _snapshots_for(request, [e["event_id"] for e in items])
    floors, zones = _floors_zones(request)
    return render(
        request,
        "console.html.j2",
        p,
        items=items,
        snaps=snaps,
        floors=floors,
        zones=zones,
        notices=await notice_summary(request),
    )


async def _snapshots_for(request: web.Request, event_ids: list[str]) -> dict[str, list[Any]]:

    deps = state_of(request).deps
    out: dict[str, list[Any]] = {}
    if not event_ids:
        return out
    async with deps.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(Snapshot).where(Snapshot.event_id.in_(event_ids)).order_by(Snapshot.id)
            )
        ).all()
    for r in rows:
        out.setdefault(r.event_id, []).append(queries.snapshot_json(deps.index, r))
    return out


async def devices_page(request: web.Request) -> web.StreamResponse:
    p = await _page_user(request)
    deps = state_of(request).deps
    items = await queries.devices(deps.engine, deps.index)
    groups: OrderedDict[tuple[str, str], list[dict[str, Any]]] = OrderedDict()
    for d in items:
        groups.setdefault((d["floor"] or "—", d["zone"] or "—"), []).append(d)
    counts: dict[str, int] = {}
    for d in items:
        counts[d["state"]] = counts.get(d["state"], 0) + 1
    return render(
        request,
        "devices.html.j2",
        p,
        groups=groups,
        counts=counts,
        not_online=request.query.get("not_online") in ("1", "true", "on"),
    )


def _page_args(request: web.Request) -> dict[str, Any]:
    """The events page's query string → filter arguments (bad values are dropped)."""
    q = request.query
    a: dict[str, Any] = {}
    for key in ("q", "kind", "floor", "zone", "device"):
        v = q.get(key, "").strip()[:100]
        if v:
            a[key] = v
    if q.get("category") in ("alarm", "fault", "info"):
        a["category"] = q["category"]
    if q.get("priority", "") in ("1", "2", "3", "4"):
        a["priority"] = int(q["priority"])
    if q.get("state") in ("new", "acknowledged", "closed"):
        a["state"] = q["state"]
    for key in ("since", "until"):
        v = q.get(key, "")
        try:
            d = date.fromisoformat(v)
        except ValueError:
            continue
        if d.year < 1970:
            continue

        cfg = state_of(request).deps.config
        a[key] = (start_of_day(cfg, d) if key == "since" else end_of_day(cfg, d)).isoformat()
    return a


async def events_page(request: web.Request) -> web.StreamResponse:
    p = await _page_user(request)
    deps = state_of(request).deps
    a = _page_args(request)
    try:
        offset = max(0, min(int(request.query.get("offset", "0")), 10_000_000))
    except ValueError:
        offset = 0
    limit = 50
    items, total = await queries.events(deps.engine, deps.index, event_filter(a), limit, offset)
    form = {
        k: request.query.get(k, "")
        for k in ("q", "category", "priority", "state", "floor", "zone", "since", "until")
    }
    query = {k: v for k, v in form.items() if v}
    floors, zones = _floors_zones(request)
    return render(
        request,
        "events.html.j2",
        p,
        items=items,
        total=total,
        offset=offset,
        limit=limit,
        form=form,
        floors=floors,
        zones=zones,
        csv_url="/api/v1/events.csv?" + urlencode(a),
        prev_url=("?" + urlencode({**query, "offset": max(0, offset - limit)}))
        if offset > 0
        else None,
        next_url=("?" + urlencode({**query, "offset": offset + limit}))
        if offset + limit < total
        else None,
    )


async def event_page(request: web.Request) -> web.StreamResponse:
    p = await _page_user(request)
    deps = state_of(request).deps
    event_id = request.match_info["event_id"]
    story = (
        await queries.event_story(deps.engine, deps.index, event_id)
        if len(event_id) <= 64
        else None
    )
    if story is None:
        return render(request, "error.html.j2", p, status=404, message="not_found")
    return render(request, "event.html.j2", p, s=story, e=story["event"])


async def compliance_page(request: web.Request) -> web.StreamResponse:
    p = await _page_user(request)
    deps = state_of(request).deps
    day_text = request.query.get("date", "")
    at = None
    try:
        day = date.fromisoformat(day_text)
        if day.year < 1970:
            raise ValueError(day_text)
        if day < local_date(deps.config, now_utc()):
            at = end_of_day(deps.config, day)
    except ValueError:
        day_text = ""
    report = report_json(await compliance_result(deps, at))
    return render(
        request,
        "compliance.html.j2",
        p,
        report=report,
        day=day_text,
        notices=await notice_summary(request),
        report_url="/api/v1/compliance/report.html?"
        + urlencode({**({"date": day_text} if day_text else {}), "lang": lang_of(request)}),
    )


async def records_page(request: web.Request) -> web.StreamResponse:
    p = await _page_user(request)
    deps = state_of(request).deps
    now = now_utc()
    rows = [record_json(r, now) for r in reversed(await list_records(deps.engine))]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], []).append(r)
    return render(
        request,
        "records.html.j2",
        p,
        by_kind=by_kind,
        drill_types=DRILL_TYPES,
        attestable=ATTESTABLE,
        today=now.date().isoformat(),
    )


def setup(app: web.Application) -> None:
    app[ENV] = _env()
    r = app.router
    r.add_get("/", index)
    r.add_get("/login", login_page)
    r.add_post("/login", login_submit)
    r.add_post("/logout", logout_submit)
    r.add_get("/lang/{lang}", set_lang)
    r.add_get("/console", console)
    r.add_get("/devices", devices_page)
    r.add_get("/events", events_page)
    r.add_get("/events/{event_id}", event_page)
    r.add_get("/compliance", compliance_page)
    r.add_get("/records", records_page)
    r.add_static("/static", STATIC, name="static", append_version=True)


__all__ = ["STATE", "setup"]
