"""The OpenAPI document is what the server does: every bounded number the document states
is accepted at its bound and refused one past it, by the running server; limits that are
site settings are the site's values."""

from __future__ import annotations

from typing import Any

import aiohttp

from hub.web.openapi import document
from tests.web.test_api import press_button
from tests.web.webtest import WebHub

SAMPLE = {
    "device_id": "cam-gate-1",
    "event_id": "01936c2e-0000-7000-8000-000000000000",
    "snapshot_id": "1",
    "record_id": "1",
    "name": "viewer",
    "token_id": "1",
    "target": "cam-gate-1",
}


def bearer(wh: WebHub) -> dict[str, str]:
    return {"Authorization": f"Bearer {wh.tokens['admin']}"}


async def test_query_bounds_in_the_document_are_the_servers(wh: WebHub) -> None:
    doc = document(wh.hub.config)
    checked = 0
    async with aiohttp.ClientSession(wh.url, headers=bearer(wh)) as s:
        for path, ops in doc["paths"].items():
            if "get" not in ops or path.endswith("/live"):
                continue
            url = path
            for name, value in SAMPLE.items():
                url = url.replace("{" + name + "}", value)
            for p in ops["get"].get("parameters", []):
                schema = p["schema"]
                if p["in"] != "query" or schema.get("type") != "integer":
                    continue
                for bound, past in (("maximum", 1), ("minimum", -1)):
                    if bound not in schema:
                        continue
                    edge = schema[bound]
                    async with s.get(url, params={p["name"]: str(edge)}) as r:
                        assert r.status != 400, (path, p["name"], edge, await r.text())
                    async with s.get(url, params={p["name"]: str(edge + past)}) as r:
                        assert r.status == 400, (path, p["name"], edge + past, r.status)
                    checked += 1
    assert checked >= 8


async def test_test_mode_minutes_are_what_the_document_says(wh: WebHub) -> None:
    served: dict[str, Any]
    async with aiohttp.ClientSession(wh.url, headers=bearer(wh)) as s:
        async with s.get("/api/v1/openapi.json") as r:
            served = await r.json()
        body = served["paths"]["/api/v1/test-mode"]["post"]["requestBody"]
        minutes = body["content"]["application/json"]["schema"]["properties"]["minutes"]
        limit = wh.hub.config.alarms.test_mode_max_minutes
        assert minutes["maximum"] == limit == 240
        assert minutes["type"] == "integer" and minutes["minimum"] == 1
        for value, status in (
            (minutes["maximum"], 201),
            (minutes["maximum"] + 1, 400),
            (minutes["minimum"], 201),
            (1e-300, 400),
            (0.5, 400),
            (0, 400),
        ):
            async with s.post(
                "/api/v1/test-mode", json={"target": "cam-gate-1", "minutes": value}
            ) as r:
                assert r.status == status, (value, r.status, await r.text())


#: Texts on which regular-expression engines differ (Python's, ECMA-262's and Rust's ``\s``
#: disagree on U+001C-U+001F, U+0085, U+FEFF), controls, blanks and plain operator text.
TEXTS = [
    "\x1f", "\x1c", "\x0b", "\x85", "\x7f", "\x9f", "\x00", "a\x01b", "x\x1fy",
    "\xa0", "\u3000", "\ufeff", " ", "\t\n\r", "\u2028",
    "\u200b", "guard at the gate", "值班员已出警", " 已通知公安 ", "line one\nline two\r\n",
]  # fmt: skip
#: Where operators write text: the path, a valid body, the field. In this order: the first
#: accepted acknowledge and close change the event, the rest answer 200 "unchanged"; every
#: note, record and token is added.
TEXT_FIELDS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("/api/v1/events/{event_id}/acknowledge", {}, "note"),
    ("/api/v1/events/{event_id}/notes", {}, "text"),
    ("/api/v1/events/{event_id}/close", {}, "disposition"),
    ("/api/v1/records/trainings", {"date": "2026-01-05"}, "title"),
    ("/api/v1/records/hazards", {"title": "消防通道堵塞", "due": "2030-01-01"}, "owner"),
    ("/api/v1/tokens", {"user": "viewer"}, "name"),
)


async def test_operator_texts_are_refused_exactly_where_the_document_says(wh: WebHub) -> None:
    """The server (Python's jsonschema and the handlers) and a client reading the document
    with another engine (jsonschema-rs, the validator schemathesis uses) agree on every
    text: control characters are refused in every operator text, blank only where a text
    is required, and both are stated in the document."""
    import jsonschema_rs

    event_id = (await press_button(wh))["event_id"]
    async with aiohttp.ClientSession(wh.url, headers=bearer(wh)) as s:
        async with s.get("/api/v1/openapi.json") as r:
            doc = await r.json()
        for path, base, field in TEXT_FIELDS:
            op = doc["paths"][path]["post"]
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert "control" in schema["properties"][field]["description"]
            client = jsonschema_rs.validator_for(schema)
            verdicts = set()
            for text in TEXTS:
                body = {**base, field: text}
                async with s.post(path.format(event_id=event_id), json=body) as r:
                    answer = await r.json()
                    taken = r.status in (200, 201)
                    assert taken or r.status == 400, (path, text, r.status, answer)
                assert taken == client.is_valid(body), (path, repr(text), r.status, answer)
                verdicts.add(taken)
            assert verdicts == {True, False}, path
