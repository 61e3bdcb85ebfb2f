"""Pictures that a hub sent as signed URLs (too large to travel inline) are fetched
afterwards, checked against the sha256 the hub gave, and kept: an inspection's snapshots
and the evidence of a mall's answer to a notice. So the officer sees them even when the
hub's link expires. A picture that cannot be fetched or does not match is not tried again;
the reason is kept with it.

The URL comes from a hub, and a hub's credentials may be in the wrong hands: fetched as
it is, it would make the patrol service request any address its network reaches (its own
database, a cloud metadata service, another mall) — server-side request forgery. So a URL
is fetched only when its scheme, host and port are exactly those of the mall's console as
the patrol configuration names it (``malls[].console_url``, the hub's ``http.public_url``);
a mall without that setting gets no picture fetched. The fetch itself is http(s) only,
without redirects, with a size bound and a timeout, and the bytes are kept only when their
digest is the one the hub announced in the same message. A URL refused is recorded with
the picture as "picture not kept: …".
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import and_, select, update

from patrol.config import console_origin
from patrol.models import InspectionItemRow, InspectionRow, NoticeEvidenceRow, NoticeRow
from patrol.store import PatrolStore

log = logging.getLogger(__name__)

MAX_BYTES = 8 * 1024 * 1024
TIMEOUT_S = 20.0
AT_ONCE = 4


NOT_KEPT = "picture not kept: "


def url_refusal(url: str, console_url: str | None) -> str | None:
    """Why ``url`` is not fetched for a mall whose console is ``console_url``, or None."""
    if console_url is None:
        return NOT_KEPT + "the mall's console address is not configured (malls[].console_url)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return NOT_KEPT + "the URL is malformed"
    if parts.scheme not in ("http", "https") or not url.isascii():
        return NOT_KEPT + "not an http(s) URL"
    if parts.username is not None or parts.password is not None:
        return NOT_KEPT + "the URL carries credentials"
    got = (parts.scheme, parts.hostname or "", port or (443 if parts.scheme == "https" else 80))
    if got != console_origin(console_url):
        return NOT_KEPT + "the URL is not on the mall's console address"
    return None


async def fetch_picture(
    http: aiohttp.ClientSession, url: str, sha256: str, console_url: str | None = None
) -> bytes | str:
    """The picture's bytes, or why not."""
    refused = url_refusal(url, console_url)
    if refused is not None:
        return refused
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


Todo = tuple[Any, Any, str, str | None, str]
"""(table, row key condition, sha256, url, site id) of a picture still to fetch."""


async def _missing(store: PatrolStore, limit: int) -> list[Todo]:
    i, ev = InspectionItemRow, NoticeEvidenceRow
    async with store.engine.connect() as conn:
        items = (
            await conn.execute(
                select(i.inspection_id, i.item_id, i.sha256, i.detail, InspectionRow.site_id)
                .join(InspectionRow, InspectionRow.inspection_id == i.inspection_id)
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
                select(ev.notice_id, ev.sha256, ev.url, NoticeRow.site_id)
                .join(NoticeRow, NoticeRow.notice_id == ev.notice_id)
                .where(ev.picture.is_(None), ev.picture_error == "")
                .limit(limit)
            )
        ).all()
    out: list[Todo] = [
        (
            i,
            and_(i.inspection_id == r.inspection_id, i.item_id == r.item_id),
            r.sha256,
            _url(r.detail),
            r.site_id,
        )
        for r in items
    ]
    out += [
        (
            ev,
            and_(ev.notice_id == r.notice_id, ev.sha256 == r.sha256),
            r.sha256,
            r.url or None,
            r.site_id,
        )
        for r in evidence
    ]
    return out


async def fetch_pictures(
    store: PatrolStore, consoles: Mapping[str, str | None], limit: int = 16
) -> int:
    """Fetch up to ``limit`` pictures of each kind still missing, each only from its mall's
    console (``consoles``: site id → console URL); returns how many were stored."""
    todo = await _missing(store, limit)
    if not todo:
        return 0
    gate = asyncio.Semaphore(AT_ONCE)
    stored = 0

    async def one(
        http: aiohttp.ClientSession, table: Any, key: Any, sha: str, url: str | None, site: str
    ) -> None:
        nonlocal stored
        async with gate:
            got = await fetch_picture(http, url, sha, consoles.get(site)) if url else "no URL"
        values: dict[str, Any] = (
            {"picture": got} if isinstance(got, bytes) else {"picture_error": got[:200]}
        )
        async with store.serial(), store.engine.begin() as conn:
            await conn.execute(update(table).where(key, table.picture.is_(None)).values(**values))
        if isinstance(got, bytes):
            stored += 1
        else:
            log.info("%s %s of %s: %s", table.__tablename__, sha[:12], site, got)

    async with aiohttp.ClientSession() as http, asyncio.TaskGroup() as tg:
        for table, key, sha, url, site in todo:
            tg.create_task(one(http, table, key, sha, url, site))
    return stored
