"""The OpenAPI paths and schemas of the inspection workflow (patrol.web_inspect)."""

from __future__ import annotations

from typing import Any

from patrol.openapi_parts import SESSION, csrf, errors, json_body, path_param, query, resp

_TIME = {"type": ["string", "null"], "format": "date-time"}
_ITEM = {
    "type": "object",
    "required": ["item_id", "n", "kind", "title", "status", "finding"],
    "properties": {
        "item_id": {"type": "string", "description": "camera:…, role:…, device:…, rule:…, hub:…"},
        "n": {"type": "integer"},
        "kind": {"enum": ["camera", "role", "device", "rule", "hub"]},
        "title": {"type": "string"},
        "status": {"type": "string", "description": "What the hub says (state, status, error)"},
        "detail": {"type": "object", "description": "The hub's item, without picture bytes"},
        "sha256": {"type": ["string", "null"]},
        "taken_at": _TIME,
        "content_type": {"type": ["string", "null"]},
        "has_picture": {"type": "boolean"},
        "picture_error": {"type": ["string", "null"]},
        "finding": {"enum": ["pass", "problem", None]},
        "note": {"type": "string"},
        "found_by": {"type": ["string", "null"]},
        "found_at": _TIME,
    },
}
_INSPECTION = {
    "type": "object",
    "required": ["inspection_id", "site_id", "state", "officer", "started_at"],
    "properties": {
        "inspection_id": {"type": "string"},
        "site_id": {"type": "string"},
        "mall": {"type": "string"},
        "district": {"type": "string"},
        "request_id": {"type": "string"},
        "state": {"enum": ["waiting", "answered", "refused", "no_answer", "completed"]},
        "officer": {"type": "string"},
        "scheduled": {"type": "boolean"},
        "started_at": _TIME,
        "due_at": _TIME,
        "answered_at": _TIME,
        "late": {"type": "boolean"},
        "hub_inspection_id": {"type": ["string", "null"]},
        "compliance": {"type": ["object", "null"]},
        "error": {"type": ["object", "null"]},
        "completed_at": _TIME,
        "completed_by": {"type": ["string", "null"]},
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/InspectionItem"}},
        "counts": {"type": "object"},
        "problems": {"type": "integer"},
    },
}
_NOTICE = {
    "type": "object",
    "required": ["notice_id", "site_id", "state", "finding", "deadline", "version"],
    "properties": {
        "notice_id": {"type": "string"},
        "site_id": {"type": "string"},
        "mall": {"type": "string"},
        "district": {"type": "string"},
        "inspection_id": {"type": ["string", "null"]},
        "item_id": {"type": ["string", "null"]},
        "finding": {"type": "string"},
        "deadline": _TIME,
        "issued_by": {"type": "string"},
        "issued_at": _TIME,
        "state": {"enum": ["sent", "refused", "open", "answered", "rejected", "closed"]},
        "overdue": {"type": "boolean"},
        "version": {"type": "integer", "description": "The hub's version applied (0: none yet)"},
        "pending": {"enum": ["accept", "reject", None]},
        "last_error": {"type": ["object", "null"]},
        "escalated_at": _TIME,
        "escalated_to": {"type": ["string", "null"], "description": "The supervisor's user"},
        "steps": {"type": "array", "items": {"type": "object"}},
        "evidence": {
            "type": "array",
            "description": "The pictures of the mall's answers (GET …/evidence/{sha256})",
            "items": {
                "type": "object",
                "properties": {
                    "sha256": {"type": "string"},
                    "step": {"type": "integer"},
                    "camera_id": {"type": "string"},
                    "taken_at": _TIME,
                    "has_picture": {"type": "boolean"},
                    "picture_error": {"type": ["string", "null"]},
                },
            },
        },
        "updated_at": _TIME,
    },
}
INSPECTION_SCHEMAS: dict[str, Any] = {
    "InspectionItem": _ITEM,
    "Inspection": _INSPECTION,
    "Notice": _NOTICE,
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _one(key: str, name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {key: _ref(name)}}


def _many(key: str, name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"count": {"type": "integer"}, key: {"type": "array", "items": _ref(name)}},
    }


def _change(
    summary: str, body: dict[str, Any], ok: str, answer: dict[str, Any], *params: Any
) -> Any:
    return {
        "summary": summary,
        "security": SESSION,
        "parameters": [*params, csrf()],
        "requestBody": json_body(body),
        "responses": {ok: resp("done", answer), **errors(400, 401, 403, 404, 409, 413, 415)},
    }


def _read(summary: str, answer: dict[str, Any], *params: Any) -> Any:
    return {
        "summary": summary,
        "security": SESSION,
        "parameters": list(params),
        "responses": {"200": resp("found", answer), **errors(400, 401, 403, 404)},
    }


