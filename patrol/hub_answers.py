"""What the hubs answer to inspections and notices, written by the workers.

* The ``inspect`` command's response becomes the inspection's checklist (one row per item,
  the picture's bytes kept when they came inline and their sha256 checked).
* ``<p>/notices/<notice_id>`` (retained, ``mallhub/notice/1``) is mirrored: the highest
  ``version`` wins, so a retained copy read at start or a redelivered older message never
  overwrites a newer state. Every new step the hub reports is audited here too.

Both are checked against the contract's JSON Schemas (docs/schemas/); a message that does
not validate is refused (the worker counts it) and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from patrol.clock import parse_ts
from patrol.models import (
    AuditRow,
    InspectionItemRow,
    InspectionRow,
    NoticeEvidenceRow,
    NoticeRow,
)

log = logging.getLogger(__name__)

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"
NOTICE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """The contract's schema ``docs/schemas/<name>.schema.json``, loaded once."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def schema_error(name: str, body: object) -> str | None:
    """Why ``body`` is not a valid ``name`` message (the first error), or None."""
    err = next(iter(validator(name).iter_errors(body)), None)
    if err is None:
        return None
    where = "/".join(str(p) for p in err.absolute_path) or "(root)"
    return f"{name} schema: {where}: {err.message[:160]}"


def check_notice(site: str, notice_id: str, body: dict[str, Any]) -> str | None:
    """Why a retained notice message is refused, or None."""
    problem = schema_error("notice", body)
    if problem is not None:
        return problem
    if body["notice_id"] != notice_id:
        return "notice_id in the payload differs from the topic"
    if body["site_id"] != site:
        return "site_id in the payload differs from the topic"
    return None


