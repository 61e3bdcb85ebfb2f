"""The OpenAPI 3.1 document, built from the route table (``api.ENDPOINTS``), and the
Markdown reference ``docs/api.md`` built from the same document."""

from __future__ import annotations

import copy
import functools
from typing import Any

from hub import __version__
from hub.web.api import ENDPOINTS
from hub.web.auth import CSRF_HEADER, SESSION_COOKIE
from hub.web.routing import JSON, Endpoint, harden
from hub.web.schemas import COMPONENTS, ref
from hub.web.throttle import (
    ADDRESS_FAILURES,
    MAX_FAILURES,
    SLOW_AFTER,
    SLOW_MAX_S,
    THROTTLE_WINDOW_S,
)

ERROR_TEXT = {
    400: "The parameters or the body are not valid.",
    401: "No valid session or token.",
    403: "The role is too low, or the CSRF token is missing or wrong.",
    404: "Not found.",
    409: "Conflicts with the current state.",
    413: "The body is too large.",
    422: "Well-formed, but breaks a rule the schema cannot state (a date in the future, a "
    "weak password, a deadline before the finding...).",
    429: "Too many failed logins; see Retry-After.",
    503: "A service this needs is not running.",
}
SECURITY: list[dict[str, list[str]]] = [{"session": []}, {"bearer": []}]


def _operation(ep: Endpoint, config: Any = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": ep.operation_id,
        "summary": ep.summary,
        "tags": [ep.tag],
    }
    desc = ep.description
    if ep.role is not None:
        desc = (desc + "\n\n" if desc else "") + f"Least role: **{ep.role}**."
        op["security"] = SECURITY
    else:
        op["security"] = []
    if desc:
        op["description"] = desc
    params = []
    for p in ep.params:
        params.append(
            {
                "name": p.name,
                "in": p.where,
                "required": p.required,
                "description": p.description,
                "schema": harden(p.schema, config),
            }
        )
    if ep.role is not None and ep.state_changing:
        params.append(
            {
                "name": CSRF_HEADER,
                "in": "header",
                "required": False,
                "description": "Required with the session cookie (the value from GET /api/v1/me); "
                "not used with a Bearer token.",
                "schema": {"type": "string"},
            }
        )
    if params:
        op["parameters"] = params
    if ep.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": harden(ep.body, config)}},
        }
    responses: dict[str, Any] = {}
    ok: dict[str, Any] = {"description": "OK"}
    if ep.response is not None:
        ok["content"] = {ep.media: {"schema": ep.response}}
    elif ep.media == "image/jpeg":
        ok["content"] = {
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        }
    else:
        ok["content"] = {ep.media: {"schema": {"type": "string"}}}
    responses[str(ep.status)] = ok
    for code, (text, schema) in ep.extra_responses.items():
        responses[str(code)] = {"description": text}
        if schema is not None:
            responses[str(code)]["content"] = {JSON: {"schema": schema}}
    for code in ep.error_statuses:
        responses.setdefault(
            str(code),
            {"description": ERROR_TEXT[code], "content": {JSON: {"schema": ref("Error")}}},
        )
    if ep.body is not None:
        responses.setdefault(
            "413", {"description": ERROR_TEXT[413], "content": {JSON: {"schema": ref("Error")}}}
        )
    op["responses"] = responses
    return op


def to_openapi_path(path: str) -> str:
    return path  # aiohttp's {name} placeholders are OpenAPI's


@functools.cache
def _document() -> dict[str, Any]:
    return _build(None)


def _build(config: Any) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for ep in ENDPOINTS:
        paths.setdefault(to_openapi_path(ep.path), {})[ep.method.lower()] = _operation(ep, config)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mallhub API",
            "version": __version__,
            "description": "The hub's REST API. Log in with POST /api/v1/session (cookie) or "
            "send an API token as `Authorization: Bearer mh_…`. Roles: viewer < operator < "
            "technician < admin; each may do what the roles before it may. State-changing "
            "requests with the session cookie need the X-CSRF-Token header. Every string must be "
            "Unicode text without NUL: a lone surrogate escape (\\ud800 without its pair) is "
            "refused like any other invalid value, with 400. Date-times carry their offset and "
            "a year from 1970 to 8999.",
        },
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def document(config: Any = None) -> dict[str, Any]:
    """A copy of the document (callers may change it). With a site config, limits that
    are site settings (``x-site-limit``) are that site's values, as its server applies them;
    without, the largest values the settings may take."""
    if config is not None:
        return _build(config)
    return copy.deepcopy(_document())


