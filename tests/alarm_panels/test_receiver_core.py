"""Unit tests of the pure receiver decisions and of supervision bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.alarm_panels.config import AccountConfig
from adapters.alarm_panels.protocol import wrap
from adapters.alarm_panels.receiver import FrameProcessor
from adapters.alarm_panels.supervision import Supervisor
from simulators.panel import build_frame, parse_reply

NOW = datetime(2025, 9, 25, 14, 12, 10, tzinfo=UTC)
KEY = b"0123456789ABCDEF"

PLAIN = AccountConfig(
    account="1234", panel_device_id="panel-1", zones={501: "button-501", 15: "button-15"}
)
SECURE = AccountConfig(account="abc", panel_device_id="panel-2", key=KEY)


@pytest.fixture
def processor() -> FrameProcessor:
    return FrameProcessor([PLAIN, SECURE])


def frame(
    data: str,
    *,
    token: str = "ADM-CID",
    seq: int = 1,
    account: str = "1234",
    key: bytes | None = None,
    at: datetime | None = NOW,
) -> bytes:
    return build_frame(token=token, seq=seq, account=account, data=data, key=key, timestamp=at)


def test_documented_sia_frame(processor: FrameProcessor) -> None:
    doc = b'\n69BA003A"SIA-DCS"0001L0#1234[#1234|Nri1/PA501]_14:12:04,09-25-2025\r'
    verdict = processor.process(doc, NOW)
    assert verdict.reply_kind == "ack"
    assert verdict.reply is not None and verdict.reply.endswith(b'"ACK"0001L0#1234[]\r')
    (event,) = verdict.events
    assert event.kind == "alarm.panic"
    assert event.device_id == "button-501"
    assert event.occurred_at == datetime(2025, 9, 25, 14, 12, 4, tzinfo=UTC)
    assert dict(event.source) == {
        "protocol": "sia-dc09",
        "format": "SIA-DCS",
        "account": "1234",
        "code": "PA501",
        "qualifier": "new",
        "zone": 501,
        "area": 1,
        "receiver": None,
        "prefix": "0",
        "seq": 1,
        "encrypted": False,
    }


def test_documented_cid_frame(processor: FrameProcessor) -> None:
    doc = b'\n670C003B"ADM-CID"0002L0#1234[#1234|1120 01 015]_14:12:04,09-25-2025\r'
    (event,) = processor.process(doc, NOW).events
    assert (event.kind, event.device_id) == ("alarm.panic", "button-15")
    assert (event.source["code"], event.source["zone"], event.source["area"]) == (
        "1120 01 015",
        15,
        1,
    )


def test_null_and_empty_are_acked_without_events(processor: FrameProcessor) -> None:
    for raw in (frame("", token="NULL"), b'\n96ED0016"SIA-DCS"0001L0#1234[]\r'):
        verdict = processor.process(raw, NOW)
        assert (verdict.reply_kind, verdict.events, verdict.alive) == ("ack", (), True)


def test_unknown_zone_goes_to_panel_and_unknown_code_is_kept(processor: FrameProcessor) -> None:
    verdict = processor.process(frame("#1234|1999 01 077"), NOW)
    assert verdict.reply_kind == "ack"
    assert verdict.unknown_codes == 1
    (event,) = verdict.events
    assert (event.kind, event.device_id, event.source["code"]) == (
        "alarm.unknown",
        "panel-1",
        "1999 01 077",
    )


def test_restore_and_status(processor: FrameProcessor) -> None:
    (restore,) = processor.process(frame("#1234|3120 01 015"), NOW).events
    assert (restore.kind, restore.source["qualifier"]) == ("alarm.panic.restore", "restore")
    (status,) = processor.process(frame("#1234|6301 01 000"), NOW).events
    assert (status.kind, status.source["qualifier"]) == ("info.status", "status")
    assert status.detail["status_of"] == "fault.ac_loss"
    (panic,) = processor.process(frame("#1234|6120 01 015"), NOW).events
    assert (panic.kind, panic.detail["status_of"], panic.source["zone"]) == (
        "info.status",
        "alarm.panic",
        15,
    )


def test_undecodable_data_is_stored_then_acked_never_duh(processor: FrameProcessor) -> None:
    verdict = processor.process(frame("#1234|what is this"), NOW)
    assert (verdict.reply_kind, verdict.reason) == ("ack", "payload")
    assert verdict.reply is not None and b'"ACK"0001L0#1234[]' in verdict.reply
    (event,) = verdict.events
    assert (event.kind, event.source["code"]) == ("alarm.unknown", "what is this")
    other = processor.process(frame("#1234|1120 01 015", token="SIA-XYZ"), NOW)
    assert (other.reply_kind, other.reason, len(other.events)) == ("ack", "unsupported", 1)


def test_unknown_account_is_nak(processor: FrameProcessor) -> None:
    verdict = processor.process(frame("#9999|1120 01 015", account="9999"), NOW)
    assert (verdict.reply_kind, verdict.reason, verdict.unknown_account) == (
        "nak",
        "account",
        "9999",
    )
    assert verdict.events == ()
    assert verdict.reply is not None and b'"NAK"0000R0L0A0[]_14:12:10,09-25-2025' in verdict.reply


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-40, True), (-41, False), (20, True), (21, False)]
)
def test_timestamp_window(processor: FrameProcessor, offset: int, accepted: bool) -> None:
    verdict = processor.process(frame("#1234|1120 01 015", at=NOW + timedelta(seconds=offset)), NOW)
    if accepted:
        assert verdict.reply_kind == "ack"
    else:
        assert (verdict.reply_kind, verdict.reason, verdict.events) == ("nak", "timestamp", ())
        assert verdict.alive


def test_missing_timestamp_is_fine_when_unencrypted(processor: FrameProcessor) -> None:
    verdict = processor.process(frame("#1234|1120 01 015", at=None), NOW)
    assert verdict.reply_kind == "ack"
    assert verdict.events[0].occurred_at == NOW


def test_encrypted(processor: FrameProcessor) -> None:
    verdict = processor.process(frame("#ABC|1130 02 004", account="ABC", key=KEY), NOW)
    assert verdict.reply_kind == "ack"
    assert verdict.reply is not None
    reply = parse_reply(verdict.reply, KEY)
    assert reply is not None and (reply.kind, reply.seq, reply.encrypted) == ("ACK", 1, True)
    assert reply.timestamp == NOW
    (event,) = verdict.events
    assert (event.kind, event.source["encrypted"], event.source["area"]) == (
        "alarm.intrusion",
        True,
        2,
    )


def test_wrong_key_or_plaintext_on_keyed_account(processor: FrameProcessor) -> None:
    wrong = processor.process(frame("#ABC|1130 02 004", account="ABC", key=b"X" * 16), NOW)
    assert (wrong.reply_kind, wrong.reason, wrong.alive, wrong.events) == (
        "nak",
        "decrypt",
        False,
        (),
    )
    plain = processor.process(frame("#ABC|1130 02 004", account="ABC"), NOW)
    assert (plain.reply_kind, plain.reason, plain.events) == ("nak", "unencrypted", ())
    keyless = processor.process(frame("#1234|1130 02 004", key=KEY), NOW)
    assert (keyless.reply_kind, keyless.reason) == ("nak", "decrypt")


def test_dedupe_key_stable_across_resends(processor: FrameProcessor) -> None:
    first = processor.process(
        frame("#ABC|Nri1/PA501/BA502", token="SIA-DCS", seq=7, account="ABC", key=KEY), NOW
    )
    later = NOW + timedelta(seconds=5)
    resend = processor.process(
        frame("#ABC|Nri1/PA501/BA502", token="SIA-DCS", seq=7, account="ABC", key=KEY, at=later),
        later,
    )
    keys = [e.dedupe_key for e in first.events]
    assert keys == [e.dedupe_key for e in resend.events]
    assert len(set(keys)) == 2
    other_seq = processor.process(
        frame("#ABC|Nri1/PA501/BA502", token="SIA-DCS", seq=8, account="ABC", key=KEY), NOW
    )
    other_data = processor.process(
        frame("#ABC|Nri1/PA501/BA503", token="SIA-DCS", seq=7, account="ABC", key=KEY), NOW
    )
    assert not set(keys) & {e.dedupe_key for e in other_seq.events + other_data.events}


def test_damaged_frame_gets_nothing(processor: FrameProcessor) -> None:
    good = frame("#1234|1120 01 015")
    verdict = processor.process(good.replace(b"1120", b"1121"), NOW)
    assert (verdict.reply_kind, verdict.reply, verdict.events, verdict.reason) == (
        "none",
        None,
        (),
        "crc",
    )
    assert processor.process(wrap('"ADM-CID"0001L0#1234['), NOW).reply_kind == "duh"


def test_supervisor_with_fake_clock() -> None:
    cfg = AccountConfig(
        account="1234", panel_device_id="p", supervision_interval=10, supervision_grace=5
    )
    off = AccountConfig(account="5678", panel_device_id="q")
    sup = Supervisor([cfg, off], start=100.0)
    assert sup.status("1234") is not None and sup.status("1234").state == "unknown"  # type: ignore[union-attr]
    assert sup.next_deadline() == 115.0
    assert sup.overdue(115.0) == []
    assert not sup.heard("1234", 110.0, NOW)
    assert sup.status("1234").state == "ok"  # type: ignore[union-attr]
    assert sup.overdue(125.0) == []
    (late,) = sup.overdue(125.5)
    assert late.account == "1234"
    assert not sup.mark_lost(late, NOW)
    assert sup.status("1234").state == "lost"  # type: ignore[union-attr]
    assert sup.overdue(1000.0) == []
    assert sup.next_deadline() is None
    assert sup.heard("1234", 1001.0, NOW)  # restore due
    sup.restored("1234")
    assert sup.status("1234").state == "ok"  # type: ignore[union-attr]
    assert sup.next_deadline() == 1016.0
    assert sup.status("5678").state == "unknown"  # type: ignore[union-attr]
    assert sup.status("9999") is None


def test_supervisor_message_during_fault_store() -> None:
    cfg = AccountConfig(
        account="1234", panel_device_id="p", supervision_interval=1, supervision_grace=0
    )
    sup = Supervisor([cfg], start=0.0)
    (late,) = sup.overdue(2.0)
    sup.heard("1234", 2.1, NOW)  # arrives while the fault is being stored
    assert sup.mark_lost(late, NOW)  # caller must store the restore at once
