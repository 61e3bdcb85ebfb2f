"""Decode the data block of SIA-DCS and ADM-CID messages into panel events (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from .codes import Classified, classify_cid, classify_sia

PayloadFormat = Literal["SIA-DCS", "ADM-CID"]

_CID = re.compile(r"(?P<q>[0-9])(?P<code>[0-9]{3}) ?(?P<group>[0-9]{2}) ?(?P<zone>[0-9]{3})")
_SIA_MODIFIER = re.compile(
    r"(?P<name>[a-z]{2})(?P<value>[0-9]{1,2}:[0-9]{2}|[0-9]{2}-[0-9]{2}-[0-9]{2,4}|[0-9]{1,6})"
)
_TIME = re.compile(r"(?:[01]?[0-9]|2[0-3]):[0-5][0-9]")
_SIA_CODE = re.compile(r"(?P<code>[A-Z]{2})(?P<address>[0-9]{0,6})")


class PayloadError(ValueError):
    """The data block does not follow the format its message type announces."""


@dataclass(frozen=True, slots=True)
class PanelEvent:
    """One event decoded from a message's data block."""

    format: PayloadFormat
    code: str
    """The raw code as sent: ``1120 01 015`` (Contact ID) or ``PA501`` (SIA-DCS)."""
    classified: Classified
    zone: int | None
    area: int | None
    """Contact ID group/partition, SIA ``ri`` area."""
    user: int | None = None
    text: str | None = None
    """The panel's own text for the event (SIA ``A`` field or block)."""
    time: str | None = None
    """The panel's time of the event, ``hh:mm`` in its own clock (SIA ``ti``)."""
    modifiers: dict[str, str] = field(default_factory=dict)
    """Other SIA modifiers as sent (``pi`` peripheral, ``da`` …)."""


def split_account(data: str) -> tuple[str | None, str]:
    """Split ``#1234|rest`` into (``1234``, ``rest``); data without the account part is kept."""
    if data.startswith("#"):
        account, sep, rest = data[1:].partition("|")
        if sep:
            return account, rest
    if data.startswith("|"):
        return None, data[1:]
    return None, data


def decode_cid(text: str) -> list[PanelEvent]:
    """Decode ``QXYZ GG CCC``. Raises ``PayloadError`` when it is not Contact ID."""
    match = _CID.fullmatch(text.strip())
    if match is None:
        raise PayloadError(f"not a Contact ID event: {text!r}")
    try:
        classified = classify_cid(int(match["q"]), int(match["code"]))
    except ValueError as exc:
        raise PayloadError(str(exc)) from None
    raw = f"{match['q']}{match['code']} {match['group']} {match['zone']}"
    return [
        PanelEvent(
            format="ADM-CID",
            code=raw,
            classified=classified,
            zone=int(match["zone"]),
            area=int(match["group"]),
        )
    ]


def decode_sia(text: str) -> list[PanelEvent]:
    """Decode SIA-DCS data (the SIA DC-04 data grammar): one event per event code.

    The data is blocks separated by ``|``: an event block ``N`` followed by fields separated
    by ``/``, and an ASCII block ``A`` with text. A field is a modifier (``ri`` area, ``id``
    user, ``pi`` peripheral, ``ti`` time ``hh:mm``, or another two lower-case letters), an
    event (two upper-case letters and an optional address: ``PA033``), or text (``A`` and
    the rest of the block: ``AFront gate``). Modifiers apply to the events after them; a
    modifier after an event that has none of its kind fills it in
    (``NBA1023/ti10:35``). Text in an ``N`` block belongs to the event just before it; an
    ``A`` block to every event before it still without text. Examples:
    ``Nri1/PA501/BA502``, ``Nri1/PA033|Agate panic``, ``Nti10:15/ri4/FA2/AFire Zone 2``,
    ``NBA1023/ti10:35/A+INTRUDER``, ``NRR|Atest``.

    Raises ``PayloadError`` when the data is not SIA-DCS or holds no event code.
    """
    blocks = text.split("|")
    if not blocks[0].startswith("N"):
        raise PayloadError(f"SIA data does not start with N: {text[:80]!r}")
    events: list[_Draft] = []
    for block in blocks:
        if block.startswith("N"):
            _decode_block(block[1:], events)
        elif block.startswith("A"):
            _attach_text(events, None, block[1:])
        elif block:
            raise PayloadError(f"not a SIA data block: {block[:80]!r}")
    if not events:
        raise PayloadError(f"no event code in SIA data: {text[:80]!r}")
    return [d.event() for d in events]


