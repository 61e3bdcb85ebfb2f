"""Decoding a hub's message before anything else looks at it: bytes in, a JSON object or
the reason it is refused out.

Everything on ``mallhub.v1.>`` comes from outside the patrol service. A value the store or
the database cannot hold must be refused here, once, with a reason the worker counts,
rather than fail a whole batch and be redelivered forever:

* not UTF-8, not JSON, ``NaN``/``Infinity``, integers Python will not convert;
* nesting deeper than any contract message has (the decoder's own recursion blows first
  at a few thousand levels; the walk below stops far earlier);
* lone surrogates (``"\\ud800"`` decodes to a str that no database driver can encode) and
  NUL characters (PostgreSQL refuses them in text and JSONB);
* integers outside 64 bits (no column holds them) and payloads larger than ``MAX_BYTES``.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.exc import OperationalError

MAX_BYTES = 8 * 1024 * 1024
"""Larger than any contract message (an inspection with inline pictures stays under it)."""
TRANSIENT = (OperationalError, OSError, TimeoutError)
"""Failures of the store itself (lost connection, locked database), not of a message: the
write is tried again later rather than the message refused."""
MAX_DEPTH = 32
INT_LIMIT = 2**63


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def problem_in(value: object) -> str | None:
    """Why a decoded value cannot be stored, or None; iterative, so never recursion."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return "NUL character in a string"
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return "lone surrogate in a string"
        elif isinstance(v, bool) or v is None or isinstance(v, float):
            continue
        elif isinstance(v, int):
            if not -INT_LIMIT <= v < INT_LIMIT:
                return "integer out of range"
        elif isinstance(v, dict | list):
            if depth > MAX_DEPTH:
                return "nested too deeply"
            if isinstance(v, dict):
                stack.extend((k, depth) for k in v)
                stack.extend((x, depth + 1) for x in v.values())
            else:
                stack.extend((x, depth + 1) for x in v)
    return None


def decode(data: bytes) -> dict[str, Any] | str:
    """The message's JSON object, or why it is refused (a short English reason)."""
    if len(data) > MAX_BYTES:
        return "payload too large"
    try:
        body = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        return "nested too deeply"
    except (ValueError, UnicodeDecodeError):
        return "payload is not JSON"
    if not isinstance(body, dict):
        return "payload is not a JSON object"
    problem = problem_in(body)
    return body if problem is None else problem
