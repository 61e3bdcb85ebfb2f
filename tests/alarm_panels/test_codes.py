"""Unit tests of the code tables and payload decoding."""

from __future__ import annotations

import pytest

from adapters.alarm_panels.codes import CID_CODES, classify_cid, classify_sia, restore_kind
from adapters.alarm_panels.payload import PayloadError, decode_cid, decode_sia, split_account

# The protocol notes' table, row by row.
NOTES_TABLE: list[tuple[list[int], str]] = [
    ([120, 123], "alarm.panic"),
    ([121], "alarm.duress"),
    ([122], "alarm.holdup"),
    ([100, 101], "alarm.medical"),
    (list(range(110, 119)), "alarm.fire"),
    (list(range(130, 137)), "alarm.intrusion"),
    ([137, 144, 145, 383], "alarm.tamper"),
    (list(range(150, 163)), "alarm.auxiliary"),
    ([301], "fault.ac_loss"),
    ([302, 309, 311, 384], "fault.battery"),
    ([321], "fault.siren"),
    ([333, 381], "fault.supervision"),
    ([344], "fault.jamming"),
    ([350, 351, 354], "fault.communication"),
    ([373], "fault.fire_loop"),
    (list(range(401, 410)), "info.arming"),
    ([570], "info.bypass"),
    ([601], "info.test"),
    ([602], "info.periodic_test"),
]


def test_cid_table_is_exactly_the_notes_table() -> None:
    expected = {code: kind for codes, kind in NOTES_TABLE for code in codes}
    assert {code: info.kind for code, info in CID_CODES.items()} == expected


def test_cid_qualifiers() -> None:
    assert classify_cid(1, 120).kind == "alarm.panic"
    restored = classify_cid(3, 120)
    assert (restored.kind, restored.qualifier) == ("alarm.panic.restore", "restore")
    assert classify_cid(3, 301).kind == "fault.ac_loss.restore"
    # A status report is state, never a new alarm (not a second panic for the police).
    status = classify_cid(6, 302)
    assert (status.kind, status.qualifier, status.status_of) == (
        "info.status",
        "status",
        "fault.battery",
    )
    panic_status = classify_cid(6, 120)
    assert (panic_status.kind, panic_status.priority, panic_status.status_of) == (
        "info.status",
        4,
        "alarm.panic",
    )
    assert classify_cid(6, 999).status_of == "alarm.unknown"
    assert classify_cid(1, 601).kind == "info.test"
    assert classify_cid(1, 602).kind == "info.periodic_test"
    disarm, arm = classify_cid(1, 401), classify_cid(3, 401)
    assert (disarm.kind, disarm.arming) == ("info.arming", "disarmed")
    assert (arm.kind, arm.arming) == ("info.arming", "armed")
    with pytest.raises(ValueError):
        classify_cid(2, 120)


def test_unknown_codes() -> None:
    unknown = classify_cid(1, 999)
    assert (unknown.kind, unknown.known) == ("alarm.unknown", False)
    assert classify_cid(3, 999).kind == "alarm.unknown"
    assert classify_sia("ZZ").kind == "alarm.unknown"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("PA", "alarm.panic"),
        ("PR", "alarm.panic.restore"),
        ("HA", "alarm.holdup"),
        ("HR", "alarm.holdup.restore"),
        ("FA", "alarm.fire"),
        ("FR", "alarm.fire.restore"),
        ("BA", "alarm.intrusion"),
        ("BR", "alarm.intrusion.restore"),
        ("TA", "alarm.tamper"),
        ("TR", "alarm.tamper.restore"),
        ("MA", "alarm.medical"),
        ("AT", "fault.ac_loss"),
        ("AR", "fault.ac_loss.restore"),
        ("YT", "fault.battery"),
        ("YR", "fault.battery.restore"),
        ("RP", "info.periodic_test"),
        ("RX", "info.test"),
        ("OP", "info.arming"),
        ("CL", "info.arming"),
        ("BB", "info.bypass"),
    ],
)
def test_sia_codes(code: str, kind: str) -> None:
    assert classify_sia(code).kind == kind


def test_restore_kind() -> None:
    assert restore_kind("alarm.panic") == "alarm.panic.restore"
    assert restore_kind("info.bypass") == "info.bypass"
    assert restore_kind("alarm.unknown") == "alarm.unknown"


def test_split_account() -> None:
    assert split_account("#1234|Nri1/PA501") == ("1234", "Nri1/PA501")
    assert split_account("|Nri1/CL501") == (None, "Nri1/CL501")
    assert split_account("1120 01 015") == (None, "1120 01 015")


def test_decode_cid() -> None:
    (event,) = decode_cid("1120 01 015")
    assert (event.code, event.zone, event.area) == ("1120 01 015", 15, 1)
    assert event.classified.kind == "alarm.panic"
    for bad in ("1120 01", "2120 01 015", "x120 01 015", ""):
        with pytest.raises(PayloadError):
            decode_cid(bad)


def test_decode_sia_several_events() -> None:
    events = decode_sia("Nri1/PA501/BA502/ri2/FA003")
    assert [(e.code, e.zone, e.area, e.classified.kind) for e in events] == [
        ("PA501", 501, 1, "alarm.panic"),
        ("BA502", 502, 1, "alarm.intrusion"),
        ("FA003", 3, 2, "alarm.fire"),
    ]
    (opening,) = decode_sia("Nti12:30/id7/ri1/OP")
    assert (opening.zone, opening.user, opening.classified.arming) == (None, 7, "disarmed")
    for bad in ("ri1/PA501", "N", "Nri1", "Npa501", "Nri1/PA50x"):
        with pytest.raises(PayloadError):
            decode_sia(bad)
