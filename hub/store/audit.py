"""The audit log's hash chain: every row's hash covers its content and its predecessor's."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.models import AuditLog

GENESIS = "0" * 64


def chain_hash(
    prev_hash: str, at: datetime, actor: str, action: str, subject: str, detail: dict[str, Any]
) -> str:
    body = json.dumps(
        [prev_hash, at.isoformat(timespec="microseconds"), actor, action, subject, detail],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    rows: int
    ok: bool
    first_bad_id: int | None = None
    reason: str = ""


async def verify_chain(engine: AsyncEngine, batch: int = 5000) -> AuditVerdict:
    """Walk the whole audit log in id order; report the first row whose link is broken."""
    prev = GENESIS
    count = 0
    last_id = 0
    async with engine.connect() as conn:
        while True:
            rows = (
                await conn.execute(
                    select(AuditLog).where(AuditLog.id > last_id).order_by(AuditLog.id).limit(batch)
                )
            ).all()
            if not rows:
                return AuditVerdict(count, True)
            for r in rows:
                if r.prev_hash != prev:
                    return AuditVerdict(
                        count, False, r.id, "previous-hash link does not match the row before"
                    )
                expect = chain_hash(r.prev_hash, r.at, r.actor, r.action, r.subject, r.detail)
                if r.hash != expect:
                    return AuditVerdict(count, False, r.id, "row content does not match its hash")
                prev = r.hash
                last_id = r.id
                count += 1
