"""The API's route table: each endpoint declares its role, parameters, body and responses
once, and that one declaration both guards and parses the request and writes the OpenAPI
document (``openapi.py``), so the handlers and the documentation cannot drift apart."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from aiohttp import web
from jsonschema import Draft202012Validator, FormatChecker

from hub.web.auth import CSRF_HEADER, Principal

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Where = Literal["path", "query", "header"]

MAX_BODY = 256 * 1024
JSON = "application/json"

PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
ARGS: web.RequestKey[dict[str, Any]] = web.RequestKey("args", dict)
BODY: web.RequestKey[dict[str, Any]] = web.RequestKey("body", dict)


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: Where
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    role: str | None
    """Least role allowed; None for public endpoints."""
    description: str = ""
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None
    """JSON Schema of the request body (JSON object)."""
    status: int = 200
    response: dict[str, Any] | None = None
    """JSON Schema of the success body; None with ``media`` for non-JSON bodies."""
    media: str = JSON
    errors: tuple[int, ...] = ()
    """Error statuses besides the ones the table derives (400, 401, 403, 404)."""
    extra_responses: dict[int, tuple[str, dict[str, Any] | None]] = field(default_factory=dict)

    @property
    def state_changing(self) -> bool:
        return self.method not in ("GET", "HEAD", "OPTIONS")

    @property
    def error_statuses(self) -> list[int]:
        out = set(self.errors)
        if self.params or self.body is not None:
            out.add(400)
        if self.role is not None:
            out |= {401, 403}
        if any(p.where == "path" for p in self.params):
            out.add(404)
        return sorted(out)


class ApiError(web.HTTPException):
    """An error answered as ``{"error": code, "message": …}`` with the given status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status_code = status
        body: dict[str, Any] = {"error": code, "message": message}
        if details:
            body["details"] = details
        super().__init__(
            text=json.dumps(body, ensure_ascii=False),
            content_type=JSON,
            headers=headers,
        )


def bad_request(message: str, details: list[str] | None = None) -> ApiError:
    return ApiError(400, "bad_request", message, details=details)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def unprocessable(message: str) -> ApiError:
    """Well-formed, but breaks a rule the schema cannot state (a date in the future...)."""
    return ApiError(422, "unprocessable", message)


def unavailable(message: str) -> ApiError:
    return ApiError(503, "unavailable", message)


_FORMATS = FormatChecker()


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=_FORMATS)


def _convert(p: Param, raw: str) -> Any:
    """A query/path/header string → the value its schema describes (or ValueError)."""
    t = p.schema.get("type")
    if t == "integer":
        if not raw.strip().lstrip("-").isdigit() or len(raw) > 18:
            raise ValueError("is not an integer")
        return int(raw)
    if t == "boolean":
        if raw in ("true", "1"):
            return True
        if raw in ("false", "0"):
            return False
        raise ValueError("is not true or false")
    if t == "string" and p.schema.get("format") == "date-time":
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("is not an RFC 3339 date-time") from None
        if value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. Z or +08:00)")
        return raw
    if t == "string" and p.schema.get("format") == "date":
        try:
            date.fromisoformat(raw)
        except ValueError:
            raise ValueError("is not a date (YYYY-MM-DD)") from None
        return raw
    return raw


@dataclass(slots=True)
class Compiled:
    endpoint: Endpoint
    params: list[tuple[Param, Draft202012Validator]]
    body: Draft202012Validator | None


def compile_endpoint(ep: Endpoint) -> Compiled:
    return Compiled(
        ep,
        [(p, _validator(p.schema)) for p in ep.params],
        _validator(ep.body) if ep.body is not None else None,
    )


async def parse_request(request: web.Request, c: Compiled) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the parameters and body against the declared schemas; raise 400 on any error."""
    args: dict[str, Any] = {}
    problems: list[str] = []
    declared_query = {p.name for p, _ in c.params if p.where == "query"}
    for key in request.query:
        if key not in declared_query:
            problems.append(f"query parameter {key!r} is not known")
    for p, validator in c.params:
        if p.where == "path":
            raw: str | None = request.match_info.get(p.name)
        elif p.where == "query":
            values = request.query.getall(p.name, [])
            if len(values) > 1:
                problems.append(f"{p.name}: given more than once")
                continue
            raw = values[0] if values else None
        else:
            if p.name == CSRF_HEADER:
                continue  # checked by the guard, never part of the arguments
            raw = request.headers.get(p.name)
        if raw is None:
            if p.required:
                problems.append(f"{p.name}: is required")
            elif "default" in p.schema:
                args[p.name] = p.schema["default"]
            continue
        try:
            value = _convert(p, raw)
        except ValueError as exc:
            problems.append(f"{p.name}: {exc}")
            continue
        errs = [e.message for e in validator.iter_errors(value)]
        if errs:
            problems.append(f"{p.name}: {errs[0]}")
            continue
        args[p.name] = value
    body: dict[str, Any] = {}
    if c.body is not None:
        if request.content_type != JSON:
            problems.append("the body must be application/json")
        elif request.content_length is not None and request.content_length > MAX_BODY:
            raise ApiError(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
        else:
            raw_body = await request.content.read(MAX_BODY + 1)
            if len(raw_body) > MAX_BODY:
                raise ApiError(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
            try:
                data = json.loads(raw_body or b"null")
            except (ValueError, UnicodeDecodeError):
                problems.append("the body is not valid JSON")
            else:
                errors = sorted(c.body.iter_errors(data), key=lambda e: list(e.path))
                for e in errors[:10]:
                    where = "/".join(str(x) for x in e.path) or "body"
                    problems.append(f"{where}: {e.message}")
                if not errors:
                    body = data
    if problems:
        raise bad_request("the request is not valid", problems)
    return args, body
