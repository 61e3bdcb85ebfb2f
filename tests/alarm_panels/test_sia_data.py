"""SIA DC-04 data in DC-09 frames: text, time, areas, several events, extended data.

Frames here are written by hand from what panels send and framed with pysiaalarm's CRC;
pysiaalarm (an implementation this project did not write) parses each one too, and both
must agree on account, code, area, text and time, and both must acknowledge it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pysiaalarm.account import SIAAccount
from pysiaalarm.event import SIAEvent
from pysiaalarm.utils.enums import ResponseType

from adapters.alarm_panels.config import AccountConfig
from adapters.alarm_panels.payload import PayloadError, decode_sia, decode_xdata
from adapters.alarm_panels.receiver import FrameProcessor
from tests.support.hostile import hostile_text

NOW = datetime(2025, 9, 25, 14, 12, 10, tzinfo=UTC)
STAMP = "_14:12:04,09-25-2025"
ACCOUNT = AccountConfig(account="1234", panel_device_id="panel-1", zones={33: "btn-gate-33"})


def peer_frame(seq: int, data: str, xdata: str = "") -> tuple[bytes, SIAEvent]:
    """A frame framed by pysiaalarm's CRC, and pysiaalarm's own reading of it."""
    body = f'"SIA-DCS"{seq:04d}L0#1234[{data}]{xdata}{STAMP}'
    line = f"{SIAEvent._crc_calc(body)}{len(body):04X}{body}"
    peer = SIAEvent.from_line(line, {"1234": SIAAccount("1234", None, allowed_timeband=None)})
    assert peer.valid_message, "pysiaalarm does not accept the frame's CRC"
    return f"\n{line}\r".encode("ascii"), peer


# (data, [(code, zone, area, text, time)])
FORMS: list[tuple[str, list[tuple[str, int | None, int | None, str | None, str | None]]]] = [
    ("#1234|Nri1/PA033|Agate panic", [("PA033", 33, 1, "gate panic", None)]),
    ("#1234|NRR|Atest", [("RR", None, None, "test", None)]),
    ("#1234|Nri1/PA033/AFront gate", [("PA033", 33, 1, "Front gate", None)]),
    ("#1234|Nti10:15/ri4/FA2/AFire Zone 2", [("FA2", 2, 4, "Fire Zone 2", "10:15")]),
    ("#1234|NBA1023/ti10:35/A+INTRUDER", [("BA1023", 1023, None, "+INTRUDER", "10:35")]),
    (
        "#1234|Nri1/PA501/ri2/BA502/AShop 2/back door",
        [("PA501", 501, 1, None, None), ("BA502", 502, 2, "Shop 2/back door", None)],
    ),
    ("#1234|Nid7/ri3/OP/ri3/CL", [("OP", None, 3, None, None), ("CL", None, 3, None, None)]),
]


@pytest.mark.parametrize(("data", "expected"), FORMS)
def test_dc04_forms_decode_with_their_text(
    data: str, expected: list[tuple[str, int | None, int | None, str | None, str | None]]
) -> None:
    events = decode_sia(data.split("|", 1)[1])
    got = [(e.code, e.zone, e.area, e.text, e.time) for e in events]
    assert got == expected


def test_a_text_block_panic_is_a_priority_one_panic_on_its_zone_with_its_text() -> None:
    frame, _ = peer_frame(1, "#1234|Nri1/PA033|Agate panic")
    verdict = FrameProcessor([ACCOUNT]).process(frame, NOW)
    assert verdict.reply_kind == "ack" and verdict.reason is None
    (event,) = verdict.events
    assert (event.kind, event.device_id, event.detail["priority"]) == (
        "alarm.panic",
        "btn-gate-33",
        1,
    )
    assert (event.source["zone"], event.source["area"], event.source["text"]) == (
        33,
        1,
        "gate panic",
    )


@pytest.mark.parametrize(("data", "expected"), FORMS)
def test_pysiaalarm_and_the_hub_read_the_same_frame_alike(
    data: str, expected: list[tuple[str, int | None, int | None, str | None, str | None]]
) -> None:
    frame, peer = peer_frame(7, data)
    verdict = FrameProcessor([ACCOUNT]).process(frame, NOW)
    assert verdict.reply_kind == "ack" and verdict.reason is None
    assert peer.response == ResponseType.ACK
    first = verdict.events[0]
    assert first.source["account"] == peer.account == "1234"
    # pysiaalarm reads only the first event code and keeps the rest as its "message".
    assert str(first.source["code"]).startswith(str(peer.code))
    if peer.ri:
        assert first.source["area"] == int(peer.ri)
    if peer.ti:
        assert first.source["panel_time"] == peer.ti
    texts = [e.source.get("text") for e in verdict.events if e.source.get("text")]
    for text in texts:
        assert peer.message is not None and str(text) in peer.message
    assert first.occurred_at == peer.timestamp


def test_extended_data_is_decoded_and_keys_are_withheld() -> None:
    xdata = "[X114E40.1][Y030N20.2][H14:12:03,09-25-2025][IFront gate][K0123456789ABCDEF]"
    frame, peer = peer_frame(3, "#1234|NPA033", xdata)
    verdict = FrameProcessor([ACCOUNT]).process(frame, NOW)
    (event,) = verdict.events
    ext = event.detail["extended"]
    assert ext == {
        "longitude": "114E40.1",
        "latitude": "030N20.2",
        "event_time": "14:12:03,09-25-2025",
        "alarm_text": "Front gate",
    }
    assert event.source["text"] == "Front gate"
    assert "0123456789ABCDEF" not in repr(event)
    peer_values = {x.identifier: x.value for x in peer.extended_data or []}
    assert peer_values["X"] == ext["longitude"] and peer_values["Y"] == ext["latitude"]
    assert decode_xdata(("Qodd",)) == {"Q": "odd"}


def test_an_undecodable_sia_block_is_stored_raw_and_acknowledged_not_duh() -> None:
    frame, _ = peer_frame(4, "#1234|Nri1/pa033 what")
    verdict = FrameProcessor([ACCOUNT]).process(frame, NOW)
    assert verdict.reply_kind == "ack" and verdict.reason == "payload"
    (event,) = verdict.events
    assert (event.kind, event.source["code"]) == ("alarm.unknown", "Nri1/pa033 what")


SIA_ALPHABET = st.sampled_from([*"NA/|ritdpa0123456789:PABRFCLOX -+^", "ti", "ri", "id"])


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.lists(SIA_ALPHABET, max_size=40).map("".join),
        hostile_text().map(lambda t: "N" + t),
    )
)
def test_any_sia_data_decodes_or_is_refused_cleanly(data: str) -> None:
    try:
        events = decode_sia(data)
    except PayloadError:
        return
    assert events
    for event in events:
        assert event.code[:2].isupper() and event.code[:2].isascii()
        assert event.zone is None or 0 <= event.zone < 10**6


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120))
def test_any_printable_sia_frame_is_stored_then_acked_never_duhed(data: str) -> None:
    body = f'"SIA-DCS"0009L0#1234[#1234|{data}]{STAMP}'
    try:
        line = f"{SIAEvent._crc_calc(body)}{len(body):04X}{body}"
    except Exception:  # pysiaalarm cannot frame it; nothing to compare
        return
    verdict = FrameProcessor([ACCOUNT]).process(f"\n{line}\r".encode("ascii"), NOW)
    if verdict.events:
        assert verdict.reply_kind == "ack", verdict
    else:
        # Only content the frame grammar itself refuses ('[' or ']' in data) is DUHed.
        assert verdict.reply_kind in ("ack", "duh")
        if verdict.reply_kind == "duh":
            assert "[" in data or "]" in data
