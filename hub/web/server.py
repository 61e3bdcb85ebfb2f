"""The web application: the app factory, its middlewares, and the service the hub starts.

``WebService`` is an async context manager: entering it binds the listener (HTTP, or HTTPS
when the config names a certificate) and starts the task that turns bus messages into live
updates for open consoles; leaving it ends the live streams, then the listener.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from aiohttp import web

from hub.store.writer import StoreUnavailable
from hub.tasks import stop_task
from hub.web import notice_pages, pages, queries
from hub.web.api import ENDPOINTS, authenticate
from hub.web.auth import CSRF_HEADER, csrf_ok
from hub.web.csp import CSP
from hub.web.openapi import document
from hub.web.routing import (
    ARGS,
    BODY,
    PRINCIPAL,
    ApiError,
    Compiled,
    compile_endpoint,
    parse_request,
)
from hub.web.state import STATE, WebState, jsonable

if TYPE_CHECKING:
    from hub.bus import BusMessage
    from hub.site import SiteIndex
    from hub.web.state import WebDeps

log = logging.getLogger(__name__)


def origin_ok(request: web.Request) -> bool:
    """A browser's Origin (or Referer), when it sends one, must be this host."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc == request.host


def guarded(c: Compiled) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The endpoint's handler behind its declared role, CSRF check and request schemas."""
    ep = c.endpoint

    async def handler(request: web.Request) -> web.StreamResponse:
        st = request.app[STATE]
        if ep.role is not None:
            p = await authenticate(request, st)
            if p is None:
                raise ApiError(
                    401,
                    "unauthenticated",
                    "log in or send an API token",
                    headers={"WWW-Authenticate": 'Bearer realm="mallhub"'},
                )
            if not p.may(ep.role):
                raise ApiError(403, "forbidden", f"this needs the {ep.role} role")
            if ep.state_changing and p.via == "session":
                if not csrf_ok(p.csrf_token, request.headers.get(CSRF_HEADER)):
                    raise ApiError(403, "csrf", f"the {CSRF_HEADER} header is missing or wrong")
                if not origin_ok(request):
                    raise ApiError(403, "csrf", "the request comes from another origin")
            request[PRINCIPAL] = p
        elif ep.state_changing and not origin_ok(request):
            raise ApiError(403, "csrf", "the request comes from another origin")
        args, body = await parse_request(request, c)
        request[ARGS] = args
        request[BODY] = body
        return await ep.handler(request)

    handler.__name__ = ep.operation_id
    return handler


