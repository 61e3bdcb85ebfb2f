"""Every route of the OpenAPI document, fed hostile values (tests/support/hostile.py) in
every parameter and in the body, anonymously and with the admin's token: never a 5xx,
never a traceback, every error a JSON body.

The document is walked, not a list kept here: a new route is covered the day it is added.
Schema-driven fuzzing (test_openapi.py, schemathesis) generates what the schema allows;
this test sends what it does not — deep nesting, lone surrogates, control characters,
extreme dates and numbers, other scripts' digits, invalid UTF-8.

The values come from hypothesis strategies, drawn once with a fixed seed (so CI runs the
same cases every time) and replayed against one running hub; MALLHUB_HOSTILE_EXAMPLES
draws more of them.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from yarl import URL

from hub.web.openapi import document
from tests.notices.mall import issue
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
from tests.web.test_api import press_button
from tests.web.webtest import WebHub

EXAMPLES = int(os.environ.get("MALLHUB_HOSTILE_EXAMPLES", "12"))
#: Longer request lines are refused by the HTTP parser before any route (a protocol error).
MAX_URL_VALUE = 3000

SAMPLE = {
    "device_id": "cam-gate-1",
    "event_id": "01936c2e-0000-7000-8000-000000000000",
    "snapshot_id": "1",
    "record_id": "1",
    "notice_id": "ZG-1",
    "name": "viewer",
    "token_id": "999",
    "target": "cam-gate-1",
}


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


def operations() -> list[Operation]:
    doc = document()
    ops = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            body = None
            if "requestBody" in op:
                body = op["requestBody"]["content"]["application/json"]["schema"]
            params = tuple(p for p in op.get("parameters", []) if p["in"] in ("path", "query"))
            ops.append(Operation(method.upper(), path, params, body))
    return ops


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


async def hostile_run(c: Checker, samples: dict[str, str]) -> None:
    components = document()["components"]["schemas"]
    values = url_values()
    fields = body_values()
    raws = raw_bodies()
    for op in operations():
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


@pytest.mark.parametrize("who", ["anonymous", "admin"])
async def test_every_route_survives_hostile_values(
    wh: WebHub, who: str, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {} if who == "anonymous" else {"Authorization": f"Bearer {wh.tokens['admin']}"}
    # An event, a notice and a hazard that exist: a valid id in the path lets the hostile
    # bodies of acknowledge, close, notes, answer and close-hazard reach their handlers
    # instead of a 404.
    samples = dict(SAMPLE)
    samples["event_id"] = (await press_button(wh))["event_id"]
    issued = await wh.hub.notices.cmd_notice(issue(samples["notice_id"]))
    assert issued["state"] == "open", issued
    caplog.set_level(logging.WARNING)
    async with aiohttp.ClientSession(wh.url) as s:
        admin = {"Authorization": f"Bearer {wh.tokens['admin']}"}
        hazard = {"title": "消防通道堵塞", "owner": "张三", "due": "2030-01-01"}
        async with s.post("/api/v1/records/hazards", json=hazard, headers=admin) as r:
            assert r.status == 201, await r.text()
            samples["record_id"] = str((await r.json())["id"])
        c = Checker(s, headers)
        await hostile_run(c, samples)
        assert c.problems == [], "\n".join(c.problems[:30])
        # The admin's token was not revoked along the way: every request reached its route.
        async with s.get("/api/v1/me", headers=headers) as r:
            assert r.status == (401 if who == "anonymous" else 200)
    assert c.sent > 2000
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert crashes == [], [(r.name, r.getMessage()) for r in crashes[:10]]


PAGES: dict[str, tuple[str, ...]] = {
    "/console": (),
    "/devices": ("not_online",),
    "/events": (
        "q",
        "kind",
        "floor",
        "zone",
        "device",
        "category",
        "priority",
        "state",
        "since",
        "until",
        "offset",
    ),
    "/events/{event_id}": (),
    "/compliance": ("date",),
    "/records": (),
    "/notices": (),
    "/notices/{notice_id}": (),
    "/login": ("next",),
    "/lang/en": ("next",),
}


async def test_every_page_survives_hostile_values(
    wh: WebHub, caplog: pytest.LogCaptureFixture
) -> None:
    """The console's pages (not in the API document) with a session, each query parameter
    and the path's event id hostile: an answer, never a 5xx or a traceback."""
    caplog.set_level(logging.WARNING)
    values = url_values()
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(wh.url, cookie_jar=jar) as s:
        async with s.post(
            "/api/v1/session", json={"name": "viewer", "password": "correct horse battery"}
        ) as r:
            assert r.status == 200
        problems = []
        sent = 0
        for page, params in PAGES.items():
            for name in params or ("event_id",) if "{" in page else params:
                for v in values:
                    if name == "event_id":
                        # The path's one parameter (an event id, a notice id) is hostile.
                        path = re.sub(r"\{[a-z_]+\}", "\0", page).replace(
                            "\0", percent_encoded(v) or "x"
                        )
                        url = URL(path, encoded=True)
                    else:
                        url = URL(f"{page}?{name}={percent_encoded(v)}", encoded=True)
                    async with s.get(url, allow_redirects=False) as r:
                        sent += 1
                        text = await r.text(errors="replace")
                        if r.status >= 500 or "Traceback" in text:
                            problems.append(f"GET {page} [{name}={v!r}] → {r.status}"[:160])
    assert sent > 500
    assert problems == [], "\n".join(problems[:30])
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert crashes == [], [(r.name, r.getMessage()) for r in crashes[:10]]