def markdown() -> str:
    """docs/api.md: every route with its role, parameters, body and responses."""

    lines = [
        "# mallhub HTTP API",
        "",
        "<!-- Generated from the route tables in hub/web/api/ by "
        "`python -m hub.web.openapi > docs/api.md`; tests/web/test_openapi.py checks it "
        "is current. Do not edit by hand. -->",
        "",
        "The machine-readable document is served at `GET /api/v1/openapi.json` (OpenAPI 3.1).",
        "",
        "Authentication: the session cookie from `POST /api/v1/session` (browsers; send "
        f"`{CSRF_HEADER}` on every state-changing request), or an API token as "
        "`Authorization: Bearer mh_…` (machines; `mallhub token create NAME --user U`). "
        "Roles: viewer < operator < technician < admin. Without a session or token every "
        "non-public endpoint answers 401; with too low a role, 403; a state-changing request "
        "with the cookie but without the CSRF token, 403. Errors are "
        '`{"error": code, "message": text}`.',
        "",
        "## Logging in, and guessing passwords",
        "",
        "Wrong passwords never lock an account: that would let anyone lock the only admin "
        "out of the monitoring centre. The hub throttles by client address instead, and "
        "slows down guessing spread over many addresses:",
        "",
        f"- {MAX_FAILURES} wrong passwords for one user name from one address within "
        f"{THROTTLE_WINDOW_S // 60} minutes: that address is refused for that name "
        "(`429`, `throttled`, with `Retry-After`) until the window has passed; the same name "
        "from any other address still logs in, and so does any other name from that address;",
        f"- {ADDRESS_FAILURES} wrong passwords from one address for any names within the same "
        "window: that address is refused for every name;",
        f"- {SLOW_AFTER} wrong passwords for one name from all addresses together: each further "
        f"try on that name waits before the password is checked, doubling up to {SLOW_MAX_S:g} s "
        "— slowed, never refused;",
        "- a name that does not exist, a disabled account and a wrong password get the same "
        "answer (`401`, `invalid_credentials`) after the same work (a password hash is checked "
        "either way), and every rule above counts names that do not exist exactly like real "
        "ones, before the store is asked: the answers do not tell which names exist;",
        "- `PUT /api/v1/me/password` checks the current password under the same rules (so an "
        "API token cannot be used to guess it) and ends every other session of the user;",
        "- failures are audited (`login.failed`, `password.change_failed`) and counted on the "
        "user (`failed_logins`); `PATCH /api/v1/users/{name}` with `unlock` (or a new "
        "password) clears the counts. The counts live in the hub's memory: a restart clears "
        "them.",
        "",
        "Behind a TLS reverse proxy, set `http.secure_cookies: true` so the cookies are marked "
        "Secure (they are anyway when the hub serves HTTPS itself with `http.tls_cert_file`).",
        "",
        "## Alarms first",
        "",
        "While alarms are coming in, reads (`GET`, `HEAD`: pages, `/api/v1`, `/metrics`) are "
        "answered one at a time and take at most `http.console_share` of the hub's time "
        "(default 0.1; 1 turns it off): a read may wait, at most `http.console_max_wait_s` "
        "(default 2 s) for that share, then only for the reads ahead of it. State-changing "
        "requests (logging in, acknowledging, closing), `/healthz`, `/readyz`, `/api/v1/live` "
        "and the signed `/snapshots/` links never wait. Waits are counted in "
        "`mallhub_console_delayed_total`, `mallhub_console_delay_seconds_total` and "
        "`mallhub_console_overdue_total`.",
        "",
        "## Routes",
        "",
        "| method | path | least role | summary |",
        "|---|---|---|---|",
    ]
    for ep in ENDPOINTS:
        lines.append(f"| {ep.method} | `{ep.path}` | {ep.role or 'public'} | {ep.summary} |")
    lines.append("")
    for ep in ENDPOINTS:
        lines += [f"## {ep.method} `{ep.path}`", "", ep.summary + ".", ""]
        if ep.description:
            lines += [ep.description, ""]
        lines += [f"- Role: {ep.role or 'public'}"]
        if ep.role is not None and ep.state_changing:
            lines += [f"- CSRF: `{CSRF_HEADER}` header with the session cookie"]
        for p in ep.params:
            req = ", required" if p.required else ""
            lines.append(f"- {p.where} `{p.name}`{req}: {p.description}")
        if ep.body is not None:
            props = ep.body.get("properties", {})
            required = set(ep.body.get("required", []))
            fields = ", ".join(f"`{k}`{'' if k in required else '?'}" for k in props)
            lines.append(f"- Body (JSON): {fields}")
        statuses = [ep.status, *ep.extra_responses, *ep.error_statuses]
        lines.append(
            f"- Responses: {', '.join(str(s) for s in sorted(set(statuses)))} (success: {ep.media})"
        )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