_INSP = path_param("inspection_id")
_ITEM_ID = path_param("item_id", 160)
_NOTICE_ID = path_param("notice_id")
_TEXT = {"type": "string", "maxLength": 2000}

INSPECTION_PATHS: dict[str, Any] = {
    "/api/v1/inspections": {
        "post": _change(
            "Start an inspection: the mall's hub gets the inspect command",
            {
                "type": "object",
                "required": ["site_id"],
                "properties": {"site_id": {"type": "string"}},
            },
            "202",
            _one("inspection", "Inspection"),
        ),
        "get": _read(
            "Inspections, newest first",
            _many("inspections", "Inspection"),
            query("site_id", {"type": "string"}),
            query("state", {"enum": ["waiting", "answered", "refused", "no_answer", "completed"]}),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
    },
    "/api/v1/inspections/{inspection_id}": {
        "get": _read("An inspection with its checklist", _one("inspection", "Inspection"), _INSP)
    },
    "/api/v1/inspections/{inspection_id}/items/{item_id}": {
        "put": _change(
            "Record a finding on one item (a problem needs a note)",
            {
                "type": "object",
                "required": ["finding"],
                "properties": {"finding": {"enum": ["pass", "problem"]}, "note": _TEXT},
            },
            "200",
            _one("item", "InspectionItem"),
            _INSP,
            _ITEM_ID,
        )
    },
    "/api/v1/inspections/{inspection_id}/items/{item_id}/picture": {
        "get": {
            "summary": "The item's picture (its sha256 is the item's)",
            "security": SESSION,
            "parameters": [_INSP, _ITEM_ID],
            "responses": {
                "200": {
                    "description": "the picture",
                    "content": {"image/jpeg": {}, "image/png": {}},
                },
                **errors(400, 401, 404),
            },
        }
    },
    "/api/v1/inspections/{inspection_id}/complete": {
        "post": _change(
            "Complete the inspection (rest: pass records the items left as passed)",
            {"type": "object", "properties": {"rest": {"enum": ["pass"]}}},
            "200",
            _one("inspection", "Inspection"),
            _INSP,
        )
    },
    "/api/v1/inspection-results": {
        "get": _read(
            "Inspections per mall or district and month (China time)",
            {
                "type": "object",
                "properties": {"by": {"type": "string"}, "results": {"type": "array"}},
            },
            query("by", {"enum": ["mall", "district"]}),
        )
    },
    "/api/v1/notices": {
        "post": _change(
            "Issue a rectification notice from a problem finding",
            {
                "type": "object",
                "required": ["inspection_id", "item_id", "finding", "deadline"],
                "properties": {
                    "inspection_id": {"type": "string"},
                    "item_id": {"type": "string"},
                    "finding": {**_TEXT, "minLength": 1},
                    "deadline": {"type": "string", "format": "date-time"},
                    "site_id": {"type": "string", "description": "When given, must be the mall's"},
                },
            },
            "202",
            _one("notice", "Notice"),
        ),
        "get": _read(
            "Notices, newest first",
            _many("notices", "Notice"),
            query("state", {"enum": ["open", "sent", "refused", "answered", "rejected", "closed"]}),
            query("site_id", {"type": "string"}),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
    },
    "/api/v1/notices/{notice_id}": {
        "get": _read("A notice with every step", _one("notice", "Notice"), _NOTICE_ID)
    },
    "/api/v1/notices/{notice_id}/evidence/{sha256}": {
        "get": {
            "summary": "A picture of the mall's answer (its digest is sha256)",
            "security": SESSION,
            "parameters": [_NOTICE_ID, path_param("sha256")],
            "responses": {
                "200": {"description": "the picture", "content": {"image/jpeg": {}}},
                **errors(400, 401, 404),
            },
        }
    },
    "/api/v1/notices/{notice_id}/accept": {
        "post": _change(
            "Accept the mall's answer: the notice is closed",
            {"type": "object", "properties": {"note": _TEXT, "site_id": {"type": "string"}}},
            "202",
            _one("notice", "Notice"),
            _NOTICE_ID,
        )
    },
    "/api/v1/notices/{notice_id}/reject": {
        "post": _change(
            "Send the mall's answer back, with a reason",
            {
                "type": "object",
                "required": ["reason"],
                "properties": {"reason": {**_TEXT, "minLength": 1}, "site_id": {"type": "string"}},
            },
            "202",
            _one("notice", "Notice"),
            _NOTICE_ID,
        )
    },
    "/api/v1/escalations": {
        "get": _read(
            "Overdue notices escalated to this supervisor (or to every supervisor); admins see all",
            _many("notices", "Notice"),
        )
    },
}
