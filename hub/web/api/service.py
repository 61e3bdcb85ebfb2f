"""Service endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from hub.web.api.common import deps_of, json_reply
from hub.web.routing import Endpoint
from hub.web.schemas import ref
from hub.web.state import state_of


async def h_healthz(request: web.Request) -> web.StreamResponse:
    return json_reply({"status": "ok"})


async def h_readyz(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    pending: int | None = None
    oldest: float | None = None
    try:
        pending, oldest = await deps.link.outbox_stats()
        store_ok = deps.writer.healthy
        store_err = deps.writer.last_error
    except Exception as exc:  # the store cannot be read: that is what readiness reports
        store_ok, store_err = False, type(exc).__name__
    link = deps.link.state
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
    return json_reply(body, 200 if body["ready"] else 503)


async def h_metrics(request: web.Request) -> web.StreamResponse:
    data = state_of(request).replies.metrics(deps_of(request).metrics.render)
    return web.Response(
        body=data, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


async def h_openapi(request: web.Request) -> web.StreamResponse:
    return json_reply(state_of(request).openapi)


ROUTES: tuple[Endpoint, ...] = (
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
)
