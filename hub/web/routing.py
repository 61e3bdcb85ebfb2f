"""The API's route table: each endpoint declares its role, parameters, body and responses
once, and that one declaration both guards and parses the request and writes the OpenAPI
document (``openapi.py``), so the handlers and the documentation cannot drift apart."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
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


#: Years the API accepts in a date-time, read in the offset it is given in: far enough for
#: any record, near enough that converting to UTC or to the site's zone, or adding a day,
#: never leaves Python's datetime range. The OpenAPI document states it as a pattern.
FIRST_YEAR = 1970
LAST_YEAR = 8999
DATE_TIME_PATTERN = r"^(19[7-9][0-9]|[2-8][0-9]{3})-"
#: Containers inside containers in a JSON body; the API's bodies need three.
MAX_DEPTH = 16
_INTEGER = re.compile(r"-?[0-9]{1,18}")
#: NUL cannot be stored (PostgreSQL text) and a lone surrogate (a ``\\udXXX`` escape
#: without its pair) is not Unicode text and cannot be encoded: no string from outside may
#: hold either. Every string in the OpenAPI document states the NUL rule as a pattern; the
#: surrogate rule is JSON's own (RFC 8259 §8.2) and said in the document's description
#: (generators such as hypothesis mishandle surrogate ranges in patterns).
TEXT_PATTERN = "^[^\\x00]*$"
_BAD_CHARS = re.compile("[\\x00\\ud800-\\udfff]")


def parse_datetime(raw: str) -> datetime:
    """An RFC 3339 date-time with its offset and a year FIRST_YEAR..LAST_YEAR, in UTC (or
    ValueError)."""
    if not isinstance(raw, str) or not raw.isascii() or len(raw) > 40:
        raise ValueError("is not an RFC 3339 date-time")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("is not an RFC 3339 date-time") from None
    if value.tzinfo is None:
        raise ValueError("needs a time zone (e.g. Z or +08:00)")
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"is out of range (years {FIRST_YEAR}-{LAST_YEAR})")
    return value.astimezone(UTC)


def parse_date(raw: str) -> date:
    """A calendar date YYYY-MM-DD with a year FIRST_YEAR..LAST_YEAR (or ValueError)."""
    if not isinstance(raw, str) or not raw.isascii() or len(raw) != 10:
        raise ValueError("is not a date (YYYY-MM-DD)")
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise ValueError("is not a date (YYYY-MM-DD)") from None
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"is out of range (years {FIRST_YEAR}-{LAST_YEAR})")
    return value


def _date_time_ok(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parse_datetime(value)
    return True


def _date_ok(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parse_date(value)
    return True


_FORMATS = FormatChecker()
# The API's own readings of the two formats (RFC 3339, bounded), for bodies as for parameters.
_FORMATS.checks("date-time", raises=ValueError)(_date_time_ok)
_FORMATS.checks("date", raises=ValueError)(_date_ok)


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=_FORMATS)


def text_problem(value: str) -> str | None:
    """Why a string from outside cannot be taken as text, or None when it can."""
    bad = _BAD_CHARS.search(value)
    if bad is None:
        return None
    code = ord(bad.group())
    if code == 0:
        return "contains a NUL character"
    return f"contains a lone surrogate (U+{code:04X})"


#: A schema keyword naming the site setting (a dotted path in the site config) that is the
#: value's real maximum, e.g. how long test mode may last at this site.
SITE_LIMIT = "x-site-limit"


def site_limit(config: Any, path: str) -> float:
    """The value of a dotted setting path in the site config."""
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    return float(value)


def harden(schema: dict[str, Any], config: Any = None) -> dict[str, Any]:
    """A request schema with the rules every string from outside follows spelled out: no
    NUL or lone surrogate (TEXT_PATTERN), date-times within the accepted years; with the
    site ``config``, a value marked with SITE_LIMIT gets that setting as its maximum. The
    route table's schemas go through this once, for the validators and for the OpenAPI
    document alike, so what the document promises is what the server does."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "$defs"):
            out[key] = {k: harden(v, config) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not", "contains") and isinstance(
            value, dict
        ):
            out[key] = harden(value, config)
        elif key in ("allOf", "anyOf", "oneOf", "prefixItems"):
            out[key] = [harden(v, config) for v in value]
        else:
            out[key] = value
    if SITE_LIMIT in out and config is not None:
        limit = site_limit(config, out[SITE_LIMIT])
        out["maximum"] = int(limit) if out.get("type") == "integer" else limit
    types = out.get("type")
    if types == "string" or (isinstance(types, list) and "string" in types):
        if out.get("format") == "date-time" and "pattern" not in out:
            out["pattern"] = DATE_TIME_PATTERN
        elif "pattern" not in out:
            out["pattern"] = TEXT_PATTERN
        elif out["pattern"] not in (TEXT_PATTERN, DATE_TIME_PATTERN) and not any(
            s.get("pattern") == TEXT_PATTERN for s in out.get("allOf", [])
        ):
            out["allOf"] = [*out.get("allOf", []), {"pattern": TEXT_PATTERN}]
    return out


