"""The shared hostile-value strategies produce what they promise."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from tests.support.hostile import deep_json, hostile_documents, hostile_text, to_json


@pytest.mark.parametrize("kind", ["list", "dict", "field"])
def test_deep_json_is_valid_json_that_a_recursive_parser_cannot_read(kind: str) -> None:
    with pytest.raises(RecursionError):
        json.loads(deep_json(100_000, kind))
    assert json.loads(deep_json(10, kind)) is not None


def test_lone_surrogates_travel_as_json_escapes() -> None:
    wire = to_json({"by": "\ud800"})
    assert wire == b'{"by": "\\ud800"}'
    with pytest.raises(UnicodeEncodeError):
        json.loads(wire)["by"].encode("utf-8")


@settings(max_examples=50, deadline=None)
@given(hostile_text())
def test_hostile_text_is_a_string(value: str) -> None:
    assert isinstance(value, str)


@settings(max_examples=50, deadline=None)
@given(hostile_documents({"request_id": "r1", "event_id": "e"}))
def test_hostile_documents_are_bytes(value: bytes) -> None:
    assert isinstance(value, bytes)
