"""REST handlers under ``/api/v1``, one module per resource, and the one route table.

Each resource module keeps its handlers next to the ``ROUTES`` that declare them (method,
path, role, parameter and body schemas); this module joins them, in the order the OpenAPI
document lists them, into :data:`ENDPOINTS`, which the server registers.

Each handler trusts what the table's guard established: the caller is authenticated, has
the role, passed the CSRF check, and ``request[ARGS]`` / ``request[BODY]`` match the
declared schemas. Writes go through the hub (single store writer), and every action a
person takes lands in the audit log.
"""

from __future__ import annotations

import dataclasses

from hub.store.writer import StoreUnavailable
from hub.web.api import (
    compliance,
    devices,
    events,
    live,
    notices,
    records,
    service,
    session,
    snapshots,
    testmode,
    users,
)
from hub.web.api.compliance import compliance_result
from hub.web.api.events import event_filter
from hub.web.api.notices import notice_summary
from hub.web.api.records import record_json
from hub.web.api.session import LoginRefused, authenticate, login, set_session_cookie
from hub.web.routing import JSON, Endpoint

#: Endpoints that answer 422 for a well-formed request breaking a rule the schema cannot state.
UNPROCESSABLE = frozenset(
    {
        "change_password",
        "add_drill",
        "add_training",
        "add_hazard",
        "add_review",
        "add_attestation",
        "compliance",
        "compliance_report",
        "start_test_mode",
        "add_user",
        "update_user",
    }
)

_ROUTES: tuple[Endpoint, ...] = (
    *service.ROUTES,
    *session.ROUTES,
    *devices.ROUTES,
    *events.ROUTES,
    *snapshots.ROUTES,
    *compliance.ROUTES,
    *records.ROUTES,
    *notices.ROUTES,
    *testmode.ROUTES,
    *users.ROUTES,
    *live.ROUTES,
)

ENDPOINTS: tuple[Endpoint, ...] = tuple(
    dataclasses.replace(ep, errors=(*ep.errors, 422)) if ep.operation_id in UNPROCESSABLE else ep
    for ep in _ROUTES
)

__all__ = [
    "ENDPOINTS",
    "JSON",
    "LoginRefused",
    "StoreUnavailable",
    "authenticate",
    "compliance_result",
    "event_filter",
    "login",
    "notice_summary",
    "record_json",
    "set_session_cookie",
]
