"""The OpenAPI 3.1 document of the patrol service's JSON API."""

from __future__ import annotations

from typing import Any

from patrol.openapi_inspect import INSPECTION_PATHS, INSPECTION_SCHEMAS
from patrol.openapi_parts import SESSION as _SESSION
from patrol.openapi_parts import csrf as _csrf
from patrol.openapi_parts import errors as _errors
from patrol.openapi_parts import query as _q
from patrol.openapi_parts import resp as _resp
from patrol.queries import ALARM_STATES, MALL_SORTS

_MALL = {
    "type": "object",
    "required": ["site_id", "name", "district", "online", "offline_since", "open_alarms"],
    "properties": {
        "site_id": {"type": "string"},
        "name": {"type": "string"},
        "district": {"type": "string"},
        "online": {"type": "boolean"},
        "state": {"enum": ["online", "offline", "unknown"]},
        "offline_since": {"type": ["string", "null"], "format": "date-time"},
        "offline_reason": {"type": ["string", "null"]},
        "status_at": {"type": ["string", "null"], "format": "date-time"},
        "open_alarms": {"type": "integer", "minimum": 0},
        "open_alarms_by_priority": {
            "type": "object",
            "additionalProperties": {"type": "integer"},
        },
        "compliance": {
            "type": ["object", "null"],
            "description": "The hub's retained compliance summary, shortened.",
        },
        "devices": {"type": "integer"},
        "devices_offline": {"type": "integer"},
        "receipts_outstanding": {"type": "integer"},
        "notices_open": {"type": "integer", "description": "Rectification notices not closed"},
        "notices_overdue": {"type": "integer", "description": "Of those, past their deadline"},
        "last_seq": {"type": "integer"},
    },
}
_ALARM = {
    "type": "object",
    "required": ["event_id", "site_id", "priority", "state"],
    "properties": {
        "event_id": {"type": "string"},
        "site_id": {"type": "string"},
        "seq": {"type": "integer"},
        "kind": {"type": "string"},
        "category": {"type": "string"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 4},
        "device_id": {"type": "string"},
        "text": {"type": "object"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "stored_at": {"type": "string", "format": "date-time"},
        "state": {"enum": ["open", "ack_sent", "acknowledged", "closed"]},
        "ack_by": {"type": ["string", "null"]},
        "ack_at": {"type": ["string", "null"], "format": "date-time"},
        "receipt_sent": {"type": "boolean"},
        "deliveries": {"type": "integer"},
        "test": {"type": "boolean"},
    },
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mallhub patrol — city overview API",
            "version": "1",
            "description": "Malls, alarms and officers' acknowledgements across a city; online "
            "inspections (网上巡查) and rectification notices (整改通知).",
        },
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "patrol_session"},
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token in the variable named by metrics_token_env.",
                },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "message_zh": {"type": "string", "description": "The same, in Chinese"},
                    },
                },
                "Mall": _MALL,
                "Alarm": _ALARM,
                **INSPECTION_SCHEMAS,
            },
        },
        "paths": {
            "/api/v1/session": {
                "post": {
                    "summary": "Log in",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["name", "password"],
                                    "properties": {
                                        "name": {"type": "string"},
                                        "password": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _resp(
                            "logged in; the CSRF token is in the body", {"type": "object"}
                        ),
                        **_errors(400, 401, 403, 413, 415, 429),
                    },
                },
                "delete": {
                    "summary": "Log out",
                    "security": _SESSION,
                    "parameters": [_csrf()],
                    "responses": {
                        "200": _resp("logged out", {"type": "object"}),
                        **_errors(401, 403),
                    },
                },
            },
            "/api/v1/me": {
                "get": {
                    "summary": "The logged-in officer",
                    "security": _SESSION,
                    "responses": {"200": _resp("the officer", {"type": "object"}), **_errors(401)},
                }
            },
            "/api/v1/malls": {
                "get": {
                    "summary": "Every mall of the city",
                    "security": _SESSION,
                    "parameters": [
                        _q("district", {"type": "string", "maxLength": 100}),
                        _q("sort", {"enum": list(MALL_SORTS)}),
                        _q("order", {"enum": ["asc", "desc"]}),
                    ],
                    "responses": {
                        "200": _resp(
                            "the malls",
                            {
                                "type": "object",
                                "properties": {
                                    "malls": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Mall"},
                                    },
                                    "count": {"type": "integer"},
                                },
                            },
                        ),
                        **_errors(400, 401),
                    },
                }
            },
            "/api/v1/alarms": {
                "get": {
                    "summary": "Alarms across the city, most urgent first",
                    "security": _SESSION,
                    "parameters": [
                        _q("state", {"enum": list(ALARM_STATES)}),
                        _q("site_id", {"type": "string"}),
                        _q("district", {"type": "string"}),
                        _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    ],
                    "responses": {
                        "200": _resp(
                            "the alarms",
                            {
                                "type": "object",
                                "properties": {
                                    "alarms": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Alarm"},
                                    },
                                    "count": {"type": "integer"},
                                },
                            },
                        ),
                        **_errors(400, 401),
                    },
                }
            },
            "/api/v1/alarms/{event_id}/ack": {
                "post": {
                    "summary": "Acknowledge an alarm: the mall's hub gets the ack command",
                    "security": _SESSION,
                    "parameters": [
                        {
                            "name": "event_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 64},
                        },
                        _csrf(),
                    ],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"note": {"type": "string", "maxLength": 500}},
                                }
                            }
                        }
                    },
                    "responses": {
                        "202": _resp("the command is on its way", {"type": "object"}),
                        **_errors(400, 401, 403, 404, 409, 413, 415),
                    },
                }
            },
            "/api/v1/live": {
                "get": {
                    "summary": "Server-sent events: alarm, state, malls",
                    "security": _SESSION,
                    "responses": {
                        "200": {
                            "description": "an event stream",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **_errors(401),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of this process (404 while no token is "
                    "configured)",
                    "security": [{"metricsToken": []}],
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "401": _resp("no or wrong bearer token"),
                        "404": _resp("no metrics token configured"),
                    },
                }
            },
            **INSPECTION_PATHS,
        },
    }