def _insert(conn: AsyncConnection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


async def apply_notice(
    conn: AsyncConnection, site: str, body: dict[str, Any], now: datetime
) -> bool:
    """Mirror one retained notice (already checked); True when it changed the store."""
    notice_id = str(body["notice_id"])
    version = int(body["version"])
    deadline = parse_ts(body["deadline"]) or now
    issued_at = parse_ts(body["issued_at"]) or now
    item = body.get("item") or {}
    await conn.execute(
        _insert(conn, NoticeRow)
        .values(
            notice_id=notice_id,
            site_id=site,
            inspection_id=None,
            item_id=str(item.get("item_id", "")),
            finding=body["finding"],
            deadline=deadline,
            issued_by=str(body["officer"]["name"])[:64],
            issued_by_user="",
            issued_at=issued_at,
            state="sent",
            overdue=False,
            version=0,
            pending="",
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["notice_id"])
    )
    before = (
        await conn.execute(
            select(NoticeRow.version, NoticeRow.hub, NoticeRow.pending).where(
                NoticeRow.notice_id == notice_id, NoticeRow.site_id == site
            )
        )
    ).one_or_none()
    if before is None:
        log.warning("notice %s from %s: the id belongs to another site", notice_id, site)
        return False
    if before.version >= version:
        return False  # an older or repeated copy: keep the newer state
    steps: list[dict[str, Any]] = body["steps"]
    last = steps[-1]["action"] if steps else ""
    pending = before.pending
    if last in ("accepted", "rejected") or body["state"] == "closed":
        pending = ""
    res = await conn.execute(
        update(NoticeRow)
        .where(NoticeRow.notice_id == notice_id, NoticeRow.version < version)
        .values(
            state=body["state"],
            overdue=bool(body["overdue"]),
            version=version,
            hub=body,
            deadline=deadline,
            finding=body["finding"],
            pending=pending,
            updated_at=now,
        )
    )
    if not res.rowcount:
        return False
    seen = len(before.hub.get("steps", [])) if isinstance(before.hub, dict) else 0
    for step in steps[seen:]:
        detail: dict[str, Any] = {"version": version, "n": step["n"], "state": step["state"]}
        for key in ("note", "reason", "request_id"):
            if key in step:
                detail[key] = step[key]
        if "evidence" in step:
            detail["evidence_sha256"] = [s["sha256"] for s in step["evidence"]["snapshots"]]
            await _evidence(conn, notice_id, int(step["n"]), step["evidence"]["snapshots"])
        await conn.execute(
            _insert(conn, AuditRow).values(
                at=now,
                actor=f"{step['via']}:{step['by']}"[:80],
                action=f"notice.{step['action']}",
                target=f"notice:{notice_id}",
                detail=detail,
            )
        )
    return True


async def _evidence(
    conn: AsyncConnection, notice_id: str, step: int, snapshots: list[dict[str, Any]]
) -> None:
    """The answer's pictures: inline ones kept at once (when their sha256 matches), the
    others fetched later from their URL (patrol.pictures)."""
    rows = []
    for snap in snapshots:
        picture, error = None, ""
        data = snap.get("data_base64")
        if isinstance(data, str):
            try:
                picture = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                picture = None
            if picture is None or hashlib.sha256(picture).hexdigest() != snap["sha256"]:
                picture, error = None, "sha256_mismatch"
        rows.append(
            {
                "notice_id": notice_id,
                "sha256": snap["sha256"],
                "step": step,
                "camera_id": str(snap["camera_id"])[:64],
                "taken_at": parse_ts(snap["taken_at"]),
                "content_type": snap["content_type"],
                "url": str(snap.get("url", ""))[:2000],
                "picture": picture,
                "picture_error": error or ("" if picture or snap.get("url") else "no URL"),
            }
        )
    if rows:
        await conn.execute(
            _insert(conn, NoticeEvidenceRow).on_conflict_do_nothing(
                index_elements=["notice_id", "sha256"]
            ),
            rows,
        )


async def apply_notice_response(
    conn: AsyncConnection, command: dict[str, Any], response: dict[str, Any], now: datetime
) -> None:
    """The hub's answer to a ``notice`` command: a refused issue marks the notice refused;
    any refusal clears the pending decision and is kept as ``last_error``."""
    notice_id = command.get("notice_id")
    if not isinstance(notice_id, str):
        return
    if response.get("ok"):
        return
    error = response.get("error") if isinstance(response.get("error"), dict) else {}
    values: dict[str, Any] = {"last_error": error, "pending": "", "updated_at": now}
    stmt = update(NoticeRow).where(NoticeRow.notice_id == notice_id)
    if command.get("action") == "issue":
        await conn.execute(stmt.where(NoticeRow.version == 0).values(state="refused", **values))
        await conn.execute(stmt.where(NoticeRow.version > 0).values(**values))
    else:
        await conn.execute(stmt.values(**values))


def _title(item: dict[str, Any]) -> str:
    kind = item.get("kind")
    if kind == "rule":
        title = item.get("title")
        zh = title.get("zh") if isinstance(title, dict) else ""
        return f"{item.get('rule_id', '')} {zh or ''}".strip()
    if kind == "role":
        return str(item.get("role", ""))
    return str(item.get("name") or item.get("device_id") or "")


def _status(item: dict[str, Any]) -> str:
    kind = item.get("kind")
    if kind == "rule":
        return str(item.get("status", ""))
    if isinstance(item.get("error"), dict):
        return str(item["error"].get("code", "error"))
    if kind == "camera":
        return "snapshot"
    state = item.get("state")
    return str(state.get("state", "")) if isinstance(state, dict) else ""


def item_row(inspection_id: str, n: int, item: dict[str, Any]) -> dict[str, Any]:
    """One checklist row from the hub's item: the picture's bytes apart, checked against
    the sha256 the hub gives (a mismatch is kept as the status ``sha256_mismatch``)."""
    detail = dict(item)
    snap = item.get("snapshot")
    picture: bytes | None = None
    sha = ""
    taken: datetime | None = None
    ctype = ""
    status = _status(item)
    if isinstance(snap, dict):
        snap = dict(snap)
        data = snap.pop("data_base64", None)
        detail["snapshot"] = snap
        sha = str(snap.get("sha256", ""))
        taken = parse_ts(snap.get("taken_at"))
        ctype = str(snap.get("content_type", ""))
        if isinstance(data, str):
            try:
                picture = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                picture = None
            if picture is None or hashlib.sha256(picture).hexdigest() != sha:
                status, picture = "sha256_mismatch", None
    return {
        "inspection_id": inspection_id,
        "item_id": str(item["item_id"])[:160],
        "n": n,
        "kind": str(item.get("kind", ""))[:16],
        "title": _title(item)[:300],
        "status": status[:32],
        "detail": detail,
        "sha256": sha,
        "taken_at": taken,
        "content_type": ctype[:32],
        "picture": picture,
        "picture_error": "",
        "finding": None,
        "note": "",
        "found_by": "",
        "found_at": None,
    }


def slim_response(body: dict[str, Any]) -> dict[str, Any]:
    """A response as kept in ``patrol_commands``: an inspection's items are in their own
    table, so only the rest is kept."""
    result = body.get("result")
    if isinstance(result, dict) and isinstance(result.get("items"), list):
        return {**body, "result": {**result, "items": len(result["items"])}}
    return body


async def apply_inspect_answer(
    conn: AsyncConnection, site: str, request_id: str, body: dict[str, Any], now: datetime
) -> None:
    """The hub's answer to ``inspect``: the checklist, or the hub's reason for refusing.
    An answer that comes after the inspection was recorded as unanswered is still kept
    (``late``); the finding that the hub did not answer in time stays."""
    insp = (
        await conn.execute(
            select(InspectionRow.inspection_id, InspectionRow.state).where(
                InspectionRow.request_id == request_id, InspectionRow.site_id == site
            )
        )
    ).one_or_none()
    if insp is None or insp.state not in ("waiting", "no_answer"):
        return  # not ours, or a redelivery of an answer already applied
    where = (InspectionRow.inspection_id == insp.inspection_id,
             InspectionRow.state == insp.state)  # fmt: skip
    late = insp.state == "no_answer"
    result = body.get("result")
    problem = None
    if not body.get("ok"):
        err = body.get("error")
        problem = err if isinstance(err, dict) else {"code": "error", "message": "refused"}
    elif not isinstance(result, dict):
        problem = {"code": "invalid_answer", "message": "the answer has no result"}
    else:
        reason = schema_error("inspection", result)
        if reason is not None:
            problem = {"code": "invalid_answer", "message": reason}
    if problem is not None or not isinstance(result, dict):
        problem = problem or {}
        await conn.execute(
            update(InspectionRow)
            .where(*where)
            .values(state="refused" if not late else "no_answer", error=problem, answered_at=now)
        )
        if not late:
            # The refusal is an item the officer judges (and may issue a notice on).
            code, message = str(problem.get("code", "")), str(problem.get("message", ""))
            await conn.execute(
                _insert(conn, InspectionItemRow)
                .values(
                    inspection_id=insp.inspection_id,
                    item_id="hub:refused",
                    n=0,
                    kind="hub",
                    title="商场平台拒绝巡查",
                    status=code[:32],
                    detail={"error": problem},
                    sha256="",
                    content_type="",
                    picture_error="",
                    note=message[:2000],
                    found_by="",
                )
                .on_conflict_do_nothing(index_elements=["inspection_id", "item_id"])
            )
        return
    rows = [item_row(insp.inspection_id, n, it) for n, it in enumerate(result["items"], 1)]
    if rows:
        await conn.execute(
            _insert(conn, InspectionItemRow).on_conflict_do_nothing(
                index_elements=["inspection_id", "item_id"]
            ),
            rows,
        )
    await conn.execute(
        update(InspectionRow)
        .where(*where)
        .values(
            state="answered",
            late=late,
            answered_at=now,
            hub_inspection_id=str(result["inspection_id"])[:64],
            hub_started_at=parse_ts(result["started_at"]),
            hub_finished_at=parse_ts(result["finished_at"]),
            compliance=result["compliance"],
        )
    )
