"""REST handlers under ``/api/v1`` and the route table that declares them.

Each handler trusts what the table's guard established: the caller is authenticated, has
the role, passed the CSRF check, and ``request[ARGS]`` / ``request[BODY]`` match the
declared schemas. Writes go through the hub (single store writer), and every action a
person takes lands in the audit log.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.compliance.rules import ATTESTABLE, DRILL_TYPES
from hub.store.writer import Audit, StoreUnavailable, UnknownEvent, UpdateEvent, iso, now_utc
from hub.web import queries
from hub.web.auth import (
    LOCKOUT,
    MAX_PASSWORD,
    MIN_PASSWORD,
    PRELOGIN_COOKIE,
    ROLES,
    SESSION_COOKIE,
    AuthError,
    CreateToken,
    CreateUser,
    LoginFailed,
    LoginSucceeded,
    Principal,
    RevokeToken,
    TouchTokens,
    UpdateUser,
    UserNotFound,
    check_password_policy,
    check_role,
    check_user_name,
    count_admins,
    get_user,
    get_user_by_id,
    hash_password_async,
    list_tokens,
    list_users,
    new_token,
    token_hash,
    user_for_token,
    verify_password_async,
)
from hub.web.routing import (
    ARGS,
    BODY,
    JSON,
    PRINCIPAL,
    ApiError,
    Endpoint,
    Param,
    bad_request,
    conflict,
    not_found,
    unavailable,
    unprocessable,
)
from hub.web.schemas import (
    BOOL,
    EVENT_STATES,
    IDENT_PATTERN,
    USER_PATTERN,
    UUID_PATTERN,
    obj,
    ref,
)
from hub.web.state import WebState, state_of

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)

TOKEN_TOUCH_EVERY_S = 60.0
CSV_MAX_ROWS = 100_000
SSE_HEARTBEAT_S = 15.0


def _hub(request: web.Request) -> Hub:
    return state_of(request).hub


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def via_of(p: Principal) -> str:
    return "console" if p.via == "session" else "api"


# --- authentication --------------------------------------------------------------------------


async def authenticate(request: web.Request, st: WebState) -> Principal | None:
    """The caller from a Bearer token or the session cookie, or None."""
    engine = st.hub.engine
    auth = request.headers.get("Authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        found = await user_for_token(engine, token.strip())
        if found is None:
            return None
        user, token_id = found
        last = st.token_touched.get(token_id)
        now = time.monotonic()
        if last is None or now - last > TOKEN_TOUCH_EVERY_S:
            st.token_touched[token_id] = now
            await st.hub.submit(TouchTokens([token_id]))
        return Principal(user.id, user.name, user.role, "token", token_id=token_id)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > 200:
        return None
    found_s = st.sessions.get(cookie)
    if found_s is None:
        return None
    key, session = found_s
    current = await get_user_by_id(engine, session.user_id)
    if current is None or current.disabled:
        st.sessions.drop(key)
        return None
    return Principal(
        current.id,
        current.name,
        current.role,
        "session",
        session_key=key,
        csrf_token=session.csrf_token,
    )


class LoginRefused(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


async def login(st: WebState, name: str, password: str, address: str) -> tuple[str, Principal]:
    """Check a name and password; returns the new session cookie value and the caller.

    Raises LoginRefused (401 wrong, 429 throttled or locked). The answer for an unknown
    user is the same as for a wrong password, and costs the same time.
    """
    wait = st.throttle.retry_after(address)
    if wait is not None:
        raise LoginRefused(429, "throttled", "too many failed logins from this address", wait)
    found = await get_user(st.hub.engine, name) if len(name) <= 64 else None
    user, stored = found if found is not None else (None, None)
    if user is not None and user.locked(now_utc()):
        assert user.locked_until is not None
        raise LoginRefused(
            429,
            "locked",
            "too many wrong passwords: the account is locked for a while",
            (user.locked_until - now_utc()).total_seconds(),
        )
    ok = await verify_password_async(password[:1024], stored)
    if not ok or user is None or user.disabled:
        st.throttle.failed(address)
        locked_until = await st.hub.submit(LoginFailed(name[:64], address))
        if locked_until is not None:
            raise LoginRefused(
                429,
                "locked",
                "too many wrong passwords: the account is locked for a while",
                LOCKOUT.total_seconds(),
            )
        raise LoginRefused(401, "invalid_credentials", "wrong user name or password", None)
    await st.hub.submit(LoginSucceeded(user.name, address))
    cookie, session = st.sessions.create(user.id, user.name)
    return cookie, Principal(
        user.id, user.name, user.role, "session", csrf_token=session.csrf_token
    )


def set_session_cookie(resp: web.StreamResponse, st: WebState, cookie: str) -> None:
    resp.set_cookie(
        SESSION_COOKIE, cookie, httponly=True, samesite="Strict", secure=st.tls, path="/"
    )
    resp.del_cookie(PRELOGIN_COOKIE, path="/")


def me_json(p: Principal) -> dict[str, Any]:
    return {"name": p.name, "role": p.role, "via": p.via, "csrf_token": p.csrf_token}


async def h_login(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    body = request[BODY]
    try:
        cookie, p = await login(st, body["name"], body["password"], request.remote or "?")
    except LoginRefused as exc:
        headers = {"Retry-After": str(int(exc.retry_after) + 1)} if exc.retry_after else None
        raise ApiError(exc.status, exc.code, exc.message, headers=headers) from None
    resp = _json(me_json(p))
    set_session_cookie(resp, st, cookie)
    return resp


async def h_logout(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    p = principal(request)
    if p.session_key is not None:
        st.sessions.drop(p.session_key)
        await st.hub.audit(p.actor, "logout", f"user:{p.name}")
    resp = _json({"ok": True})
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


async def h_me(request: web.Request) -> web.StreamResponse:
    return _json(me_json(principal(request)))


async def h_password(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    p = principal(request)
    body = request[BODY]
    found = await get_user(st.hub.engine, p.name)
    if found is None or not await verify_password_async(body["current"], found[1]):
        raise ApiError(403, "wrong_password", "the current password is wrong")
    try:
        check_password_policy(body["new"])
    except AuthError as exc:
        raise unprocessable(str(exc)) from None
    h = await hash_password_async(body["new"])
    await st.hub.submit(UpdateUser(p.name, p.actor, password_hash=h))
    return _json({"ok": True})


# --- devices ---------------------------------------------------------------------------------


def _device_or_404(request: web.Request) -> str:
    device_id = request[ARGS]["device_id"]
    if device_id not in _hub(request).index.devices:
        raise not_found(f"there is no device {device_id}")
    return str(device_id)


async def h_devices(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    a = request[ARGS]
    items = await queries.devices(hub.engine, hub.index)
    counts: dict[str, int] = {}
    for d in items:
        counts[d["state"]] = counts.get(d["state"], 0) + 1
    if a.get("floor"):
        items = [d for d in items if d["floor"] == a["floor"]]
    if a.get("zone"):
        items = [d for d in items if d["zone"] == a["zone"]]
    if a.get("type"):
        items = [d for d in items if d["type"] == a["type"]]
    if a.get("state"):
        items = [d for d in items if d["state"] == a["state"]]
    if a.get("not_online"):
        items = [d for d in items if d["state"] != "online"]
    return _json({"items": items, "counts": counts})


async def h_device(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    d = await queries.device(hub.engine, hub.index, _device_or_404(request))
    assert d is not None
    return _json(d)


async def h_probes(request: web.Request) -> web.StreamResponse:
    a = request[ARGS]
    items = await queries.probes(
        _hub(request).engine, _device_or_404(request), a["limit"], a.get("before")
    )
    return _json({"items": items})


async def h_states(request: web.Request) -> web.StreamResponse:
    items = await queries.state_changes(
        _hub(request).engine, _device_or_404(request), request[ARGS]["limit"]
    )
    return _json({"items": items})


async def h_probe_now(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    device_id = _device_or_404(request)
    p = principal(request)
    health = hub.parts.get("health")
    probe_now = getattr(health, "probe_now", None)
    if probe_now is None:
        raise unavailable("the health service is not running")
    await hub.audit(p.actor, "device.probe_now", device_id)
    try:
        result = await probe_now([device_id])
    except LookupError:
        raise conflict(f"{device_id} is not probed (it reports through its panel)") from None
    from hub.web.state import jsonable

    out: dict[str, Any] = {"device_id": device_id, "requested": True}
    res = jsonable(result[0]) if isinstance(result, list) and result else None
    if isinstance(res, dict):
        out["result"] = res
    return _json(out, 202)


async def h_thumbnail(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    device_id = _device_or_404(request)
    row = await queries.latest_camera_snapshot(hub.engine, device_id)
    if row is None:
        raise not_found(f"no picture from {device_id} yet")
    return _file_response(hub, row.path, row.content_type, row.sha256)


def _file_response(hub: Hub, path_text: str, content_type: str, sha256: str) -> web.StreamResponse:
    path = Path(path_text)
    root = (Path(hub.config.storage.data_dir) / "snapshots").resolve()
    try:
        resolved = path.resolve()
    except OSError:
        raise not_found("the picture file is missing") from None
    # Rows are written by the hub itself, but a file outside the snapshot folder is never served.
    if root not in resolved.parents or not resolved.is_file():
        raise not_found("the picture file is missing")
    if content_type not in ("image/jpeg", "image/png"):
        content_type = "application/octet-stream"
    return web.FileResponse(
        resolved,
        headers={
            "Content-Type": content_type,
            "Cache-Control": "private, max-age=60",
            "ETag": f'"{sha256}"',
        },
    )


# --- events ----------------------------------------------------------------------------------


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def event_filter(a: dict[str, Any]) -> queries.EventFilter:
    states = tuple(s for s in (a.get("state") or "").split(",") if s)
    for s in states:
        if s not in EVENT_STATES:
            raise bad_request(f"state {s!r} is not one of {', '.join(EVENT_STATES)}")
    return queries.EventFilter(
        q=a.get("q"),
        kind=a.get("kind"),
        category=a.get("category"),
        priority=a.get("priority"),
        max_priority=a.get("max_priority"),
        states=states,
        floor=a.get("floor"),
        zone=a.get("zone"),
        device=a.get("device"),
        since=_when(a.get("since")),
        until=_when(a.get("until")),
        test_mode=a.get("test_mode"),
    )


async def h_events(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    a = request[ARGS]
    items, total = await queries.events(
        hub.engine, hub.index, event_filter(a), a["limit"], a["offset"]
    )
    nxt = a["offset"] + len(items)
    return _json(
        {
            "items": items,
            "total": total,
            "limit": a["limit"],
            "offset": a["offset"],
            "next_offset": nxt if nxt < total else None,
        }
    )


CSV_COLUMNS = (
    "seq",
    "event_id",
    "received_at",
    "occurred_at",
    "kind",
    "category",
    "priority",
    "device_id",
    "device_name",
    "floor",
    "zone",
    "state",
    "state_by",
    "state_at",
    "disposition",
    "note",
    "test_mode",
    "receipted_at",
)


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A cell starting with a formula character is defused for spreadsheet programs.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return text


async def h_events_csv(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    a = request[ARGS]
    p = principal(request)
    items, _ = await queries.events(hub.engine, hub.index, event_filter(a), CSV_MAX_ROWS, 0)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for e in items:
        w.writerow([_csv_cell(e[c]) for c in CSV_COLUMNS])
    await hub.audit(p.actor, "events.exported", "events", rows=len(items), filters=dict(a))
    stamp = now_utc().strftime("%Y%m%dT%H%M%SZ")
    return web.Response(
        body=("\ufeff" + buf.getvalue()).encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="events-{stamp}.csv"'},
    )


async def h_event(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    story = await queries.event_story(hub.engine, hub.index, request[ARGS]["event_id"])
    if story is None:
        raise not_found("there is no such event")
    return _json(story)


async def _event_exists(request: web.Request) -> str:
    event_id = str(request[ARGS]["event_id"])
    if await queries.event_row(_hub(request).engine, event_id) is None:
        raise not_found("there is no such event")
    return event_id


async def h_acknowledge(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    p = principal(request)
    event_id = await _event_exists(request)
    note = request[BODY].get("note") or None
    lifecycle = hub.parts.get("lifecycle")
    try:
        if lifecycle is not None:
            result = await lifecycle.acknowledge(event_id, by=p.name, via=via_of(p), note=note)
        else:
            result = await hub.acknowledge(event_id, by=p.name, via=via_of(p), note=note)
    except UnknownEvent:
        raise not_found("there is no such event") from None
    except ValueError as exc:
        raise conflict(getattr(exc, "message", str(exc))) from None
    return _json(result)


async def h_close(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    p = principal(request)
    event_id = await _event_exists(request)
    body = request[BODY]
    disposition = body["disposition"].strip()
    note = body.get("note") or None
    if not disposition:
        raise bad_request("a disposition is required")
    lifecycle = hub.parts.get("lifecycle")
    try:
        if lifecycle is not None:
            result = await lifecycle.close(
                event_id, by=p.name, via=via_of(p), disposition=disposition, note=note
            )
        else:
            result = await _close_fallback(hub, event_id, p, disposition, note)
    except UnknownEvent:
        raise not_found("there is no such event") from None
    except ValueError as exc:
        raise conflict(getattr(exc, "message", str(exc))) from None
    return _json(result)


async def _close_fallback(
    hub: Hub, event_id: str, p: Principal, disposition: str, note: str | None
) -> dict[str, Any]:
    """Close without the lifecycle service (it is not running in this hub)."""
    row = await queries.event_row(hub.engine, event_id)
    if row is None:
        raise UnknownEvent(event_id)
    if row.state == "closed":
        return {"event_id": event_id, "state": "closed", "changed": False}
    state: dict[str, Any] = {
        "state": "closed",
        "by": p.name,
        "via": via_of(p),
        "at": iso(now_utc()),
        "disposition": disposition[:64],
    }
    if note:
        state["note"] = note
    await hub.submit(
        UpdateEvent(
            event_id,
            f"{hub.prefix}/updates",
            hub.config.site.id,
            {"state": state},
            actor=f"{via_of(p)}:{p.name}",
            audit_action="event.closed",
        )
    )
    return {"event_id": event_id, "state": "closed", "changed": True}


async def h_note(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    p = principal(request)
    event_id = await _event_exists(request)
    text = request[BODY]["text"].strip()
    if not text:
        raise bad_request("the note is empty")
    # Notes are operator records: they live in the audit log's hash chain, where they cannot
    # be altered, and are shown in the event's story.
    await hub.submit(Audit(f"{via_of(p)}:{p.name}", "event.note", event_id, {"text": text}))
    return _json({"event_id": event_id, "at": iso(now_utc()), "by": p.name, "text": text}, 201)


async def h_snapshot(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    row = await queries.snapshot(hub.engine, request[ARGS]["snapshot_id"])
    if row is None:
        raise not_found("there is no such snapshot")
    return _file_response(hub, row.path, row.content_type, row.sha256)


async def h_snapshot_signed(request: web.Request) -> web.StreamResponse:
    """``/snapshots/{id}?token=`` for the police platform: the token is the authorisation."""
    st = state_of(request)
    hub = st.hub
    snapshot_id = request[ARGS]["snapshot_id"]
    try:
        from hub.linkage.snapshots import TokenInvalid, load_or_create_secret, verify_token
    except ImportError:
        raise not_found("snapshots are not served by this hub") from None
    row = await queries.snapshot(hub.engine, snapshot_id)
    if st.snapshot_secret is None:
        st.snapshot_secret = load_or_create_secret(Path(hub.config.storage.data_dir))
    try:
        verify_token(
            st.snapshot_secret,
            snapshot_id,
            request[ARGS]["token"],
            event_id=row.event_id if row is not None else None,
        )
    except TokenInvalid:
        raise ApiError(403, "bad_token", "the link is not valid or has expired") from None
    if row is None:
        raise not_found("there is no such snapshot")
    return _file_response(hub, row.path, row.content_type, row.sha256)


# --- compliance ------------------------------------------------------------------------------


async def compliance_result(hub: Hub, at: datetime | None) -> Any:
    """The compliance result now (the service's latest) or as of ``at``."""
    from hub.compliance.engine import evaluate
    from hub.compliance.facts import load_facts

    service = hub.parts.get("compliance")
    if at is None:
        latest = getattr(service, "latest", None)
        if latest is not None:
            return latest
    link = None
    if at is None and service is not None and hasattr(service, "_link"):
        link = await service._link()
    facts = await load_facts(hub.engine, hub.config, at, link=link)
    return evaluate(facts)


def _at_from_args(hub: Hub, a: dict[str, Any]) -> datetime | None:
    from hub.compliance.records import end_of_day
    from hub.compliance.rules import local_date

    if a.get("at"):
        t = _when(a["at"])
        assert t is not None
    elif a.get("date"):
        d = date.fromisoformat(a["date"])
        t = end_of_day(hub.config, d)
    else:
        return None
    if t.year < 1970:
        raise unprocessable("the hub has no history before 1970")
    now = now_utc()
    if t > now + timedelta(seconds=1):
        if a.get("date") and date.fromisoformat(a["date"]) == local_date(hub.config, now):
            return None
        raise unprocessable("that moment is in the future")
    return t


async def h_compliance(request: web.Request) -> web.StreamResponse:
    from hub.compliance.report import report_json

    hub = _hub(request)
    result = await compliance_result(hub, _at_from_args(hub, request[ARGS]))
    return _json(report_json(result))


async def h_compliance_html(request: web.Request) -> web.StreamResponse:
    from hub.compliance.report import render_html

    hub = _hub(request)
    a = request[ARGS]
    result = await compliance_result(hub, _at_from_args(hub, a))
    lang = a.get("lang") or hub.config.site.language
    return web.Response(text=render_html(result, lang), content_type="text/html", charset="utf-8")


# --- records ---------------------------------------------------------------------------------


def record_json(r: Any, now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = r.to_json()
    out["overdue"] = bool(
        r.kind == "hazard" and r.closed_at is None and r.due_at is not None and r.due_at < now
    )
    return out


async def h_records(request: web.Request) -> web.StreamResponse:
    from hub.compliance.records import list_records

    items = await list_records(_hub(request).engine, request[ARGS].get("kind"))
    now = now_utc()
    return _json({"items": [record_json(r, now) for r in reversed(items)]})


async def _add_record(request: web.Request, build: Any) -> web.StreamResponse:
    from hub.compliance.records import RecordError

    hub = _hub(request)
    try:
        op = build(hub.config, request[BODY], principal(request).name)
        record_id = await hub.submit(op)
    except RecordError as exc:
        raise unprocessable(str(exc)) from None
    _poke_compliance(hub)
    return _json({"id": record_id}, 201)


def _poke_compliance(hub: Hub) -> None:
    poke = getattr(hub.parts.get("compliance"), "poke", None)
    if poke is not None:
        poke()


async def h_add_drill(request: web.Request) -> web.StreamResponse:
    from hub.compliance.records import new_drill

    return await _add_record(
        request, lambda c, b, by: new_drill(c, b["date"], b["title"], by, b.get("type"))
    )


async def h_add_training(request: web.Request) -> web.StreamResponse:
    from hub.compliance.records import new_training

    return await _add_record(request, lambda c, b, by: new_training(c, b["date"], b["title"], by))


async def h_add_hazard(request: web.Request) -> web.StreamResponse:
    from hub.compliance.records import new_hazard

    return await _add_record(
        request,
        lambda c, b, by: new_hazard(c, b["title"], b["owner"], b["due"], by, b.get("found")),
    )


async def h_add_review(request: web.Request) -> web.StreamResponse:
    from hub.compliance.records import new_review

    return await _add_record(
        request, lambda c, b, by: new_review(c, b.get("date"), b.get("title"), by)
    )


async def h_add_attestation(request: web.Request) -> web.StreamResponse:
    from hub.compliance.records import new_attestation

    return await _add_record(
        request,
        lambda c, b, by: new_attestation(c, b["rule"], by, b["evidence"], b["expires"]),
    )


async def h_close_hazard(request: web.Request) -> web.StreamResponse:
    from hub.compliance.records import CloseHazard, RecordError, RecordNotFound

    hub = _hub(request)
    try:
        closed_at = await hub.submit(
            CloseHazard(
                request[ARGS]["record_id"], principal(request).name, request[BODY].get("note", "")
            )
        )
    except RecordNotFound as exc:
        raise not_found(str(exc)) from None
    except RecordError as exc:
        raise conflict(str(exc)) from None
    _poke_compliance(hub)
    return _json({"id": request[ARGS]["record_id"], "closed_at": iso(closed_at)})


# --- test mode -------------------------------------------------------------------------------


def _testmode(hub: Hub) -> Any:
    tm = hub.parts.get("testmode")
    if tm is None:
        raise unavailable("the test mode service is not running")
    return tm


async def h_test_mode(request: web.Request) -> web.StreamResponse:
    targets = await queries.active_test_targets(_hub(request).engine)
    return _json({"items": [{"target": t, "until": iso(u)} for t, u in sorted(targets.items())]})


def _resolve_target(hub: Hub, target: str) -> str:
    """``device:<id>`` / ``zone:<zone>`` (a bare name: device first, then zone), or 404."""
    from hub.linkage.testmode import TestModeError, resolve_target

    try:
        return resolve_target(hub.config, hub.index, target)
    except TestModeError as exc:
        raise not_found(str(exc)) from None


async def h_test_mode_start(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    p = principal(request)
    body = request[BODY]
    tm = _testmode(hub)
    target = _resolve_target(hub, body["target"])
    try:
        entry = await tm.start(target, body["minutes"], by=p.name, via=via_of(p))
    except ValueError as exc:
        raise unprocessable(str(exc)) from None
    return _json({"target": entry.target, "until": iso(entry.until)}, 201)


async def h_test_mode_stop(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    p = principal(request)
    tm = _testmode(hub)
    target = _resolve_target(hub, request[ARGS]["target"])
    ended = await tm.stop(target, by=p.name, via=via_of(p))
    if not ended:
        raise not_found(f"{target} is not in test mode")
    return _json({"target": target, "until": iso(max(e.ended_at or now_utc() for e in ended))})


# --- users and tokens ------------------------------------------------------------------------


async def h_users(request: web.Request) -> web.StreamResponse:
    users = await list_users(_hub(request).engine)
    return _json({"items": [u.to_json() for u in users]})


async def h_user(request: web.Request) -> web.StreamResponse:
    found = await get_user(_hub(request).engine, request[ARGS]["name"])
    if found is None:
        raise not_found("there is no such user")
    return _json(found[0].to_json())


async def h_add_user(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    body = request[BODY]
    try:
        name = check_user_name(body["name"])
        role = check_role(body["role"])
        check_password_policy(body["password"])
    except AuthError as exc:
        raise unprocessable(str(exc)) from None
    h = await hash_password_async(body["password"])
    try:
        await hub.submit(CreateUser(name, role, h, principal(request).actor))
    except AuthError as exc:
        raise conflict(str(exc)) from None
    found = await get_user(hub.engine, name)
    assert found is not None
    return _json(found[0].to_json(), 201)


async def h_update_user(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    hub = st.hub
    p = principal(request)
    name = request[ARGS]["name"]
    body = request[BODY]
    found = await get_user(hub.engine, name)
    if found is None:
        raise not_found("there is no such user")
    user = found[0]
    demote = "role" in body and body["role"] != "admin"
    disable = body.get("disabled") is True
    if user.name == p.name and (demote or disable):
        raise conflict("you cannot demote or disable yourself")
    last_admin = user.role == "admin" and not user.disabled and (demote or disable)
    if last_admin and await count_admins(hub.engine) <= 1:
        raise conflict("this is the last admin")
    pw_hash = None
    if "password" in body:
        try:
            check_password_policy(body["password"])
        except AuthError as exc:
            raise unprocessable(str(exc)) from None
        pw_hash = await hash_password_async(body["password"])
    try:
        view = await hub.submit(
            UpdateUser(
                name,
                p.actor,
                role=body.get("role"),
                disabled=body.get("disabled"),
                password_hash=pw_hash,
                unlock=bool(body.get("unlock")),
            )
        )
    except UserNotFound:
        raise not_found("there is no such user") from None
    if disable or pw_hash is not None:
        st.sessions.drop_user(user.id)
    return _json(view.to_json())


async def h_tokens(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    user_id = None
    if request[ARGS].get("user"):
        found = await get_user(hub.engine, request[ARGS]["user"])
        if found is None:
            return _json({"items": []})
        user_id = found[0].id
    return _json({"items": [t.to_json() for t in await list_tokens(hub.engine, user_id)]})


async def h_add_token(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    body = request[BODY]
    token = new_token()
    try:
        token_id = await hub.submit(
            CreateToken(body["user"], body["name"], token_hash(token), principal(request).actor)
        )
    except UserNotFound:
        raise not_found("there is no such user") from None
    return _json({"id": token_id, "name": body["name"], "user": body["user"], "token": token}, 201)


async def h_revoke_token(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    token_id = request[ARGS]["token_id"]
    try:
        await hub.submit(RevokeToken(token_id, principal(request).actor))
    except LookupError:
        raise not_found("there is no such token") from None
    tokens = [t for t in await list_tokens(hub.engine) if t.id == token_id]
    return _json(tokens[0].to_json())


async def h_audit(request: web.Request) -> web.StreamResponse:
    a = request[ARGS]
    items = await queries.audit_entries(
        _hub(request).engine,
        actor=a.get("actor"),
        action=a.get("action"),
        subject=a.get("subject"),
        limit=a["limit"],
        before=a.get("before"),
    )
    return _json({"items": items})


# --- live updates (server-sent events) -------------------------------------------------------


async def h_live(request: web.Request) -> web.StreamResponse:
    """One SSE stream per console: ``data:`` lines of JSON, a comment as heartbeat."""
    import asyncio

    st = state_of(request)
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    async with st.live.connect() as client:
        await resp.write(b'retry: 1000\ndata: {"type":"hello"}\n\n')
        while not st.stopping:
            try:
                async with asyncio.timeout(SSE_HEARTBEAT_S):
                    line = await client.queue.get()
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if line is None:
                break
            await resp.write(f"data: {line}\n\n".encode())
    return resp


# --- service endpoints -----------------------------------------------------------------------


async def h_healthz(request: web.Request) -> web.StreamResponse:
    return _json({"status": "ok"})


async def h_readyz(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    pending: int | None = None
    oldest: float | None = None
    try:
        pending, oldest = await hub.police.outbox_stats()
        store_ok = hub.writer.healthy
        store_err = hub.writer.last_error
    except Exception as exc:  # the store cannot be read: that is what readiness reports
        store_ok, store_err = False, type(exc).__name__
    link = hub.police.state
    body = {
        "ready": bool(store_ok and link.connected),
        "store": {"healthy": bool(store_ok), "error": store_err},
        "police": {
            "connected": link.connected,
            "pending": pending,
            "oldest_pending_s": oldest,
            "last_error": link.last_error,
        },
    }
    return _json(body, 200 if body["ready"] else 503)


async def h_metrics(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    metrics = hub.parts.get("metrics")
    render = getattr(metrics, "render", None)
    if render is not None:
        data = render()
        if not isinstance(data, bytes):
            data = await data
    else:
        from prometheus_client import REGISTRY, generate_latest

        data = generate_latest(REGISTRY)
    return web.Response(
        body=data, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


async def h_openapi(request: web.Request) -> web.StreamResponse:
    from hub.web.openapi import document

    return _json(document())


# --- the route table -------------------------------------------------------------------------


def q(name: str, schema: dict[str, Any], description: str, **kw: Any) -> Param:
    return Param(name, "query", schema, description, **kw)


def path(name: str, schema: dict[str, Any], description: str) -> Param:
    return Param(name, "path", schema, description, required=True)


DEVICE_ID = path("device_id", {"type": "string", "pattern": IDENT_PATTERN}, "Device id.")
EVENT_ID = path("event_id", {"type": "string", "pattern": UUID_PATTERN}, "Event id (UUID).")
LIMIT = q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Page size.")
SHORT = {"type": "string", "minLength": 1, "maxLength": 64}
LINE = {"type": "string", "minLength": 1, "maxLength": 500}
#: Years 1970-2999: earlier days cannot be converted to UTC from every time zone.
DAY = {
    "type": "string",
    "format": "date",
    "pattern": r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
}
NOTE = {"type": "string", "maxLength": 2000}
PASSWORD = {"type": "string", "minLength": MIN_PASSWORD, "maxLength": MAX_PASSWORD}
BIG = 10**15


EVENT_FILTERS: tuple[Param, ...] = (
    q("q", {"type": "string", "maxLength": 100}, "Search kind, device, note, event id."),
    q("kind", {"type": "string", "maxLength": 64}, "Kind or kind prefix, e.g. alarm.panic."),
    q("category", {"enum": ["alarm", "fault", "info"]}, "Category."),
    q("priority", {"type": "integer", "minimum": 1, "maximum": 4}, "Exactly this priority."),
    q("max_priority", {"type": "integer", "minimum": 1, "maximum": 4}, "Priority ≤ this."),
    q(
        "state",
        {"type": "string", "pattern": r"^(new|acknowledged|closed)(,(new|acknowledged|closed))*$"},
        "Comma-separated states.",
    ),
    q("floor", {"type": "string", "maxLength": 64}, "Floor of the device."),
    q("zone", {"type": "string", "maxLength": 64}, "Zone of the device."),
    q("device", {"type": "string", "maxLength": 64}, "Device id."),
    q("since", {"type": "string", "format": "date-time"}, "Received at or after."),
    q("until", {"type": "string", "format": "date-time"}, "Received before."),
    q("test_mode", {"type": "boolean"}, "Only test (true) or real (false) events."),
)
COMPLIANCE_AT = (
    q("at", {"type": "string", "format": "date-time"}, "Evaluate as of this moment."),
    q("date", DAY, "Evaluate as of the end of this day (site time zone); `at` wins if both."),
)


def _closed(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    s = obj(required, **props)
    s["additionalProperties"] = False
    return s


#: Endpoints that answer 422 for a well-formed request breaking a rule the schema cannot state.
UNPROCESSABLE = frozenset(
    {
        "change_password",
        "add_drill",
        "add_training",
        "add_hazard",
        "add_review",
        "add_attestation",
        "compliance",
        "compliance_report",
        "start_test_mode",
        "add_user",
        "update_user",
    }
)

_ENDPOINTS: tuple[Endpoint, ...] = (
    # service
    Endpoint(
        "GET", "/healthz", h_healthz, "healthz", "Liveness", "service", None, response=ref("Health")
    ),
    Endpoint(
        "GET",
        "/readyz",
        h_readyz,
        "readyz",
        "Readiness: store and police link",
        "service",
        None,
        response=ref("Ready"),
        extra_responses={503: ("not ready", ref("Ready"))},
    ),
    Endpoint(
        "GET",
        "/metrics",
        h_metrics,
        "metrics",
        "Prometheus metrics",
        "service",
        "viewer",
        media="text/plain",
        response=None,
    ),
    Endpoint(
        "GET",
        "/api/v1/openapi.json",
        h_openapi,
        "openapi",
        "This document",
        "service",
        "viewer",
        response={"type": "object"},
    ),
    # session
    Endpoint(
        "POST",
        "/api/v1/session",
        h_login,
        "login",
        "Log in (sets the session cookie)",
        "session",
        None,
        body=_closed(
            {
                "name": {"type": "string", "minLength": 1, "maxLength": 64},
                "password": {"type": "string", "minLength": 1, "maxLength": 1024},
            },
            ["name", "password"],
        ),
        response=ref("Me"),
        errors=(401, 429),
        description="Wrong passwords are counted per account (locked after 5 in a row) and "
        "per client address; both answer 429 with Retry-After.",
    ),
    Endpoint(
        "DELETE",
        "/api/v1/session",
        h_logout,
        "logout",
        "Log out",
        "session",
        "viewer",
        response=obj(["ok"], ok=BOOL),
    ),
    Endpoint(
        "GET",
        "/api/v1/me",
        h_me,
        "me",
        "Who am I (and the CSRF token)",
        "session",
        "viewer",
        response=ref("Me"),
    ),
    Endpoint(
        "PUT",
        "/api/v1/me/password",
        h_password,
        "change_password",
        "Change my password",
        "session",
        "viewer",
        body=_closed(
            {
                "current": {"type": "string", "maxLength": 1024},
                "new": PASSWORD,
            },
            ["current", "new"],
        ),
        response=obj(["ok"], ok=BOOL),
    ),
    # devices
    Endpoint(
        "GET",
        "/api/v1/devices",
        h_devices,
        "list_devices",
        "Devices with their health",
        "devices",
        "viewer",
        params=(
            q("floor", {"type": "string", "maxLength": 64}, "Only this floor."),
            q("zone", {"type": "string", "maxLength": 64}, "Only this zone."),
            q("type", {"type": "string", "maxLength": 32}, "Only this device type."),
            q("state", {"enum": ["online", "degraded", "offline", "unknown"]}, "Only this state."),
            q("not_online", {"type": "boolean"}, "Only devices that are not online."),
        ),
        response=ref("DeviceList"),
    ),
    Endpoint(
        "GET",
        "/api/v1/devices/{device_id}",
        h_device,
        "get_device",
        "One device",
        "devices",
        "viewer",
        params=(DEVICE_ID,),
        response=ref("Device"),
    ),
    Endpoint(
        "GET",
        "/api/v1/devices/{device_id}/probes",
        h_probes,
        "device_probes",
        "Probe history (newest first)",
        "devices",
        "viewer",
        params=(
            DEVICE_ID,
            LIMIT,
            q(
                "before",
                {"type": "integer", "minimum": 1, "maximum": BIG},
                "Only probes with a smaller id (paging).",
            ),
        ),
        response=obj(["items"], items={"type": "array", "items": ref("Probe")}),
    ),
    Endpoint(
        "GET",
        "/api/v1/devices/{device_id}/states",
        h_states,
        "device_states",
        "State changes (newest first)",
        "devices",
        "viewer",
        params=(DEVICE_ID, LIMIT),
        response=obj(["items"], items={"type": "array", "items": ref("StateChange")}),
    ),
    Endpoint(
        "POST",
        "/api/v1/devices/{device_id}/probe",
        h_probe_now,
        "probe_device",
        "Probe now",
        "devices",
        "technician",
        params=(DEVICE_ID,),
        status=202,
        response=ref("ProbeNow"),
        errors=(409, 503),
    ),
    Endpoint(
        "GET",
        "/api/v1/devices/{device_id}/thumbnail",
        h_thumbnail,
        "device_thumbnail",
        "Latest picture from a camera",
        "devices",
        "viewer",
        params=(DEVICE_ID,),
        media="image/jpeg",
        response=None,
    ),
    # events
    Endpoint(
        "GET",
        "/api/v1/events",
        h_events,
        "list_events",
        "Events (newest first)",
        "events",
        "viewer",
        params=(
            *EVENT_FILTERS,
            LIMIT,
            q(
                "offset",
                {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0},
                "Skip this many.",
            ),
        ),
        response=ref("EventPage"),
    ),
    Endpoint(
        "GET",
        "/api/v1/events.csv",
        h_events_csv,
        "export_events",
        "Events as CSV (same filters, up to 100000 rows)",
        "events",
        "viewer",
        params=EVENT_FILTERS,
        media="text/csv",
        response=None,
    ),
    Endpoint(
        "GET",
        "/api/v1/events/{event_id}",
        h_event,
        "get_event",
        "An event's full story",
        "events",
        "viewer",
        params=(EVENT_ID,),
        response=ref("EventStory"),
    ),
    Endpoint(
        "POST",
        "/api/v1/events/{event_id}/acknowledge",
        h_acknowledge,
        "acknowledge_event",
        "Acknowledge",
        "events",
        "operator",
        params=(EVENT_ID,),
        body=_closed({"note": NOTE}, []),
        response=ref("EventAction"),
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/v1/events/{event_id}/close",
        h_close,
        "close_event",
        "Close with a disposition",
        "events",
        "operator",
        params=(EVENT_ID,),
        body=_closed(
            {
                "disposition": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 64,
                    "pattern": r"\S",
                },
                "note": NOTE,
            },
            ["disposition"],
        ),
        response=ref("EventAction"),
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/v1/events/{event_id}/notes",
        h_note,
        "add_event_note",
        "Add a note",
        "events",
        "operator",
        params=(EVENT_ID,),
        body=_closed(
            {"text": {"type": "string", "minLength": 1, "maxLength": 2000, "pattern": r"\S"}},
            ["text"],
        ),
        status=201,
        response=ref("Note"),
    ),
    Endpoint(
        "GET",
        "/api/v1/snapshots/{snapshot_id}",
        h_snapshot,
        "get_snapshot",
        "A snapshot picture",
        "events",
        "viewer",
        params=(
            path("snapshot_id", {"type": "integer", "minimum": 1, "maximum": BIG}, "Snapshot id."),
        ),
        media="image/jpeg",
        response=None,
    ),
    Endpoint(
        "GET",
        "/snapshots/{snapshot_id}",
        h_snapshot_signed,
        "get_signed_snapshot",
        "A snapshot by signed URL (for the police platform)",
        "events",
        None,
        params=(
            path("snapshot_id", {"type": "integer", "minimum": 1, "maximum": BIG}, "Snapshot id."),
            q(
                "token",
                {"type": "string", "minLength": 1, "maxLength": 512},
                "The signed token from the update message.",
                required=True,
            ),
        ),
        media="image/jpeg",
        response=None,
        errors=(403,),
    ),
    # compliance and records
    Endpoint(
        "GET",
        "/api/v1/compliance",
        h_compliance,
        "compliance",
        "Compliance now, or as of a moment or a day",
        "compliance",
        "viewer",
        params=COMPLIANCE_AT,
        response=ref("Compliance"),
    ),
    Endpoint(
        "GET",
        "/api/v1/compliance/report.html",
        h_compliance_html,
        "compliance_report",
        "Printable compliance report",
        "compliance",
        "viewer",
        params=(*COMPLIANCE_AT, q("lang", {"enum": ["zh-CN", "en"]}, "Language.")),
        media="text/html",
        response=None,
    ),
    Endpoint(
        "GET",
        "/api/v1/records",
        h_records,
        "list_records",
        "Drills, trainings, hazards, reviews and attestations (newest first)",
        "records",
        "viewer",
        params=(
            q(
                "kind",
                {"enum": ["drill", "training", "hazard", "review", "attestation"]},
                "Only this kind.",
            ),
        ),
        response=ref("RecordList"),
    ),
    Endpoint(
        "POST",
        "/api/v1/records/drills",
        h_add_drill,
        "add_drill",
        "Record a drill",
        "records",
        "operator",
        body=_closed(
            {"date": DAY, "title": LINE, "type": {"enum": list(DRILL_TYPES)}},
            ["date", "title"],
        ),
        status=201,
        response=ref("Created"),
    ),
    Endpoint(
        "POST",
        "/api/v1/records/trainings",
        h_add_training,
        "add_training",
        "Record a training",
        "records",
        "operator",
        body=_closed({"date": DAY, "title": LINE}, ["date", "title"]),
        status=201,
        response=ref("Created"),
    ),
    Endpoint(
        "POST",
        "/api/v1/records/hazards",
        h_add_hazard,
        "add_hazard",
        "Register a hazard with owner and deadline",
        "records",
        "operator",
        body=_closed(
            {"title": LINE, "owner": SHORT, "due": DAY, "found": DAY}, ["title", "owner", "due"]
        ),
        status=201,
        response=ref("Created"),
    ),
    Endpoint(
        "POST",
        "/api/v1/records/hazards/{record_id}/close",
        h_close_hazard,
        "close_hazard",
        "Mark a hazard rectified",
        "records",
        "operator",
        params=(
            path("record_id", {"type": "integer", "minimum": 1, "maximum": BIG}, "Record id."),
        ),
        body=_closed({"note": {"type": "string", "maxLength": 500}}, []),
        response=obj(
            ["id", "closed_at"],
            id={"type": "integer"},
            closed_at={"type": "string", "format": "date-time"},
        ),
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/v1/records/reviews",
        h_add_review,
        "add_review",
        "Record the monthly hazard review",
        "records",
        "operator",
        body=_closed({"date": DAY, "title": LINE}, []),
        status=201,
        response=ref("Created"),
    ),
    Endpoint(
        "POST",
        "/api/v1/records/attestations",
        h_add_attestation,
        "add_attestation",
        "Attest a rule the hub cannot measure",
        "records",
        "admin",
        body=_closed(
            {"rule": {"enum": list(ATTESTABLE)}, "evidence": LINE, "expires": DAY},
            ["rule", "evidence", "expires"],
        ),
        status=201,
        response=ref("Created"),
    ),
    # test mode
    Endpoint(
        "GET",
        "/api/v1/test-mode",
        h_test_mode,
        "list_test_mode",
        "Devices and zones in test mode",
        "test mode",
        "viewer",
        response=ref("TestModeList"),
    ),
    Endpoint(
        "POST",
        "/api/v1/test-mode",
        h_test_mode_start,
        "start_test_mode",
        "Put a device or zone (zone:<id>) in test mode",
        "test mode",
        "technician",
        body=_closed(
            {
                "target": {"type": "string", "minLength": 1, "maxLength": 96},
                "minutes": {"type": "number", "exclusiveMinimum": 0, "maximum": 1440},
            },
            ["target", "minutes"],
        ),
        status=201,
        response=ref("TestMode"),
        errors=(404, 503),
    ),
    Endpoint(
        "DELETE",
        "/api/v1/test-mode/{target}",
        h_test_mode_stop,
        "stop_test_mode",
        "End test mode",
        "test mode",
        "technician",
        params=(
            path(
                "target",
                {"type": "string", "pattern": r"^(zone:)?[^/]{1,90}$"},
                "Device id or zone:<id>.",
            ),
        ),
        response=ref("TestMode"),
        errors=(503,),
    ),
    # users, tokens, audit
    Endpoint(
        "GET",
        "/api/v1/users",
        h_users,
        "list_users",
        "Users",
        "users",
        "admin",
        response=ref("UserList"),
    ),
    Endpoint(
        "POST",
        "/api/v1/users",
        h_add_user,
        "add_user",
        "Add a user",
        "users",
        "admin",
        body=_closed(
            {
                "name": {"type": "string", "pattern": USER_PATTERN},
                "role": {"enum": list(ROLES)},
                "password": PASSWORD,
            },
            ["name", "role", "password"],
        ),
        status=201,
        response=ref("User"),
        errors=(409,),
    ),
    Endpoint(
        "GET",
        "/api/v1/users/{name}",
        h_user,
        "get_user",
        "One user",
        "users",
        "admin",
        params=(path("name", {"type": "string", "pattern": USER_PATTERN}, "User name."),),
        response=ref("User"),
    ),
    Endpoint(
        "PATCH",
        "/api/v1/users/{name}",
        h_update_user,
        "update_user",
        "Change role, disable/enable, reset password, unlock",
        "users",
        "admin",
        params=(path("name", {"type": "string", "pattern": USER_PATTERN}, "User name."),),
        body=_closed(
            {
                "role": {"enum": list(ROLES)},
                "disabled": BOOL,
                "password": PASSWORD,
                "unlock": BOOL,
            },
            [],
        ),
        response=ref("User"),
        errors=(409,),
    ),
    Endpoint(
        "GET",
        "/api/v1/tokens",
        h_tokens,
        "list_tokens",
        "API tokens",
        "users",
        "admin",
        params=(q("user", {"type": "string", "maxLength": 64}, "Only this user's."),),
        response=ref("TokenList"),
    ),
    Endpoint(
        "POST",
        "/api/v1/tokens",
        h_add_token,
        "add_token",
        "Create an API token (shown once)",
        "users",
        "admin",
        body=_closed(
            {"user": {"type": "string", "pattern": USER_PATTERN}, "name": SHORT}, ["user", "name"]
        ),
        status=201,
        response=ref("NewToken"),
        errors=(404,),
    ),
    Endpoint(
        "DELETE",
        "/api/v1/tokens/{token_id}",
        h_revoke_token,
        "revoke_token",
        "Revoke an API token",
        "users",
        "admin",
        params=(path("token_id", {"type": "integer", "minimum": 1, "maximum": BIG}, "Token id."),),
        response=ref("Token"),
    ),
    Endpoint(
        "GET",
        "/api/v1/audit",
        h_audit,
        "audit_log",
        "The audit log (newest first)",
        "users",
        "admin",
        params=(
            q("actor", {"type": "string", "maxLength": 128}, "Only this actor."),
            q("action", {"type": "string", "maxLength": 64}, "Only this action."),
            q("subject", {"type": "string", "maxLength": 160}, "Only this subject."),
            LIMIT,
            q("before", {"type": "integer", "minimum": 1, "maximum": BIG}, "Only older entries."),
        ),
        response=ref("AuditList"),
    ),
    # live
    Endpoint(
        "GET",
        "/api/v1/live",
        h_live,
        "live",
        "Live events (server-sent events)",
        "events",
        "viewer",
        media="text/event-stream",
        response=None,
        description="Each `data:` line is JSON with `type` event, update, device_state, "
        "compliance, link or resync (reload everything).",
    ),
)

ENDPOINTS: tuple[Endpoint, ...] = tuple(
    dataclasses.replace(ep, errors=(*ep.errors, 422)) if ep.operation_id in UNPROCESSABLE else ep
    for ep in _ENDPOINTS
)

__all__ = ["ENDPOINTS", "JSON", "LoginRefused", "StoreUnavailable", "authenticate", "login"]