def client_went_away(request: web.Request) -> bool:
    """Whether the client's connection is closed (or closing)."""
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def client_gone(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A browser that closes or reloads a page mid-response (a live stream, a download) is
    routine in a monitoring centre: one debug line, not an error with a traceback."""
    try:
        return await handler(request)
    except ConnectionResetError as exc:  # aiohttp's ClientConnectionResetError is one
        if not client_went_away(request):
            raise  # not our client: a device or service the handler spoke to reset
        log.debug("web: client went away during %s %s: %s", request.method, request.path, exc)
        # Nothing can reach the client any more; aiohttp drops this answer as a premature
        # disconnection (at debug level) when it finds the transport closed.
        return web.Response(status=204)


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        resp = exc
    _secure(request, resp)
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


def _secure(request: web.Request, resp: web.StreamResponse) -> None:
    if resp.prepared:
        return
    _add_security_headers(request, resp)


async def _on_prepare(request: web.Request, resp: web.StreamResponse) -> None:
    """Streamed answers (the live SSE stream, files) are prepared inside their handler,
    before the middleware sees them: they get the same headers here."""
    _add_security_headers(request, resp)


def _add_security_headers(request: web.Request, resp: web.StreamResponse) -> None:
    resp.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    add_security_headers(request, resp, CSP)


def add_security_headers(request: web.Request, resp: web.StreamResponse, csp: str) -> None:
    """The headers every answer of a mallhub web app carries (the console's and the police
    side's), each only where the handler did not set its own."""
    h = resp.headers
    h.setdefault("Content-Security-Policy", csp)
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.secure:
        h.setdefault("Strict-Transport-Security", "max-age=31536000")
    if not request.path.startswith("/static/"):
        h.setdefault("Cache-Control", "no-store")


@web.middleware
async def api_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Under /api, /metrics and /snapshots every error is JSON, including the router's 404/405
    and a failure nobody expected (logged, answered 500 without details)."""
    machine = request.path.startswith(("/api/", "/snapshots/", "/metrics", "/readyz"))
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if not machine or exc.status < 400 or exc.content_type == "application/json":
            raise
        body = {"error": exc.reason.lower().replace(" ", "_"), "message": exc.reason}
        raise ApiError(
            exc.status,
            body["error"],
            body["message"],
            headers={k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")},
        ) from None
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and client_went_away(request):
            raise  # the client_gone middleware notes it

        if isinstance(exc, StoreUnavailable):
            log.error("web: store unavailable for %s %s: %s", request.method, request.path, exc)
            if machine:
                raise ApiError(503, "store_unavailable", "the store is not available") from None
            raise web.HTTPServiceUnavailable(text="the store is not available") from None
        log.exception("web: %s %s failed", request.method, request.path)
        if machine:
            raise ApiError(500, "internal", "internal error (logged)") from None
        raise web.HTTPInternalServerError(text="internal error (logged)") from None


def create_app(deps: WebDeps, *, tls: bool = False) -> web.Application:
    """The aiohttp application over ``deps`` (routes from the table, then the pages)."""

    share = deps.share if deps is not None else None
    # Alarms first: outermost, so a read's turn covers everything the middlewares do.
    first = [share.middleware()] if share is not None else []
    app = web.Application(
        middlewares=[*first, client_gone, security_headers, api_errors],
        client_max_size=1024**2,
    )
    config = deps.config if deps is not None else None
    app[STATE] = WebState(deps=deps, tls=tls, openapi=document(config))
    app.on_response_prepare.append(_on_prepare)
    for ep in ENDPOINTS:
        app.router.add_route(ep.method, ep.path, guarded(compile_endpoint(ep, config)))
    pages.setup(app)
    notice_pages.setup(app)

    async def on_shutdown(app: web.Application) -> None:
        st = app[STATE]
        st.stopping = True
        st.live.close_all()

    app.on_shutdown.append(on_shutdown)
    return app


def live_message(index: SiteIndex, msg: BusMessage) -> tuple[str, dict[str, Any]] | None:
    """A bus message as the console wants it, or None to skip it."""
    body = msg.body
    if msg.topic == "event":
        message = getattr(body, "message", None)
        if not isinstance(message, dict):
            return None
        test = bool(message.get("test_mode") or message.get("test"))
        return "event", {"event": queries.event_from_message(index, message, test)}
    if msg.topic == "update":
        if not isinstance(body, dict):
            return None
        state = body.get("state") if isinstance(body.get("state"), dict) else None
        return "update", {
            "event_id": body.get("event_id"),
            "state": state,
            "attachments": len(body.get("attachments") or []),
            "linkage": jsonable(body.get("linkage") or []),
        }
    data = jsonable(body)
    if not isinstance(data, dict):
        data = {"value": data}
    return msg.topic, {"body": data}


class WebService:
    """The hub's web part: ``async with WebService(deps) as web: web.port``."""

    def __init__(self, deps: WebDeps) -> None:
        self.deps = deps
        cfg = deps.config.http
        self.host = cfg.host
        self.requested_port = cfg.port
        self.tls = cfg.tls_cert_file is not None
        # Cookies are Secure when the hub serves HTTPS itself or a TLS proxy sits in front.
        self.app = create_app(deps, tls=self.tls or cfg.secure_cookies)
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        self.port = 0
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    def _ssl(self) -> ssl.SSLContext | None:
        cfg = self.deps.config.http
        if cfg.tls_cert_file is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cfg.tls_cert_file), str(cfg.tls_key_file or cfg.tls_cert_file))
        return ctx

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._fanout(), name="web-live")
        await self._subscribed.wait()
        await self.runner.setup()
        try:
            site = web.TCPSite(self.runner, self.host, self.requested_port, ssl_context=self._ssl())
            await site.start()
            addresses = self.runner.addresses
            self.port = int(addresses[0][1]) if addresses else self.requested_port
        except BaseException:
            await self._stop()
            raise
        log.info("web console on %s", self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        st = self.app[STATE]
        st.stopping = True
        st.live.close_all()
        await self.runner.cleanup()
        await stop_task(self._task)
        self._task = None

    async def _fanout(self) -> None:
        live = self.app[STATE].live
        async with self.deps.bus.subscribe("web", maxsize=5000) as sub:
            self._subscribed.set()
            async for msg in sub:
                if not live.clients:
                    continue  # nobody watching: not worth building (an alarm burst's cost)
                try:
                    item = live_message(self.deps.index, msg)
                except Exception:  # one odd message must not stop the consoles' updates
                    log.exception("web: cannot show bus message %s", msg.topic)
                    continue
                if item is not None:
                    live.publish(*item)


__all__ = ["WebService", "create_app", "json"]
