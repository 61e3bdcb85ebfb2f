"""Hostile values for every route of an OpenAPI document, shared by the hub's console
and the patrol service's tests: the values (hypothesis strategies drawn once with a fixed
seed, so CI runs the same cases every time; MALLHUB_HOSTILE_EXAMPLES draws more), the walk
over the document, and a checker that fails on any 5xx, traceback or non-JSON API error."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from yarl import URL

from tests.support.hostile import (
    EDGE_DATES,
    EDGE_NUMBERS,
    NON_ASCII_DIGITS,
    RAW_SNIPPETS,
    deep_json,
    hostile_json,
    hostile_numbers,
    hostile_payloads,
    hostile_text,
    percent_encoded,
    to_json,
)

EXAMPLES = int(os.environ.get("MALLHUB_HOSTILE_EXAMPLES", "12"))
#: Longer request lines are refused by the HTTP parser before any route (a protocol error).
MAX_URL_VALUE = 3000


def drawn(strategy: st.SearchStrategy[Any], n: int = EXAMPLES) -> list[Any]:
    """``n`` values of ``strategy``, the same ones on every run."""
    out: list[Any] = []

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(strategy)
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    return out


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def url_values() -> list[str]:
    """Values for path and query parameters (as the text a client would put in the URL)."""
    values = [
        *EDGE_DATES,
        *NON_ASCII_DIGITS[::3],
        *(str(n) for n in EDGE_NUMBERS),
        "\ud800",
        "a\udfffb",
        "\x00",
        "x\x01\x1f\x7f",
        "1\u0000",
        "١٢٣",
        "%",
        "%zz",
        "../../etc/passwd",
        "/",
        "",
    ]
    values += [_as_text(v) for v in drawn(hostile_text(max_huge=20_000))]
    values += [_as_text(v) for v in drawn(hostile_numbers())]
    return [v for v in dict.fromkeys(values) if len(percent_encoded(v)) <= MAX_URL_VALUE * 3]


def body_values() -> list[Any]:
    """JSON values to put in one field of an otherwise valid body."""
    values: list[Any] = [*EDGE_DATES, *EDGE_NUMBERS, None, [], {}, "\ud800", "\x00", "١"]
    values += drawn(hostile_json())
    return values


def raw_bodies() -> list[bytes]:
    return [
        *RAW_SNIPPETS,
        deep_json(100_000),
        deep_json(100_000, "dict"),
        deep_json(5_000, "field"),
        *drawn(hostile_payloads()),
    ]


def example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A plain valid value for a (simple) request schema."""
    if "$ref" in schema:
        return example(components[schema["$ref"].rsplit("/", 1)[1]], components)
    if "enum" in schema:
        return schema["enum"][0]
    t = schema.get("type")
    if isinstance(t, list):
        t = next(x for x in t if x != "null")
    if t == "object":
        props = schema.get("properties", {})
        return {k: example(props[k], components) for k in schema.get("required", [])}
    if t == "integer" or t == "number":
        return schema.get("minimum", 1)
    if t == "boolean":
        return False
    if t == "array":
        return []
    fmt = schema.get("format")
    if fmt == "date":
        return "2026-01-05"
    if fmt == "date-time":
        return "2026-01-05T08:00:00+08:00"
    return "test-value"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    params: tuple[dict[str, Any], ...]
    body: dict[str, Any] | None


def operations(doc: dict[str, Any]) -> list[Operation]:
    """Every operation of ``doc``; the session's own last (logging out, or in as someone
    else, would change who the later requests are sent as)."""
    ops = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            body = None
            if "requestBody" in op:
                body = op["requestBody"]["content"]["application/json"]["schema"]
            params = tuple(p for p in op.get("parameters", []) if p["in"] in ("path", "query"))
            ops.append(Operation(method.upper(), path, params, body))
    return sorted(ops, key=lambda o: o.path == "/api/v1/session")


def url_for(op: Operation, samples: dict[str, str], override: tuple[str, str] | None = None) -> URL:
    path = op.path
    query = []
    for p in op.params:
        value = samples.get(p["name"], "1")
        if override is not None and override[0] == p["name"]:
            value = override[1]
        elif p["in"] == "query":
            continue
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", percent_encoded(value))
        else:
            query.append(f"{quote(p['name'])}={percent_encoded(value)}")
    return URL(path + ("?" + "&".join(query) if query else ""), encoded=True)


class Checker:
    def __init__(self, session: aiohttp.ClientSession, headers: dict[str, str]) -> None:
        self.s = session
        self.headers = headers
        self.sent = 0
        self.problems: list[str] = []

    async def send(self, op: Operation, url: URL, data: bytes | None, what: str) -> None:
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        if op.path == "/api/v1/live":
            return  # an endless stream; its parameters are none, its auth is tested elsewhere
        async with self.s.request(op.method, url, data=data, headers=headers) as r:
            self.sent += 1
            text = await r.text(errors="replace")
            where = f"{op.method} {op.path} [{what}] → {r.status}"
            if r.status >= 500:
                self.problems.append(f"{where}: {text[:200]}")
            elif "Traceback" in text:
                self.problems.append(f"{where}: a traceback in the answer")
            elif r.status >= 400 and op.path.startswith(("/api/", "/metrics", "/readyz")):
                if r.content_type != "application/json":
                    self.problems.append(f"{where}: {r.content_type} error body")
                else:
                    body = json.loads(text)
                    if not (isinstance(body, dict) and body.get("error") and body.get("message")):
                        self.problems.append(f"{where}: error body {text[:120]}")


async def hostile_run(c: Checker, samples: dict[str, str], doc: dict[str, Any]) -> None:
    """Every operation of ``doc``: each parameter with every hostile URL value (and an
    unknown parameter), each body raw-hostile and with every field hostile in turn."""
    components = doc["components"]["schemas"]
    values = url_values()
    fields = body_values()
    raws = raw_bodies()
    for op in operations(doc):
        base = example(op.body, components) if op.body is not None else None
        base_bytes = to_json(base) if base is not None else None
        for p in op.params:
            for v in values:
                url = url_for(op, samples, (p["name"], v))
                await c.send(op, url, base_bytes, f"{p['name']}={v!r}"[:80])
        # An unknown query parameter, hostile too.
        await c.send(op, url_for(op, samples, ("\ud800", "x")), base_bytes, "unknown parameter")
        if op.body is None:
            continue
        url = url_for(op, samples)
        for raw in raws:
            await c.send(op, url, raw, f"raw {raw[:40]!r}")
        assert isinstance(base, dict)
        for key in [*base, "extra"]:
            for v in fields:
                doc = {**base, key: v}
                await c.send(op, url, to_json(doc), f"{key}={v!r}"[:80])
