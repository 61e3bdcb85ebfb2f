"""The hub's own tables: Contact ID and SIA-DCS event codes → hub event kinds.

Naming rules:

* A restore (Contact ID qualifier 3, or a SIA restore code) of an ``alarm.*`` / ``fault.*``
  kind ``X`` is ``X.restore``. ``info.*`` kinds keep their kind: for them qualifier 3 means
  "closing" (arming) or "end of condition" (unbypass), recorded in the qualifier.
* Qualifier 6 (status report: the condition is still present) is state, not a new alarm:
  it is ``info.status`` (priority 4) whatever the code, with the code's own kind in
  ``status_of`` and the qualifier ``status``. A panel repeating "zone 15 still in panic"
  must not look like a second panic.
* A code missing from the tables is ``alarm.unknown`` with the raw code kept by the caller:
  never dropped. ``alarm.unknown`` never gets a ``.restore`` suffix; the operator reads the
  raw code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

UNKNOWN_KIND = "alarm.unknown"
STATUS_KIND = "info.status"

Qualifier = Literal["new", "restore", "status"]
Arming = Literal["armed", "disarmed"]

CID_QUALIFIERS: Mapping[int, Qualifier] = {1: "new", 3: "restore", 6: "status"}


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """What one code means to the hub."""

    kind: str
    priority: int
    """1 most urgent … 4 informational (the hub's event model has the final say)."""


@dataclass(frozen=True, slots=True)
class SiaCodeInfo:
    """A SIA-DCS two-letter code: a kind and whether the code itself is the restore."""

    kind: str
    priority: int
    restore: bool = False
    arming: Arming | None = None


@dataclass(frozen=True, slots=True)
class Classified:
    """The result of looking a code up."""

    kind: str
    qualifier: Qualifier
    known: bool
    priority: int
    arming: Arming | None = None
    status_of: str | None = None
    """For a status report: the kind whose condition is still present."""


def _cid_table() -> dict[int, CodeInfo]:
    table: dict[int, CodeInfo] = {}

    def put(codes: range | tuple[int, ...], kind: str, priority: int) -> None:
        for code in codes:
            table[code] = CodeInfo(kind, priority)

    put((120, 123), "alarm.panic", 1)
    put((121,), "alarm.duress", 1)
    put((122,), "alarm.holdup", 1)
    put((100, 101), "alarm.medical", 1)
    put(range(110, 119), "alarm.fire", 1)
    put(range(130, 137), "alarm.intrusion", 2)
    put((137, 144, 145, 383), "alarm.tamper", 2)
    put(range(150, 163), "alarm.auxiliary", 2)
    put((301,), "fault.ac_loss", 4)
    put((302, 309, 311, 384), "fault.battery", 4)
    put((321,), "fault.siren", 3)
    put((333, 381), "fault.supervision", 3)
    put((344,), "fault.jamming", 3)
    put((350, 351, 354), "fault.communication", 3)
    put((373,), "fault.fire_loop", 3)
    put(range(401, 410), "info.arming", 4)
    put((570,), "info.bypass", 4)
    put((601,), "info.test", 4)
    put((602,), "info.periodic_test", 4)
    return table


CID_CODES: Mapping[int, CodeInfo] = _cid_table()
"""Contact ID event code (XYZ) → kind, exactly the table in the protocol notes."""


def _sia(
    kind: str, priority: int, restore: bool = False, arming: Arming | None = None
) -> SiaCodeInfo:
    return SiaCodeInfo(kind, priority, restore, arming)


SIA_CODES: Mapping[str, SiaCodeInfo] = {
    # Alarms and their restores.
    "PA": _sia("alarm.panic", 1),
    "PR": _sia("alarm.panic", 1, restore=True),
    "HA": _sia("alarm.holdup", 1),
    "HR": _sia("alarm.holdup", 1, restore=True),
    "MA": _sia("alarm.medical", 1),
    "MR": _sia("alarm.medical", 1, restore=True),
    "FA": _sia("alarm.fire", 1),
    "FR": _sia("alarm.fire", 1, restore=True),
    "KA": _sia("alarm.fire", 1),  # heat
    "KR": _sia("alarm.fire", 1, restore=True),
    "SA": _sia("alarm.fire", 1),  # sprinkler
    "SR": _sia("alarm.fire", 1, restore=True),
    "BA": _sia("alarm.intrusion", 2),
    "BR": _sia("alarm.intrusion", 2, restore=True),
    "TA": _sia("alarm.tamper", 2),
    "TR": _sia("alarm.tamper", 2, restore=True),
    "GA": _sia("alarm.auxiliary", 2),  # gas
    "GR": _sia("alarm.auxiliary", 2, restore=True),
    "WA": _sia("alarm.auxiliary", 2),  # water
    "WR": _sia("alarm.auxiliary", 2, restore=True),
    # Troubles and their restores.
    "AT": _sia("fault.ac_loss", 4),
    "AR": _sia("fault.ac_loss", 4, restore=True),
    "YT": _sia("fault.battery", 4),  # system battery trouble
    "YR": _sia("fault.battery", 4, restore=True),
    "XT": _sia("fault.battery", 4),  # transmitter (wireless device) battery
    "XR": _sia("fault.battery", 4, restore=True),
    "YA": _sia("fault.siren", 3),  # bell fault
    "YH": _sia("fault.siren", 3, restore=True),
    "XQ": _sia("fault.jamming", 3),  # RF interference
    "XH": _sia("fault.jamming", 3, restore=True),
    "YC": _sia("fault.communication", 3),  # communications fail
    "YK": _sia("fault.communication", 3, restore=True),
    "FT": _sia("fault.fire_loop", 3),  # fire trouble
    "FJ": _sia("fault.fire_loop", 3, restore=True),
    # Information.
    "RP": _sia("info.periodic_test", 4),
    "RX": _sia("info.test", 4),  # manual test
    "TX": _sia("info.test", 4),  # test report
    "OP": _sia("info.arming", 4, arming="disarmed"),
    "OA": _sia("info.arming", 4, arming="disarmed"),  # automatic opening
    "CL": _sia("info.arming", 4, restore=True, arming="armed"),
    "CA": _sia("info.arming", 4, restore=True, arming="armed"),  # automatic closing
    "RR": _sia("info.power_up", 4),  # power up / reset
    "BB": _sia("info.bypass", 4),
    "BU": _sia("info.bypass", 4, restore=True),
}
"""SIA-DCS two-letter codes → the same kinds as Contact ID."""


def restore_kind(kind: str) -> str:
    """The kind of the restore of ``kind`` (``alarm.panic`` → ``alarm.panic.restore``)."""
    if kind == UNKNOWN_KIND or not kind.startswith(("alarm.", "fault.")):
        return kind
    return kind + ".restore"


def classify_cid(qualifier: int, code: int) -> Classified:
    """Classify a Contact ID event. Raises ``ValueError`` for a qualifier other than 1/3/6."""
    try:
        qual = CID_QUALIFIERS[qualifier]
    except KeyError:
        raise ValueError(f"Contact ID qualifier {qualifier} is not 1, 3 or 6") from None
    info = CID_CODES.get(code)
    if qual == "status":
        of = info.kind if info is not None else UNKNOWN_KIND
        return Classified(STATUS_KIND, qual, info is not None, priority=4, status_of=of)
    if info is None:
        return Classified(UNKNOWN_KIND, qual, known=False, priority=2)
    arming: Arming | None = None
    if info.kind == "info.arming":
        # Contact ID: 1 = opening (disarm), 3 = closing (arm).
        arming = "disarmed" if qual == "new" else "armed"
    kind = restore_kind(info.kind) if qual == "restore" else info.kind
    return Classified(kind, qual, known=True, priority=info.priority, arming=arming)


def classify_sia(code: str) -> Classified:
    """Classify a SIA-DCS two-letter event code."""
    info = SIA_CODES.get(code)
    if info is None:
        return Classified(UNKNOWN_KIND, "new", known=False, priority=2)
    if info.restore:
        return Classified(
            restore_kind(info.kind), "restore", True, info.priority, arming=info.arming
        )
    return Classified(info.kind, "new", True, info.priority, arming=info.arming)
