"""Service endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from hub.web.api.common import hub_of, json_reply
from hub.web.routing import Endpoint
from hub.web.schemas import ref


async def h_healthz(request: web.Request) -> web.StreamResponse:
    return json_reply({"status": "ok"})


async def h_readyz(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
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
    return json_reply(body, 200 if body["ready"] else 503)


async def h_metrics(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
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

    return json_reply(document(hub_of(request).config))


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
