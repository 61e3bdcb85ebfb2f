"""Compliance records a person keeps: drills, trainings, hazards, reviews, attestations."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.compliance.records import (
    CloseHazard,
    RecordError,
    RecordNotFound,
    list_records,
    new_attestation,
    new_drill,
    new_hazard,
    new_review,
    new_training,
)
from hub.compliance.rules import ATTESTABLE, DRILL_TYPES
from hub.store.writer import iso, now_utc
from hub.web.api.common import deps_of, json_reply, principal
from hub.web.api.params import BIG, DAY, LINE, SHORT, path, q, strict_obj, written
from hub.web.routing import ARGS, BODY, Endpoint, conflict, not_found, unprocessable
from hub.web.schemas import obj, ref

if TYPE_CHECKING:
    from hub.web.state import WebDeps


def record_json(r: Any, now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = r.to_json()
    out["overdue"] = bool(
        r.kind == "hazard" and r.closed_at is None and r.due_at is not None and r.due_at < now
    )
    return out


async def h_records(request: web.Request) -> web.StreamResponse:
    items = await list_records(deps_of(request).engine, request[ARGS].get("kind"))
    now = now_utc()
    return json_reply({"items": [record_json(r, now) for r in reversed(items)]})


async def _add_record(request: web.Request, build: Any) -> web.StreamResponse:
    deps = deps_of(request)
    try:
        op = build(deps.config, request[BODY], principal(request).name)
        record_id = await deps.submit(op)
    except RecordError as exc:
        raise unprocessable(str(exc)) from None
    _poke_compliance(deps)
    return json_reply({"id": record_id}, 201)


def _poke_compliance(deps: WebDeps) -> None:
    deps.compliance.poke()


async def h_add_drill(request: web.Request) -> web.StreamResponse:
    return await _add_record(
        request, lambda c, b, by: new_drill(c, b["date"], b["title"], by, b.get("type"))
    )


async def h_add_training(request: web.Request) -> web.StreamResponse:
    return await _add_record(request, lambda c, b, by: new_training(c, b["date"], b["title"], by))


async def h_add_hazard(request: web.Request) -> web.StreamResponse:
    return await _add_record(
        request,
        lambda c, b, by: new_hazard(c, b["title"], b["owner"], b["due"], by, b.get("found")),
    )


async def h_add_review(request: web.Request) -> web.StreamResponse:
    return await _add_record(
        request, lambda c, b, by: new_review(c, b.get("date"), b.get("title"), by)
    )


async def h_add_attestation(request: web.Request) -> web.StreamResponse:
    return await _add_record(
        request,
        lambda c, b, by: new_attestation(c, b["rule"], by, b["evidence"], b["expires"]),
    )


async def h_close_hazard(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    try:
        closed_at = await deps.submit(
            CloseHazard(
                request[ARGS]["record_id"], principal(request).name, request[BODY].get("note", "")
            )
        )
    except RecordNotFound as exc:
        raise not_found(str(exc)) from None
    except RecordError as exc:
        raise conflict(str(exc)) from None
    _poke_compliance(deps)
    return json_reply({"id": request[ARGS]["record_id"], "closed_at": iso(closed_at)})


ROUTES: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/api/v1/records",
        h_records,
        "list_records",
        "Drills, trainings, hazards, reviews and attestations (newest first)",
        "records",
        "viewer",
        params=(
            q(
                "kind",
                {"enum": ["drill", "training", "hazard", "review", "attestation"]},
                "Only this kind.",
            ),
        ),
        response=ref("RecordList"),
    ),
    Endpoint(
        "POST",
        "/api/v1/records/drills",
        h_add_drill,
        "add_drill",
        "Record a drill",
        "records",
        "operator",
        body=strict_obj(
            {"date": DAY, "title": LINE, "type": {"enum": list(DRILL_TYPES)}},
            ["date", "title"],
        ),
        status=201,
        response=ref("Created"),
    ),
    Endpoint(
        "POST",
        "/api/v1/records/trainings",
        h_add_training,
        "add_training",
        "Record a training",
        "records",
        "operator",
        body=strict_obj({"date": DAY, "title": LINE}, ["date", "title"]),
        status=201,
        response=ref("Created"),
    ),
    Endpoint(
        "POST",
        "/api/v1/records/hazards",
        h_add_hazard,
        "add_hazard",
        "Register a hazard with owner and deadline",
        "records",
        "operator",
        body=strict_obj(
            {"title": LINE, "owner": SHORT, "due": DAY, "found": DAY}, ["title", "owner", "due"]
        ),
        status=201,
        response=ref("Created"),
    ),
    Endpoint(
        "POST",
        "/api/v1/records/hazards/{record_id}/close",
        h_close_hazard,
        "close_hazard",
        "Mark a hazard rectified",
        "records",
        "operator",
        params=(
            path("record_id", {"type": "integer", "minimum": 1, "maximum": BIG}, "Record id."),
        ),
        body=strict_obj({"note": written(500, required=False)}, []),
        response=obj(
            ["id", "closed_at"],
            id={"type": "integer"},
            closed_at={"type": "string", "format": "date-time"},
        ),
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/v1/records/reviews",
        h_add_review,
        "add_review",
        "Record the monthly hazard review",
        "records",
        "operator",
        body=strict_obj({"date": DAY, "title": LINE}, []),
        status=201,
        response=ref("Created"),
    ),
    Endpoint(
        "POST",
        "/api/v1/records/attestations",
        h_add_attestation,
        "add_attestation",
        "Attest a rule the hub cannot measure",
        "records",
        "admin",
        body=strict_obj(
            {"rule": {"enum": list(ATTESTABLE)}, "evidence": LINE, "expires": DAY},
            ["rule", "evidence", "expires"],
        ),
        status=201,
        response=ref("Created"),
    ),
)
