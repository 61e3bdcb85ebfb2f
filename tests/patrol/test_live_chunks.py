"""The city overview's live stream from the workers' ``patrol.v1.live`` notifications: what a
worker writes becomes server-sent events; anything else on that subject is left out and
never breaks the fan-out or an open stream."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from patrol.web import live_chunks
from tests.support.hostile import deep_json, hostile_documents, to_json

ALARM = {
    "event_id": "e-1",
    "site_id": "zz-live-001",
    "seq": 1,
    "kind": "alarm.panic",
    "category": "alarm",
    "priority": 1,
    "device_id": "btn-1",
    "text_zh": "一键报警",
    "text_en": "panic",
    "occurred_at": "2026-12-03T08:00:00.000Z",
    "stored_at": "2026-12-03T08:00:00.100Z",
    "state": "open",
    "test": False,
}
NOTIFICATION: dict[str, Any] = {
    "events": [ALARM, {**ALARM, "event_id": "e-2", "category": "fault"}],
    "states": [{"site_id": "zz-live-001", "state": "offline", "at": "2026-12-03T08:00:01Z"}],
    "malls": ["zz-live-001"],
    "responses": [],
    "notices": [],
}


def test_a_workers_notification_becomes_events() -> None:
    chunks = live_chunks(json.dumps(NOTIFICATION).encode())
    kinds = [c.split("\n", 1)[0] for c in chunks]
    assert kinds == ["event: alarm", "event: state", "event: malls"]  # the fault is no alarm
    assert json.loads(chunks[0].split("data: ", 1)[1]) == ALARM
    assert chunks[2] == 'event: malls\ndata: ["zz-live-001"]\n\n'


def test_known_hostile_notifications_are_left_out() -> None:
    for payload in (
        deep_json(100_000),
        b"[1, 2]",
        b'{"events": {"category": "alarm"}, "states": "x", "malls": [1]}',
        b'{"events": [1, "a", null]}',
        to_json({"events": [{**ALARM, "text_zh": "\ud800"}]}),
        to_json({"malls": ["a\x00b"]}),
        b"\xff\xfe",
    ):
        assert live_chunks(payload) == [], payload[:60]


@settings(max_examples=300, deadline=None)
@given(st.one_of(hostile_documents(NOTIFICATION), hostile_documents(ALARM)))
def test_any_payload_gives_well_formed_events_or_none(payload: bytes) -> None:
    for chunk in live_chunks(payload):
        # Every chunk can be written to an open stream: UTF-8, one event, one data line.
        chunk.encode("utf-8")
        head, data, end = chunk.split("\n", 2)
        assert head in ("event: alarm", "event: state", "event: malls")
        assert data.startswith("data: ") and end == "\n"
        json.loads(data.removeprefix("data: "))