def json_problems(data: Any) -> list[str]:
    """What in a parsed JSON body the API never takes: nesting deeper than MAX_DEPTH,
    strings (values or keys) with NUL or a lone surrogate. Iterative, so a
    hostile body cannot exhaust the stack here either."""
    problems: list[str] = []
    stack: list[tuple[Any, str, int]] = [(data, "body", 0)]
    while stack and len(problems) < 10:
        value, where, depth = stack.pop()
        if isinstance(value, str):
            why = text_problem(value)
            if why is not None:
                problems.append(f"{where}: {why}")
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                problems.append(f"{where}: nested deeper than {MAX_DEPTH} levels")
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                name = f"{where}/{k}" if isinstance(k, int) else f"{where}/{k[:40]!r}"
                if isinstance(k, str):
                    why = text_problem(k)
                    if why is not None:
                        problems.append(f"{where}: a key {why}")
                        continue
                stack.append((v, name, depth + 1))
    return problems


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number is too large")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON number")


def load_json(raw: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no number that overflows a double (ValueError); a
    body nested past the parser's stack is a ValueError too, not a RecursionError."""
    try:
        return json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _convert(p: Param, raw: str) -> Any:
    """A query/path/header string → the value its schema describes (or ValueError)."""
    why = text_problem(raw)
    if why is not None:
        raise ValueError(why)
    t = p.schema.get("type")
    if t == "integer":
        # ASCII digits only: str.isdigit() and int() also take other scripts' digits.
        if not _INTEGER.fullmatch(raw):
            raise ValueError("is not an integer")
        return int(raw)
    if t == "boolean":
        if raw in ("true", "1"):
            return True
        if raw in ("false", "0"):
            return False
        raise ValueError("is not true or false")
    if t == "string" and p.schema.get("format") == "date-time":
        parse_datetime(raw)
        return raw
    if t == "string" and p.schema.get("format") == "date":
        parse_date(raw)
        return raw
    return raw


@dataclass(slots=True)
class Compiled:
    endpoint: Endpoint
    params: list[tuple[Param, Draft202012Validator]]
    body: Draft202012Validator | None


def compile_endpoint(ep: Endpoint, config: Any = None) -> Compiled:
    """The endpoint's validators, with the site's limits when ``config`` is given."""
    return Compiled(
        ep,
        [(p, _validator(harden(p.schema, config))) for p in ep.params],
        _validator(harden(ep.body, config)) if ep.body is not None else None,
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
                data = load_json(raw_body or b"null")
            except ValueError as exc:  # UnicodeDecodeError is one
                problems.append(f"the body is not valid JSON: {str(exc)[:120]}")
            else:
                problems += json_problems(data)
                errors = (
                    [] if problems else sorted(c.body.iter_errors(data), key=lambda e: list(e.path))
                )
                for e in errors[:10]:
                    where = "/".join(str(x) for x in e.path) or "body"
                    problems.append(f"{where}: {e.message}")
                if not errors:
                    body = data
    if problems:
        raise bad_request("the request is not valid", problems)
    return args, body
