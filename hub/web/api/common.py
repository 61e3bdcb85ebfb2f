"""What every resource's handlers share: the hub behind a request, the caller, JSON answers,
times in query strings and serving a picture file from the snapshot folder."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.web.auth import Principal
from hub.web.routing import PRINCIPAL, not_found
from hub.web.state import state_of

if TYPE_CHECKING:
    from hub.web.state import WebDeps


def deps_of(request: web.Request) -> WebDeps:
    return state_of(request).deps


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def json_reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def bytes_reply(body: bytes, status: int = 200) -> web.Response:
    """A reply already encoded as JSON (see ``hub.web.replycache``)."""
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


def via_of(p: Principal) -> str:
    return "console" if p.via == "session" else "api"


def parse_when(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def file_response(
    deps: WebDeps, path_text: str, content_type: str, sha256: str
) -> web.StreamResponse:
    path = Path(path_text)
    root = (Path(deps.config.storage.data_dir) / "snapshots").resolve()
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
