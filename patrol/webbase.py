"""What every patrol page and API handler shares: the typed app state, errors as JSON, the
security headers, who is asking (session, role, CSRF and Origin checks) and the page frame.

The protections are the hub console's: sessions in memory behind an HttpOnly, SameSite
cookie; a CSRF token (header ``X-CSRF-Token``) and an Origin check on every state-changing
call; a per-account lockout and a per-address login throttle; the same security headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
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

from hub.web.auth import CSRF_HEADER, LoginGuard, SessionStore, csrf_ok
from hub.web.server import add_security_headers
from patrol.auth import Officer, get_officer
from patrol.config import PatrolConfig
from patrol.i18n import LANG_COOKIE, lang_of, strings
from patrol.intake import problem_in
from patrol.metrics import PatrolMetrics
from patrol.store import PatrolStore

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SESSION_COOKIE = "patrol_session"


class ApiError(web.HTTPException):
    """A JSON error: ``{"error": code, "message": English, "message_zh"?: Chinese}``."""

    def __init__(
        self, status: int, code: str, message: str, *, message_zh: str = "", **headers: str
    ) -> None:
        self.status_code = status
        body = {"error": code, "message": message}
        if message_zh:
            body["message_zh"] = message_zh
        super().__init__(
            text=json.dumps(body, ensure_ascii=False),
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
    metrics: PatrolMetrics | None = None
    metrics_token: str | None = None
    """The bearer token of /metrics; None: /metrics answers 404."""

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
        add_security_headers(request, resp, CSP)
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Under /api and /metrics every error is JSON, the router's 404/405 and unexpected
    failures too."""
    api = request.path.startswith(("/api/", "/metrics"))
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


def bearer_ok(expected: str, header: str | None) -> bool:
    """Whether an ``Authorization: Bearer …`` header carries ``expected``, compared in
    constant time (digests, so the length does not show either)."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip() or len(given) > 1024:
        return False
    want = hashlib.sha256(expected.encode()).digest()
    got = hashlib.sha256(given.strip().encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(want, got)


def lang_for(request: web.Request) -> str:
    return lang_of(request.query.get("lang") or request.cookies.get(LANG_COOKIE))


def address_of(request: web.Request) -> str:
    return request.remote or "unknown"


async def json_body(request: web.Request, limit: int = 16 * 1024) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send application/json")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "too_large", f"the body is over {limit} bytes")
    try:
        body = json.loads(raw or b"{}", parse_constant=_no_constant)
    except RecursionError:
        raise ApiError(400, "malformed", "the body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed", "the body must be a JSON object")
    problem = problem_in(body)
    if problem is not None:
        raise ApiError(400, "malformed", f"the body is refused: {problem}")
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def page(lang: str, title: str, body: str, script: str | None = None) -> web.Response:
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


def lang_link(lang: str) -> str:
    other = "en" if lang == "zh-CN" else "zh-CN"
    return f'<a id="lang" href="?lang={other}">{html.escape(strings(lang)["switch_lang"])}</a>'
