"""Events: the list and its CSV export, one event's story, acknowledge, close, notes."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from hub.store.writer import Audit, UnknownEvent, iso, now_utc
from hub.web import queries
from hub.web.api.common import deps_of, json_reply, parse_when, principal, via_of
from hub.web.api.params import EVENT_FILTERS, EVENT_ID, LIMIT, NOTE, q, strict_obj, written
from hub.web.routing import ARGS, BODY, Endpoint, bad_request, conflict, not_found
from hub.web.schemas import EVENT_STATES, ref

CSV_MAX_ROWS = 100_000


def event_filter(a: dict[str, Any]) -> queries.EventFilter:
    states = tuple(s for s in (a.get("state") or "").split(",") if s)
    for s in states:
        if s not in EVENT_STATES:
            raise bad_request(f"state {s!r} is not one of {', '.join(EVENT_STATES)}")
    return queries.EventFilter(
        q=a.get("q"),
        kind=a.get("kind"),
        category=a.get("category"),
        priority=a.get("priority"),
        max_priority=a.get("max_priority"),
        states=states,
        floor=a.get("floor"),
        zone=a.get("zone"),
        device=a.get("device"),
        since=parse_when(a.get("since")),
        until=parse_when(a.get("until")),
        test_mode=a.get("test_mode"),
    )


async def h_events(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    a = request[ARGS]
    items, total = await queries.events(
        deps.engine, deps.index, event_filter(a), a["limit"], a["offset"]
    )
    nxt = a["offset"] + len(items)
    return json_reply(
        {
            "items": items,
            "total": total,
            "limit": a["limit"],
            "offset": a["offset"],
            "next_offset": nxt if nxt < total else None,
        }
    )


CSV_COLUMNS = (
    "seq",
    "event_id",
    "received_at",
    "occurred_at",
    "kind",
    "category",
    "priority",
    "device_id",
    "device_name",
    "floor",
    "zone",
    "state",
    "state_by",
    "state_at",
    "disposition",
    "note",
    "test_mode",
    "receipted_at",
)


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A cell starting with a formula character is defused for spreadsheet programs.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return text


async def h_events_csv(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    a = request[ARGS]
    p = principal(request)
    items, _ = await queries.events(deps.engine, deps.index, event_filter(a), CSV_MAX_ROWS, 0)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for e in items:
        w.writerow([_csv_cell(e[c]) for c in CSV_COLUMNS])
    await deps.audit(p.actor, "events.exported", "events", rows=len(items), filters=dict(a))
    stamp = now_utc().strftime("%Y%m%dT%H%M%SZ")
    return web.Response(
        body=("\ufeff" + buf.getvalue()).encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="events-{stamp}.csv"'},
    )


async def h_event(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    story = await queries.event_story(deps.engine, deps.index, request[ARGS]["event_id"])
    if story is None:
        raise not_found("there is no such event")
    return json_reply(story)


async def _event_exists(request: web.Request) -> str:
    event_id = str(request[ARGS]["event_id"])
    if await queries.event_row(deps_of(request).engine, event_id) is None:
        raise not_found("there is no such event")
    return event_id


async def h_acknowledge(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    p = principal(request)
    event_id = await _event_exists(request)
    note = request[BODY].get("note") or None
    try:
        result = await deps.lifecycle.acknowledge(event_id, by=p.name, via=via_of(p), note=note)
    except UnknownEvent:
        raise not_found("there is no such event") from None
    except ValueError as exc:
        raise conflict(getattr(exc, "message", str(exc))) from None
    return json_reply(result)


async def h_close(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    p = principal(request)
    event_id = await _event_exists(request)
    body = request[BODY]
    disposition = body["disposition"].strip()
    note = body.get("note") or None
    if not disposition:
        raise bad_request("a disposition is required")
    try:
        result = await deps.lifecycle.close(
            event_id, by=p.name, via=via_of(p), disposition=disposition, note=note
        )
    except UnknownEvent:
        raise not_found("there is no such event") from None
    except ValueError as exc:
        raise conflict(getattr(exc, "message", str(exc))) from None
    return json_reply(result)


async def h_note(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    p = principal(request)
    event_id = await _event_exists(request)
    text = request[BODY]["text"].strip()
    if not text:
        raise bad_request("the note is empty")
    # Notes are operator records: they live in the audit log's hash chain, where they cannot
    # be altered, and are shown in the event's story.
    await deps.submit(Audit(f"{via_of(p)}:{p.name}", "event.note", event_id, {"text": text}))
    return json_reply({"event_id": event_id, "at": iso(now_utc()), "by": p.name, "text": text}, 201)


ROUTES: tuple[Endpoint, ...] = (
    # events
    Endpoint(
        "GET",
        "/api/v1/events",
        h_events,
        "list_events",
        "Events (newest first)",
        "events",
        "viewer",
        params=(
            *EVENT_FILTERS,
            LIMIT,
            q(
                "offset",
                {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0},
                "Skip this many.",
            ),
        ),
        response=ref("EventPage"),
    ),
    Endpoint(
        "GET",
        "/api/v1/events.csv",
        h_events_csv,
        "export_events",
        "Events as CSV (same filters, up to 100000 rows)",
        "events",
        "viewer",
        params=EVENT_FILTERS,
        media="text/csv",
        response=None,
    ),
    Endpoint(
        "GET",
        "/api/v1/events/{event_id}",
        h_event,
        "get_event",
        "An event's full story",
        "events",
        "viewer",
        params=(EVENT_ID,),
        response=ref("EventStory"),
    ),
    Endpoint(
        "POST",
        "/api/v1/events/{event_id}/acknowledge",
        h_acknowledge,
        "acknowledge_event",
        "Acknowledge",
        "events",
        "operator",
        params=(EVENT_ID,),
        body=strict_obj({"note": NOTE}, []),
        response=ref("EventAction"),
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/v1/events/{event_id}/close",
        h_close,
        "close_event",
        "Close with a disposition",
        "events",
        "operator",
        params=(EVENT_ID,),
        body=strict_obj(
            {
                "disposition": written(64),
                "note": NOTE,
            },
            ["disposition"],
        ),
        response=ref("EventAction"),
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/v1/events/{event_id}/notes",
        h_note,
        "add_event_note",
        "Add a note",
        "events",
        "operator",
        params=(EVENT_ID,),
        body=strict_obj(
            {"text": written(2000)},
            ["text"],
        ),
        status=201,
        response=ref("Note"),
    ),
)
