"""Live updates for the console (server-sent events)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from hub.web.routing import Endpoint
from hub.web.state import state_of

SSE_HEARTBEAT_S = 15.0


async def h_live(request: web.Request) -> web.StreamResponse:
    """One SSE stream per console: ``data:`` lines of JSON, a comment as heartbeat."""

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


ROUTES: tuple[Endpoint, ...] = (
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