@dataclass(slots=True)
class _Draft:
    code: str
    address: str
    modifiers: dict[str, str]
    text: str | None = None

    def event(self) -> PanelEvent:
        mods = self.modifiers
        return PanelEvent(
            format="SIA-DCS",
            code=self.code + self.address,
            classified=classify_sia(self.code),
            zone=int(self.address) if self.address else None,
            area=int(mods["ri"]) if "ri" in mods else None,
            user=int(mods["id"]) if "id" in mods else None,
            text=self.text,
            time=mods.get("ti"),
            modifiers={k: v for k, v in mods.items() if k not in ("ri", "id", "ti")},
        )


def _decode_block(block: str, events: list[_Draft]) -> None:
    """Decode the fields of one ``N`` block (without the ``N``) into ``events``."""
    first = len(events)
    current: dict[str, str] = {}
    trailing: dict[str, str] = {}
    """Modifiers after the block's last event so far: they fill in what it lacks."""
    tokens = block.split("/")
    text: str | None = None
    for i, token in enumerate(tokens):
        pos = 0
        while (mod := _SIA_MODIFIER.match(token, pos)) is not None:
            name, value = mod["name"], mod["value"]
            if name == "ti" and _TIME.fullmatch(value) is None:
                raise PayloadError(f"SIA time is not hh:mm: {value[:20]!r}")
            current[name] = trailing[name] = value
            pos = mod.end()
        rest = token[pos:]
        if not rest:
            continue
        code = _SIA_CODE.fullmatch(rest)
        if code is not None:
            events.append(_Draft(code["code"], code["address"], dict(current)))
            trailing = {}
        elif rest.startswith("A"):
            # Text runs to the end of the block: it may itself contain '/'.
            text = "/".join([rest[1:], *tokens[i + 1 :]])
            break
        else:
            raise PayloadError(f"not a SIA event code: {rest[:40]!r}")
    for draft in events[first:]:
        for name, value in trailing.items():
            draft.modifiers.setdefault(name, value)
    if text is not None:
        _attach_text(events, first, text)


def _attach_text(events: list[_Draft], first: int | None, text: str) -> None:
    """Text in an ``N`` block (``first``: the block's first event) belongs to the event just
    before it; an ``A`` block (``first`` None) to every event before it still without text.
    Text with nowhere else to go is added to the last event's text."""
    text = text.strip()
    if not text or not events:
        return
    if first is not None:
        targets = [events[-1]] if len(events) > first and events[-1].text is None else []
    else:
        targets = [d for d in events if d.text is None]
    for draft in targets:
        draft.text = text
    if not targets:
        last = events[-1]
        last.text = text if last.text is None else f"{last.text} / {text}"


def decode_xdata(blocks: tuple[str, ...]) -> dict[str, str]:
    """SIA DC-07/DC-09 extended data blocks (``[X114E40.1]`` longitude, ``[Y030N20.2]``
    latitude, ``[H14:12:04,09-25-2025]`` time of occurrence, ``[Ialarm text]``…) as
    ``{name: value}`` by their one-letter identifier (``XDATA_NAMES``); other identifiers
    keep the letter as the name, keys and hashes are left out. Repeated identifiers keep
    the first."""
    out: dict[str, str] = {}
    for block in blocks:
        if not block:
            continue
        if block[0] in SECRET_XDATA:
            continue
        name = XDATA_NAMES.get(block[0], block[0])
        out.setdefault(name, block[1:])
    return out


XDATA_NAMES = {
    "C": "supervision_category",
    "H": "event_time",
    "I": "alarm_text",
    "J": "network_path",
    "L": "location",
    "M": "mac",
    "N": "network_address",
    "O": "building",
    "R": "room",
    "S": "site",
    "T": "alarm_trigger",
    "V": "verification",
    "X": "longitude",
    "Y": "latitude",
    "Z": "altitude",
}
"""The extended-data identifiers the hub names; others are kept under their letter."""

SECRET_XDATA = frozenset("AKP")
"""Identifiers whose value is a key or an authentication hash: never stored or forwarded."""


def public_xdata(blocks: tuple[str, ...]) -> list[str]:
    """The extended-data blocks as sent, with keys and hashes withheld."""
    return [b[:1] + "(withheld)" if b[:1] in SECRET_XDATA else b for b in blocks]
