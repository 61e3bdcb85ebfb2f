"""Rectification notices from the police (整改通知): list, read, and the mall's answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.store.writer import now_utc
from hub.web.api.common import deps_of, json_reply, principal
from hub.web.api.params import path, q, strict_obj, written
from hub.web.routing import ARGS, BODY, ApiError, Endpoint, conflict, not_found, unprocessable
from hub.web.schemas import IDENT_PATTERN, array, obj

if TYPE_CHECKING:
    from hub.notices.service import NoticeService

NOTICE_ID = path(
    "notice_id", {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,64}$"}, "Notice id."
)
NOTICE = obj(
    ["notice_id", "state", "open", "overdue", "finding", "deadline", "officer", "steps"],
    notice_id={"type": "string"},
    state={"enum": ["open", "answered", "rejected", "closed"]},
    open={"type": "boolean"},
    overdue={"type": "boolean"},
    finding={"type": "string"},
    deadline={"type": "string", "format": "date-time"},
    officer={"type": "object"},
    steps={"type": "array", "items": {"type": "object"}},
)
RESULT = obj(
    ["notice_id", "state", "changed", "version"],
    notice_id={"type": "string"},
    state={"type": "string"},
    changed={"type": "boolean"},
    version={"type": "integer"},
)


def service_of(request: web.Request) -> NoticeService:
    found = deps_of(request).notices
    if found is None:
        raise ApiError(503, "unavailable", "notices are not running on this hub")
    service: NoticeService = found
    return service


def error_of(exc: Any) -> ApiError:
    """A refused notice step → the HTTP error that says why."""
    if exc.code == "not_found":
        return not_found(exc.message)
    if exc.code == "conflict":
        return conflict(exc.message)
    if exc.code == "unavailable":
        return ApiError(503, "unavailable", exc.message)
    return unprocessable(exc.message)


async def notice_summary(request: web.Request) -> dict[str, Any]:
    """Open notices and their counts, for the console's banner and the compliance page."""
    service = deps_of(request).notices
    if service is None:
        return {"open": 0, "overdue": 0, "answered": 0, "items": []}
    now = now_utc()
    views = await service.list(open_only=True)
    return {
        "open": len(views),
        "overdue": sum(1 for v in views if v.overdue(now)),
        "answered": sum(1 for v in views if v.state == "answered"),
        "items": [v.to_json(now) for v in views],
    }


async def h_notices(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    now = now_utc()
    views = await service.list(open_only=bool(request[ARGS].get("open")))
    return json_reply({"items": [v.to_json(now) for v in views], "counts": await service.counts()})


async def h_notice(request: web.Request) -> web.StreamResponse:
    view = await service_of(request).get(request[ARGS]["notice_id"])
    if view is None:
        raise not_found(f"no notice {request[ARGS]['notice_id']}")
    return json_reply(view.to_json(now_utc()))


async def h_answer(request: web.Request) -> web.StreamResponse:
    from hub.notices.model import NoticeError

    service = service_of(request)
    p = principal(request)
    body = request[BODY]
    try:
        changed = await service.answer(
            request[ARGS]["notice_id"],
            by=p.name,
            actor=p.actor,
            note=body["note"],
            cameras=body.get("cameras", []),
            devices=body.get("devices", []),
        )
    except NoticeError as exc:
        raise error_of(exc) from None
    return json_reply(changed.result())


IDS = {"type": "string", "pattern": IDENT_PATTERN}

ROUTES: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/api/v1/notices",
        h_notices,
        "list_notices",
        "Rectification notices from the police (newest first)",
        "notices",
        "viewer",
        params=(q("open", {"type": "boolean"}, "Only open notices (not closed)."),),
        response=obj(
            ["items", "counts"],
            items=array(NOTICE),
            counts=obj(
                ["open", "overdue", "answered"],
                open={"type": "integer"},
                overdue={"type": "integer"},
                answered={"type": "integer"},
            ),
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/notices/{notice_id}",
        h_notice,
        "get_notice",
        "One rectification notice with every step",
        "notices",
        "viewer",
        params=(NOTICE_ID,),
        response=NOTICE,
    ),
    Endpoint(
        "POST",
        "/api/v1/notices/{notice_id}/answer",
        h_answer,
        "answer_notice",
        "Answer a notice: what was done, with fresh snapshots and device states as evidence",
        "notices",
        "operator",
        description=(
            "Takes a fresh snapshot of each camera in `cameras` and reads the state of each "
            "device in `devices`; nothing is stored when a picture cannot be taken (503) or the "
            "notice does not take an answer now (409: already answered, or closed)."
        ),
        params=(NOTICE_ID,),
        body=strict_obj(
            {
                "note": written(2000),
                "cameras": {"type": "array", "maxItems": 8, "items": IDS, "uniqueItems": True},
                "devices": {"type": "array", "maxItems": 32, "items": IDS, "uniqueItems": True},
            },
            ["note"],
        ),
        response=RESULT,
        errors=(409, 422, 503),
    ),
)
