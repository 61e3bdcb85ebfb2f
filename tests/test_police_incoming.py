"""Receipts and commands are checked before use: any payload is accepted or refused with
a reason, never an exception the link would die of."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings

from hub.police.incoming import (
    RecentRequests,
    Rejected,
    RejectionLog,
    decode_object,
    nesting_depth,
    other_site,
    parse_receipt,
)
from tests.support.hostile import deep_json, hostile_documents, hostile_payloads, to_json

RECEIPT = {"event_id": "0193a9c2-7f1e-7c3a-9a57-2f4b8e1d6a10", "received_at": "x", "by": "p"}
HOSTILE = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


@HOSTILE
@given(hostile_documents(RECEIPT))
def test_any_receipt_payload_is_a_receipt_or_rejected(payload: bytes) -> None:
    try:
        receipt = parse_receipt(payload)
    except Rejected as exc:
        assert exc.reason
        return
    receipt.event_id.encode("utf-8")
    receipt.by.encode("utf-8")
    assert receipt.by.isprintable() and 0 < len(receipt.by) <= 128


@HOSTILE
@given(hostile_payloads())
def test_any_command_payload_is_an_object_or_rejected(payload: bytes) -> None:
    try:
        body = decode_object(payload)
    except Rejected:
        return
    assert isinstance(body, dict)
    to_json(body).decode("ascii").encode("utf-8")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (deep_json(10_000, "dict"), "too_deep"),
        (deep_json(200_000, "dict"), "too_large"),
        (b'{"event_id": "e", "by": "\\ud800"}', "bad_text"),
        (b'{"event_id": "e", "\\udfff": 1}', "bad_text"),
        (b'{"event_id": NaN}', "not_json"),
        (b'{"event_id": ' + b"1" * 5000 + b"}", "not_json"),
        (b"\xed\xa0\x80", "not_utf8"),
        (b"[]", "not_object"),
        (b'{"event_id": 5}', "invalid"),
        (b'{"event_id": "e", "by": ["x"]}', "invalid"),
    ],
)
def test_receipt_rejections_name_their_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse_receipt(payload)
    assert caught.value.reason == reason


def test_nesting_is_measured_outside_strings() -> None:
    assert nesting_depth('{"a": "[[[[[[[[[[[[[[["}') == 1
    assert nesting_depth('{"a": "\\"[[[[", "b": [[1]]}') == 3


def test_control_characters_leave_a_receipts_signature() -> None:
    assert parse_receipt(b'{"event_id": "e", "by": "\\u0000\\u001b[31m\\u5f20"}').by == "[31m张"


def test_a_command_naming_another_site_is_found() -> None:
    assert other_site({"site_id": "b"}, "a") == "b"
    assert other_site({"site": {"id": "b"}}, "a") == "b"
    assert other_site({"site": "b"}, "a") == "b"
    assert other_site({"site_id": 5}, "a") == "5"
    assert other_site({"site_id": "a", "site": {"id": "a"}}, "a") is None
    assert other_site({}, "a") is None


def test_recent_requests_forget_the_oldest() -> None:
    recent = RecentRequests(size=2)
    for rid in ("a", "b", "c"):
        recent.remember(rid, {"rid": rid})
    assert "a" not in recent and recent.get("c") == {"rid": "c"}


def test_rejections_are_counted_always_and_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rejections = RejectionLog(logging.getLogger("test.rejections"), interval=3600)
    with caplog.at_level(logging.WARNING, logger="test.rejections"):
        for _ in range(1000):
            rejections.reject("receipt", "too_deep", "nested")
    assert rejections.counts[("receipt", "too_deep")] == 1000
    assert len(caplog.records) == 1
