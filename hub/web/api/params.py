"""Parameters and body schemas that several resources' route tables share."""

from __future__ import annotations

from typing import Any

from hub.web.auth import MAX_PASSWORD, MIN_PASSWORD
from hub.web.routing import Param
from hub.web.schemas import IDENT_PATTERN, UUID_PATTERN, obj


def q(name: str, schema: dict[str, Any], description: str, **kw: Any) -> Param:
    return Param(name, "query", schema, description, **kw)


def path(name: str, schema: dict[str, Any], description: str) -> Param:
    return Param(name, "path", schema, description, required=True)


DEVICE_ID = path("device_id", {"type": "string", "pattern": IDENT_PATTERN}, "Device id.")
EVENT_ID = path("event_id", {"type": "string", "pattern": UUID_PATTERN}, "Event id (UUID).")
LIMIT = q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Page size.")
#: Years 1970-2999: earlier days cannot be converted to UTC from every time zone.
DAY = {
    "type": "string",
    "format": "date",
    "pattern": r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
}
#: Characters an operator's text (a note, a disposition) may not hold: the C0 controls but
#: tab, line feed and carriage return, DEL and the C1 controls. Spelled out as ranges, never
#: as ``\s`` or ``\S``: Python's, ECMA-262's and Rust's regular expressions disagree on
#: what those match (U+001C-U+001F, U+0085, U+FEFF), so a client validating the document
#: and the server would disagree too.
CONTROL_CHARS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
#: What counts as blank around a text: the characters any of those engines calls white space.
BLANK_CHARS = r"\t\n\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NO_CONTROLS = {"pattern": f"^[^{CONTROL_CHARS}]*$"}
NOT_BLANK = {"pattern": f"[^{CONTROL_CHARS}{BLANK_CHARS}]"}
"""At least one character that is neither a control nor blank: what is left after strip()
is never empty. (Two linear patterns rather than one that backtracks on long bodies.)"""


def written(max_length: int, *, required: bool = True) -> dict[str, Any]:
    """A text an operator writes: no control characters and, when ``required``, not blank."""
    rule = "No control characters but tab, line feed and carriage return"
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length}
    if required:
        schema |= {"minLength": 1, "allOf": [NO_CONTROLS, NOT_BLANK]}
        return schema | {"description": f"{rule}; not blank."}
    return schema | {"allOf": [NO_CONTROLS], "description": f"{rule}."}


NOTE = written(2000, required=False)
SHORT = written(64)
"""A name an operator gives (a hazard's owner, a token's name)."""
LINE = written(500)
"""A line an operator writes (a record's title, an attestation's evidence)."""
PASSWORD = {"type": "string", "minLength": MIN_PASSWORD, "maxLength": MAX_PASSWORD}
BIG = 10**15


EVENT_FILTERS: tuple[Param, ...] = (
    q("q", {"type": "string", "maxLength": 100}, "Search kind, device, note, event id."),
    q("kind", {"type": "string", "maxLength": 64}, "Kind or kind prefix, e.g. alarm.panic."),
    q("category", {"enum": ["alarm", "fault", "info"]}, "Category."),
    q("priority", {"type": "integer", "minimum": 1, "maximum": 4}, "Exactly this priority."),
    q("max_priority", {"type": "integer", "minimum": 1, "maximum": 4}, "Priority ≤ this."),
    q(
        "state",
        {"type": "string", "pattern": r"^(new|acknowledged|closed)(,(new|acknowledged|closed))*$"},
        "Comma-separated states.",
    ),
    q("floor", {"type": "string", "maxLength": 64}, "Floor of the device."),
    q("zone", {"type": "string", "maxLength": 64}, "Zone of the device."),
    q("device", {"type": "string", "maxLength": 64}, "Device id."),
    q("since", {"type": "string", "format": "date-time"}, "Received at or after."),
    q("until", {"type": "string", "format": "date-time"}, "Received before."),
    q("test_mode", {"type": "boolean"}, "Only test (true) or real (false) events."),
)
COMPLIANCE_AT = (
    q("at", {"type": "string", "format": "date-time"}, "Evaluate as of this moment."),
    q("date", DAY, "Evaluate as of the end of this day (site time zone); `at` wins if both."),
)


def strict_obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    s = obj(required, **props)
    s["additionalProperties"] = False
    return s
