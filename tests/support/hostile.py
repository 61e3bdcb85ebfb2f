"""Hostile values: what a broken peer or an attacker sends, as hypothesis strategies.

One place for every test that feeds outside input to the hub (HTTP routes, MQTT
subscriptions, device frames), so that a new kind of nastiness found once is tried
everywhere. Three layers:

- ``hostile_text()`` / ``hostile_scalars()``: single values (strings, numbers, dates) that
  have broken parsers before: lone surrogates, control characters, non-ASCII digits, huge
  strings and numbers, dates at the edges of the calendar;
- ``hostile_json()``: Python values made of those (serialise with ``to_json``, which keeps
  lone surrogates as ``\\udXXX`` escapes, exactly as a peer's JSON encoder would send them);
- ``hostile_payloads()``: raw bytes for a body or an MQTT payload: deep nesting, invalid
  UTF-8, truncated JSON, number literals Python refuses to convert, plus ``hostile_json()``.

``mutations(valid)`` keeps a valid document and breaks one field at a time, so that a
schema check does not stop every example before it reaches the code behind it.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

JSON = Any

# Digits that str.isdigit() and int() accept but a wire format does not: Arabic-Indic,
# Devanagari, full-width, mathematical bold, superscript.
NON_ASCII_DIGITS = "٠١٢٣٤٥٦٧٨٩०१२३४५६७८९０１２３４５６７８９𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗²³¹"
CONTROL = "".join(map(chr, range(0x20))) + "\x7f\x85\u2028\u2029\u200b\u202e\ufeff\ufffe"
SURROGATES = "\ud800\udbff\udc00\udfff"

EDGE_DATES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999Z",
    "0000-00-00T00:00:00Z",
    "2026-02-30T25:61:61Z",
    "2026-11-22T08:00:00+99:99",
    "-2026-11-22T08:00:00Z",
    "+12026-11-22T08:00:00Z",
    "٢٠٢٦-١١-٢٢T٠٨:٠٠:٠٠Z",
    "２０２６-１１-２２",
    "1e309",
    "NaN",
    "",
]

EDGE_NUMBERS: list[JSON] = [
    0,
    -1,
    -(2**63),
    2**63,
    2**64 + 1,
    10**30,
    -(10**30),
    1e308,
    -1e308,
    1e-300,
    5e-324,
    -0.0,
    0.1,
    True,
    False,
]

# JSON texts that are valid but nasty, or invalid in ways a careless parser accepts.
RAW_SNIPPETS: list[bytes] = [
    b"",
    b" ",
    b"null",
    b"[]",
    b"{}",
    b'"just a string"',
    b"1" * 5000,  # Python refuses ints over 4300 digits: ValueError, not a number
    b"1e999",
    b"-1e999",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b'{"a": NaN}',
    b'{"a": 1e999}',
    b'{"request_id": "\\ud800"}',
    b'{"event_id": "\\udfff\\ud800", "by": "\\u0000"}',
    b'{"a": 1, "a": 2}',
    b'{"a": 1,}',
    b"{'a': 1}",
    b'{"a":',
    b'{"a": "\xff\xfe"}',
    b"\xef\xbb\xbf{}",
    b"\xff\xfe{\x00}\x00",
    b"\xc0\xaf",
    b"\xed\xa0\x80",  # a surrogate encoded as UTF-8: invalid UTF-8
    b"\x00" * 64,
]


def deep_json(depth: int, kind: str = "list", inner: str = "0") -> bytes:
    """JSON text nested ``depth`` levels deep; parsers that recurse blow their stack.

    Built as text on purpose: Python's own encoder refuses objects this deep.
    """
    if kind == "list":
        return ("[" * depth + inner + "]" * depth).encode()
    if kind == "dict":
        return ('{"a":' * depth + inner + "}" * depth).encode()
    # A valid-looking document whose one field holds the nesting.
    return ('{"request_id": "r1", "event_id": ' + "[" * depth + inner + "]" * depth + "}").encode()


def deep_json_bytes(max_depth: int = 200_000) -> st.SearchStrategy[bytes]:
    """Deep nesting: lists, objects, or one field of an otherwise ordinary document."""
    return st.builds(
        deep_json,
        st.one_of(st.just(max_depth), st.integers(900, max_depth)),
        st.sampled_from(["list", "dict", "field"]),
    )


def hostile_text(max_huge: int = 100_000) -> st.SearchStrategy[str]:
    """Strings that have broken things: surrogates, controls, non-ASCII digits, huge."""
    nasty_chars = st.sampled_from(SURROGATES + CONTROL + NON_ASCII_DIGITS)
    return st.one_of(
        st.sampled_from(
            [
                "\ud800",
                "a\udfffb",
                "\x00",
                "x\x00y",
                "\r\nSet-Cookie: a=b",
                "../../../../etc/passwd",
                "%00",
                "%2e%2e%2f",
                "<script>alert(1)</script>",
                "' OR 1=1 --",
                "\u202egnp.exe",
                "١٢٣",
                "１２３",
                "𝟏",
                "0x10",
                "-0",
                "   ",
                "",
                "null",
                "true",
            ]
        ),
        st.sampled_from(EDGE_DATES),
        st.text(nasty_chars, min_size=1, max_size=20),
        st.text(min_size=1, max_size=40).flatmap(
            lambda t: nasty_chars.map(lambda c: t[: len(t) // 2] + c + t[len(t) // 2 :])
        ),
        st.integers(10_000, max_huge).map(lambda n: "x" * n),
        st.integers(1_000, 20_000).map(lambda n: "😀" * n),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    )


def hostile_numbers() -> st.SearchStrategy[JSON]:
    """Numbers at the edges, and integers in a bigger range than any column holds."""
    return st.one_of(
        st.sampled_from(EDGE_NUMBERS),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=False, allow_infinity=False),
    )


def hostile_scalars() -> st.SearchStrategy[JSON]:
    """A hostile value of any JSON scalar type (wrong types included: null, bool)."""
    return st.one_of(st.none(), st.booleans(), hostile_numbers(), hostile_text())


def hostile_json(max_leaves: int = 8) -> st.SearchStrategy[JSON]:
    """JSON-able Python values made of hostile scalars, moderately nested."""
    keys = st.one_of(st.sampled_from(["", "\ud800", "__proto__", "a" * 300]), st.text(max_size=8))
    return st.recursive(
        hostile_scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )


def to_json(value: JSON) -> bytes:
    """Serialise as a peer would: lone surrogates become ``\\udXXX`` escapes."""
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def hostile_payloads() -> st.SearchStrategy[bytes]:
    """Raw bytes for an HTTP body or an MQTT payload."""
    return st.one_of(
        st.sampled_from(RAW_SNIPPETS),
        deep_json_bytes(),
        hostile_json().map(to_json),
        st.binary(max_size=200),
    )


def mutations(valid: dict[str, JSON]) -> st.SearchStrategy[dict[str, JSON]]:
    """``valid`` with one field replaced by a hostile value, dropped, or one field added."""
    fields = sorted(valid)

    @st.composite
    def mutate(draw: st.DrawFn) -> dict[str, JSON]:
        doc = dict(valid)
        how = draw(st.sampled_from(["replace", "drop", "add"]))
        if how == "add" or not fields:
            doc[draw(st.text(max_size=10))] = draw(hostile_json())
        elif how == "drop":
            doc.pop(draw(st.sampled_from(fields)))
        else:
            doc[draw(st.sampled_from(fields))] = draw(hostile_json())
        return doc

    return mutate()


def hostile_documents(valid: dict[str, JSON]) -> st.SearchStrategy[bytes]:
    """Payload bytes for an endpoint that expects ``valid``: mutated documents, documents
    with a deeply nested field, and the generic hostile payloads."""
    return st.one_of(
        mutations(valid).map(to_json),
        st.integers(900, 100_000).map(lambda d: _nest_in(valid, d)),
        hostile_payloads(),
    )


def _nest_in(valid: dict[str, JSON], depth: int) -> bytes:
    text = to_json(valid).decode()
    if not text.endswith("}") or text == "{}":
        return deep_json(depth)
    return (text[:-1] + ', "zz": ' + "[" * depth + "]" * depth + "}").encode()


def percent_encoded(value: str) -> str:
    """``value`` as a hostile client puts it in a URL path or query: every byte
    percent-encoded, lone surrogates as their (invalid) UTF-8 bytes."""
    from urllib.parse import quote

    return quote(value.encode("utf-8", "surrogatepass"), safe="")
