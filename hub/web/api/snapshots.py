"""Snapshot pictures: for the console (signed in) and for the police platform (signed link)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from hub.linkage.snapshots import TokenInvalid, load_or_create_secret, verify_token
from hub.web import queries
from hub.web.api.common import deps_of, file_response
from hub.web.api.params import BIG, path, q
from hub.web.routing import ARGS, ApiError, Endpoint, not_found
from hub.web.state import state_of


async def h_snapshot(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    row = await queries.snapshot(deps.engine, request[ARGS]["snapshot_id"])
    if row is None:
        raise not_found("there is no such snapshot")
    return file_response(deps, row.path, row.content_type, row.sha256)


async def h_snapshot_signed(request: web.Request) -> web.StreamResponse:
    """``/snapshots/{id}?token=`` for the police platform: the token is the authorisation."""
    st = state_of(request)
    deps = st.deps
    snapshot_id = request[ARGS]["snapshot_id"]
    row = await queries.snapshot(deps.engine, snapshot_id)
    if st.snapshot_secret is None:
        st.snapshot_secret = load_or_create_secret(Path(deps.config.storage.data_dir))
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
    return file_response(deps, row.path, row.content_type, row.sha256)


ROUTES: tuple[Endpoint, ...] = (
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
)
