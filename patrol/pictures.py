"""Pictures of an inspection that the hub sent as signed URLs (too large to travel inline)
are fetched afterwards, checked against the sha256 the hub gave, and kept with the item, so
the officer sees them even when the hub's link expires. A picture that cannot be fetched
or does not match is not tried again; the reason is kept with the item.

The URL comes from an authenticated hub; only http(s) is fetched, without redirects, with a
size bound and a timeout, and the bytes are kept only when their digest is the one the hub
announced in the same answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import select, update

from patrol.models import InspectionItemRow
from patrol.store import PatrolStore

log = logging.getLogger(__name__)

MAX_BYTES = 8 * 1024 * 1024
TIMEOUT_S = 20.0
AT_ONCE = 4


async def _fetch(http: aiohttp.ClientSession, url: str, sha256: str) -> bytes | str:
    """The picture's bytes, or why not."""
    if urlsplit(url).scheme not in ("http", "https"):
        return "not an http(s) URL"
    try:
        async with asyncio.timeout(TIMEOUT_S), http.get(url, allow_redirects=False) as r:
            if r.status != 200:
                return f"HTTP {r.status}"
            data = bytearray()
            async for chunk in r.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > MAX_BYTES:
                    return "larger than 8 MiB"
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return f"not fetched: {type(exc).__name__}"
    if hashlib.sha256(data).hexdigest() != sha256:
        return "sha256_mismatch"
    return bytes(data)


async def fetch_pictures(store: PatrolStore, limit: int = 16) -> int:
    """Fetch up to ``limit`` pictures still missing; returns how many were stored."""
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    InspectionItemRow.inspection_id,
                    InspectionItemRow.item_id,
                    InspectionItemRow.sha256,
                    InspectionItemRow.detail,
                )
                .where(
                    InspectionItemRow.kind == "camera",
                    InspectionItemRow.status == "snapshot",
                    InspectionItemRow.picture.is_(None),
                    InspectionItemRow.picture_error == "",
                )
                .limit(limit)
            )
        ).all()
    if not rows:
        return 0
    gate = asyncio.Semaphore(AT_ONCE)
    stored = 0

    async def one(http: aiohttp.ClientSession, row: Any) -> None:
        nonlocal stored
        snap = row.detail.get("snapshot") if isinstance(row.detail, dict) else None
        url = snap.get("url") if isinstance(snap, dict) else None
        async with gate:
            got: bytes | str = (
                await _fetch(http, url, row.sha256) if isinstance(url, str) else "no URL"
            )
        values: dict[str, Any] = (
            {"picture": got} if isinstance(got, bytes) else {"picture_error": got[:200]}
        )
        async with store.serial(), store.engine.begin() as conn:
            await conn.execute(
                update(InspectionItemRow)
                .where(
                    InspectionItemRow.inspection_id == row.inspection_id,
                    InspectionItemRow.item_id == row.item_id,
                    InspectionItemRow.picture.is_(None),
                )
                .values(**values)
            )
        if isinstance(got, bytes):
            stored += 1
        else:
            log.info("%s %s: picture not kept (%s)", row.inspection_id, row.item_id, got)

    async with aiohttp.ClientSession() as http, asyncio.TaskGroup() as tg:
        for row in rows:
            tg.create_task(one(http, row))
    return stored
