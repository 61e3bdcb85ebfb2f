"""Decode the data block of SIA-DCS and ADM-CID messages into panel events (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .codes import Classified, classify_cid, classify_sia

PayloadFormat = Literal["SIA-DCS", "ADM-CID"]

_CID = re.compile(r"(?P<q>[0-9])(?P<code>[0-9]{3}) ?(?P<group>[0-9]{2}) ?(?P<zone>[0-9]{3})")
_SIA_MODIFIER = re.compile(r"(?P<name>ri|id|pi|ti)(?P<value>[0-9]{2}:[0-9]{2}|[0-9]{1,6})")
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
    """Decode SIA-DCS data such as ``Nri1/PA501/BA502``: one event per code.

    ``ri`` (area) and ``id`` (user) modifiers apply to the codes after them until changed.
    Raises ``PayloadError`` when the block is not SIA-DCS or holds no event code.
    """
    if not text.startswith("N"):
        raise PayloadError(f"SIA data does not start with N: {text!r}")
    area: int | None = None
    user: int | None = None
    events: list[PanelEvent] = []
    for token in text[1:].split("/"):
        pos = 0
        while (mod := _SIA_MODIFIER.match(token, pos)) is not None:
            if mod["name"] == "ri":
                area = int(mod["value"])
            elif mod["name"] == "id":
                user = int(mod["value"])
            pos = mod.end()
        rest = token[pos:]
        if not rest:
            continue
        code = _SIA_CODE.fullmatch(rest)
        if code is None:
            raise PayloadError(f"not a SIA event code: {rest!r}")
        address = code["address"]
        events.append(
            PanelEvent(
                format="SIA-DCS",
                code=rest,
                classified=classify_sia(code["code"]),
                zone=int(address) if address else None,
                area=area,
                user=user,
            )
        )
    if not events:
        raise PayloadError(f"no event code in SIA data: {text!r}")
    return events
