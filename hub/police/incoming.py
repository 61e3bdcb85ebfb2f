"""What arrives from the police platform: receipts and commands, checked before use.

Everything on a subscribed topic is outside input. Nothing here raises anything but
``Rejected`` for a bad payload: a receipt or a command is either well formed (plain Python
values, strings that are valid Unicode, nesting no deeper than a command ever needs) or
refused with a reason that is counted, logged at a bounded rate and, for commands,
answered.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from hub.commands import CommandError as CommandError  # raised by handlers; re-exported

MAX_DEPTH = 8
"""Receipts and commands are flat objects; anything nested deeper is not one of them."""
MAX_STRING = 4096
"""Longest string accepted in a receipt (commands are bounded by their size limit)."""
REPEAT_MEMORY = 4096
"""Request ids (and their answers) remembered to answer a repeat without running it."""
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class Rejected(ValueError):
    """A payload that is not a receipt or command; ``reason`` is a short metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def decode_object(payload: bytes) -> dict[str, Any]:
    """Parse a JSON object, refusing what a Python parser or the store cannot hold.

    Refused: invalid UTF-8, nesting deeper than ``MAX_DEPTH`` (checked on the text
    before parsing, so a parser recursion limit is never reached), ``NaN``/``Infinity``,
    numbers Python will not convert, and lone surrogates (``"\\ud800"``), which are valid
    JSON escapes but no text any database or log can store.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("not_utf8", "payload is not UTF-8") from exc
    if nesting_depth(text) > MAX_DEPTH:
        raise Rejected("too_deep", f"payload nested deeper than {MAX_DEPTH} levels")
    try:
        body = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, and integers over Python's digit limit.
        raise Rejected("not_json", f"payload is not JSON: {str(exc)[:120]}") from exc
    if not isinstance(body, dict):
        raise Rejected("not_object", "payload must be a JSON object")
    _check_text(body)
    return body


def nesting_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting outside strings, counted without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _check_text(value: Any) -> None:
    """Every string (keys included) must encode as UTF-8 (no lone surrogates)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise Rejected("bad_text", "a string holds a lone surrogate") from exc
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


@dataclass(frozen=True, slots=True)
class Receipt:
    event_id: str
    by: str


def parse_receipt(payload: bytes, max_bytes: int = 64 * 1024) -> Receipt:
    """A receipt ``{"event_id", "received_at", "by"}``; ``by`` defaults to ``police``."""
    if len(payload) > max_bytes:
        raise Rejected("too_large", f"receipt over {max_bytes} bytes")
    body = decode_object(payload)
    event_id = body.get("event_id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 64:
        raise Rejected("invalid", "event_id must be a string of 1-64 characters")
    by = body.get("by")
    if by is None or by == "":
        by = "police"
    if not isinstance(by, str) or len(by) > MAX_STRING:
        raise Rejected("invalid", "by must be a string")
    return Receipt(event_id, printable(by)[:128] or "police")


def printable(text: str) -> str:
    """``text`` without control characters (they have no place in a name or a log line)."""
    return "".join(ch for ch in text if ch.isprintable() or ch == " ")


def other_site(body: dict[str, Any], site_id: str) -> str | None:
    """The site a command names, when that is not ours (``site_id``, ``site`` or
    ``site: {"id"}``); None when it names none or ours."""
    named: list[Any] = []
    if "site_id" in body:
        named.append(body["site_id"])
    site = body.get("site")
    if isinstance(site, dict):
        if "id" in site:
            named.append(site["id"])
    elif "site" in body:
        named.append(site)
    for value in named:
        if value != site_id:
            return str(value)[:64]
    return None


class RecentRequests:
    """The answers to the last ``size`` request ids, oldest forgotten first."""

    def __init__(self, size: int = REPEAT_MEMORY) -> None:
        self.size = size
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, request_id: str) -> dict[str, Any] | None:
        return self._answers.get(request_id)

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._answers

    def remember(self, request_id: str, answer: dict[str, Any]) -> None:
        self._answers[request_id] = answer
        self._answers.move_to_end(request_id)
        while len(self._answers) > self.size:
            self._answers.popitem(last=False)


class RejectionLog:
    """Counts rejected inputs by (topic kind, reason) and logs each pair at most once per
    ``interval`` seconds, saying how many were not logged since: a flood of bad messages
    cannot flood the log."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.log = logger
        self.interval = interval
        self.counts: Counter[tuple[str, str]] = Counter()
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def reject(self, topic_kind: str, reason: str, message: str) -> None:
        key = (topic_kind, reason)
        self.counts[key] += 1
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            return
        logged_total = self.counts[key]
        since = logged_total - (last[1] if last is not None else 0) - 1
        self._last[key] = (now, logged_total)
        more = f" ({since} more since the last report)" if since > 0 else ""
        self.log.warning("police link: ignored a bad %s: %s%s", topic_kind, message, more)
