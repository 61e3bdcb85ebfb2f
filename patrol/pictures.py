"""Pictures that a hub sent as signed URLs (too large to travel inline) are fetched
afterwards, checked against the sha256 the hub gave, and kept: an inspection's snapshots
and the evidence of a mall's answer to a notice. So the officer sees them even when the
hub's link expires. A picture that cannot be fetched or does not match is not tried again;
the reason is kept with it.

The URL comes from an authenticated hub; only http(s) is fetched, without redirects, with a
size bound and a timeout, and the bytes are kept only when their digest is the one the hub
announced in the same message.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import and_, select, update

from patrol.models import InspectionItemRow, NoticeEvidenceRow
from patrol.store import PatrolStore

log = logging.getLogger(__name__)

MAX_BYTES = 8 * 1024 * 1024
TIMEOUT_S = 20.0
AT_ONCE = 4


async def fetch_picture(http: aiohttp.ClientSession, url: str, sha256: str) -> bytes | str:
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


def _url(detail: object) -> str | None:
    snap = detail.get("snapshot") if isinstance(detail, dict) else None
    url = snap.get("url") if isinstance(snap, dict) else None
    return url if isinstance(url, str) else None


async def _missing(store: PatrolStore, limit: int) -> list[tuple[Any, Any, str, str | None]]:
    """(table, row key condition, sha256, url) of pictures still to fetch."""
    i, ev = InspectionItemRow, NoticeEvidenceRow
    async with store.engine.connect() as conn:
        items = (
            await conn.execute(
                select(i.inspection_id, i.item_id, i.sha256, i.detail)
                .where(
                    i.kind == "camera",
                    i.status == "snapshot",
                    i.picture.is_(None),
                    i.picture_error == "",
                )
                .limit(limit)
            )
        ).all()
        evidence = (
            await conn.execute(
                select(ev.notice_id, ev.sha256, ev.url)
                .where(ev.picture.is_(None), ev.picture_error == "")
                .limit(limit)
            )
        ).all()
    out: list[tuple[Any, Any, str, str | None]] = [
        (
            i,
            and_(i.inspection_id == r.inspection_id, i.item_id == r.item_id),
            r.sha256,
            _url(r.detail),
        )
        for r in items
    ]
    out += [
        (ev, and_(ev.notice_id == r.notice_id, ev.sha256 == r.sha256), r.sha256, r.url or None)
        for r in evidence
    ]
    return out


async def fetch_pictures(store: PatrolStore, limit: int = 16) -> int:
    """Fetch up to ``limit`` pictures of each kind still missing; returns how many were
    stored."""
    todo = await _missing(store, limit)
    if not todo:
        return 0
    gate = asyncio.Semaphore(AT_ONCE)
    stored = 0

    async def one(
        http: aiohttp.ClientSession, table: Any, key: Any, sha: str, url: str | None
    ) -> None:
        nonlocal stored
        async with gate:
            got = await fetch_picture(http, url, sha) if url else "no URL"
        values: dict[str, Any] = (
            {"picture": got} if isinstance(got, bytes) else {"picture_error": got[:200]}
        )
        async with store.serial(), store.engine.begin() as conn:
            await conn.execute(update(table).where(key, table.picture.is_(None)).values(**values))
        if isinstance(got, bytes):
            stored += 1
        else:
            log.info("%s %s: picture not kept (%s)", table.__tablename__, sha[:12], got)

    async with aiohttp.ClientSession() as http, asyncio.TaskGroup() as tg:
        for table, key, sha, url in todo:
            tg.create_task(one(http, table, key, sha, url))
    return stored
