"""Unit tests of the pure DC-09 wire format: CRC, frames, replies, framing, keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.alarm_panels import crypto
from adapters.alarm_panels.protocol import (
    Discarded,
    Envelope,
    FrameRejected,
    FrameSplitter,
    build_ack,
    build_duh,
    build_nak,
    crc16_arc,
    open_envelope,
    parse_envelope,
    timestamp_in_window,
    wrap,
)

# The valid frames from the protocol notes (LF/CR added back).
DOC_NULL = b'\n96ED0016"SIA-DCS"0001L0#1234[]\r'
DOC_SIA = b'\n69BA003A"SIA-DCS"0001L0#1234[#1234|Nri1/PA501]_14:12:04,09-25-2025\r'
DOC_CID = b'\n670C003B"ADM-CID"0002L0#1234[#1234|1120 01 015]_14:12:04,09-25-2025\r'
DOC_TIME = datetime(2025, 9, 25, 14, 12, 4, tzinfo=UTC)
NOW = DOC_TIME + timedelta(seconds=3)


def test_crc_check_value() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D
    assert crc16_arc(b"") == 0


@pytest.mark.parametrize("frame", [DOC_NULL, DOC_SIA, DOC_CID])
def test_documented_frames_parse(frame: bytes) -> None:
    envelope = parse_envelope(frame)
    assert envelope.account == "1234"
    assert envelope.prefix == "0"
    assert envelope.receiver is None
    assert not envelope.encrypted
    # Also without LF/CR, as written in the notes.
    assert parse_envelope(frame.strip(b"\n\r")) == envelope


def test_documented_frames_content() -> None:
    sia = open_envelope(parse_envelope(DOC_SIA), None)
    assert (sia.envelope.token, sia.envelope.seq) == ("SIA-DCS", "0001")
    assert sia.data == "#1234|Nri1/PA501"
    assert sia.timestamp == DOC_TIME
    cid = open_envelope(parse_envelope(DOC_CID), None)
    assert (cid.envelope.token, cid.envelope.seq) == ("ADM-CID", "0002")
    assert cid.data == "#1234|1120 01 015"
    empty = open_envelope(parse_envelope(DOC_NULL), None)
    assert empty.data == ""
    assert empty.timestamp is None


def test_receiver_and_xdata_fields() -> None:
    frame = wrap('"SIA-DCS"0042R1AL2B#ABCDEF[#ABCDEF|Nri3/BA004][XHello][Mmac]_01:02:03,12-31-2024')
    message = open_envelope(parse_envelope(frame), None)
    env = message.envelope
    assert (env.seq, env.receiver, env.prefix, env.account) == ("0042", "1A", "2B", "ABCDEF")
    assert message.extended == ("XHello", "Mmac")
    assert message.timestamp == datetime(2024, 12, 31, 1, 2, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (DOC_SIA.replace(b"69BA", b"69BB"), "crc"),
        (DOC_SIA.replace(b"003A", b"003B"), "length"),
        (DOC_SIA.replace(b"PA501", b"PA502"), "crc"),
        (DOC_SIA[:-10] + b"\r", "length"),
        (b"\nhello\r", "format"),
        (b'\nZZZZ0016"SIA-DCS"0001L0#1234[]\r', "format"),
    ],
)
def test_damaged_frames_get_no_reply(frame: bytes, reason: str) -> None:
    with pytest.raises(FrameRejected) as info:
        parse_envelope(frame)
    assert info.value.reason == reason
    assert info.value.reply == "none"


def test_intact_but_malformed_header_gets_duh() -> None:
    with pytest.raises(FrameRejected) as info:
        parse_envelope(wrap('"SIA-DCS"01L0#1234[]'))
    assert (info.value.reason, info.value.reply) == ("format", "duh")


def test_vendor_header_variants_get_duh() -> None:
    span = b'"SIA-DCS"0001L0#1234[]'
    binary_crc = b"\n" + crc16_arc(span).to_bytes(2, "big") + b"0016" + span + b"\r"
    with pytest.raises(FrameRejected) as info:
        parse_envelope(binary_crc)
    assert (info.value.reason, info.value.reply) == ("unsupported", "duh")
    prefixed = b"\nK1234" + DOC_NULL[1:]
    with pytest.raises(FrameRejected) as info:
        parse_envelope(prefixed)
    assert (info.value.reason, info.value.reply) == ("unsupported", "duh")


def test_timestamp_window() -> None:
    assert timestamp_in_window(NOW - timedelta(seconds=40), NOW)
    assert timestamp_in_window(NOW + timedelta(seconds=20), NOW)
    assert not timestamp_in_window(NOW - timedelta(seconds=41), NOW)
    assert not timestamp_in_window(NOW + timedelta(seconds=21), NOW)


def test_unreadable_timestamp_is_nak() -> None:
    frame = wrap('"ADM-CID"0002L0#1234[#1234|1120 01 015]_25:12:04,09-25-2025')
    with pytest.raises(FrameRejected) as info:
        open_envelope(parse_envelope(frame), None)
    assert (info.value.reason, info.value.reply) == ("timestamp", "nak")


def _body(frame: bytes) -> str:
    """Check a reply's own CRC/LEN and return its span."""
    assert frame[:1] == b"\n" and frame[-1:] == b"\r"
    span = frame[9:-1]
    assert int(frame[1:5], 16) == crc16_arc(span)
    assert int(frame[5:9], 16) == len(span)
    assert frame[1:9] == frame[1:9].upper()
    return span.decode("ascii")


def test_ack_echoes_header() -> None:
    assert _body(build_ack(parse_envelope(DOC_SIA), None, NOW)) == '"ACK"0001L0#1234[]'
    env = Envelope("ADM-CID", False, "0099", "12", "3", "ABC123", "")
    assert _body(build_ack(env, None, NOW)) == '"ACK"0099R12L3#ABC123[]'


def test_nak_and_duh_format() -> None:
    assert _body(build_nak(NOW)) == '"NAK"0000R0L0A0[]_14:12:07,09-25-2025'
    assert _body(build_duh(None)) == '"DUH"0000R0L0A0[]'
    assert _body(build_duh(parse_envelope(DOC_CID))) == '"DUH"0002L0#1234[]'


@pytest.mark.parametrize("size", [16, 24, 32])
def test_encrypted_ack_decrypts_to_pad_and_timestamp(size: int) -> None:
    key = bytes(range(size))
    env = Envelope("SIA-DCS", True, "0005", None, "0", "1234", "")
    body = _body(build_ack(env, key, NOW))
    head = '"*ACK"0005L0#1234['
    assert body.startswith(head)
    plain = crypto.decrypt(key, bytes.fromhex(body[len(head) :]))
    assert plain.endswith(b"|]_14:12:07,09-25-2025")
    pad = plain[: -len(b"|]_14:12:07,09-25-2025")]
    assert 1 <= len(pad) <= 16
    assert not set(pad) & set(b"|[]")


def _encrypted_frame(key: bytes, plain: bytes, token: str = "ADM-CID") -> bytes:
    region = crypto.encrypt(key, plain).hex().upper()
    return wrap(f'"*{token}"0003L0#1234[{region}')


def test_decrypt_tolerates_constant_pad_without_bar() -> None:
    key = b"K" * 16
    content = b"#1234|1130 01 004]_14:12:04,09-25-2025"
    plain = b"\0" * crypto.pad_length(len(content)) + content
    message = open_envelope(parse_envelope(_encrypted_frame(key, plain)), key)
    assert message.data == "#1234|1130 01 004"
    null = b"]_14:12:04,09-25-2025"
    message = open_envelope(
        parse_envelope(_encrypted_frame(key, b"0" * crypto.pad_length(len(null)) + null, "NULL")),
        key,
    )
    assert message.data == ""


def test_decrypt_failures_are_nak() -> None:
    key = b"K" * 16
    content = b"|#1234|1130 01 004]_14:12:04,09-25-2025"
    frame = _encrypted_frame(key, crypto.random_pad(crypto.pad_length(len(content))) + content)
    for wrong in (None, b"L" * 16, b"K" * 32):
        with pytest.raises(FrameRejected) as info:
            open_envelope(parse_envelope(frame), wrong)
        assert (info.value.reason, info.value.reply) == ("decrypt", "nak")
    no_time = b"|#1234|1130 01 004]"
    frame = _encrypted_frame(key, crypto.random_pad(crypto.pad_length(len(no_time))) + no_time)
    with pytest.raises(FrameRejected) as info:
        open_envelope(parse_envelope(frame), key)
    assert (info.value.reason, info.value.reply) == ("timestamp", "nak")


def test_parse_key() -> None:
    assert crypto.parse_key("0123456789abcdef", "ascii") == b"0123456789abcdef"
    assert crypto.parse_key("00" * 16, "hex") == bytes(16)
    assert len(crypto.parse_key("a" * 24, "ascii")) == 24
    assert len(crypto.parse_key("ab" * 32, "hex")) == 32
    # 32 characters mean different keys depending on the configured encoding.
    text = "00112233445566778899AABBCCDDEEFF"
    assert len(crypto.parse_key(text, "ascii")) == 32
    assert len(crypto.parse_key(text, "hex")) == 16
    for bad, encoding in [("short", "ascii"), ("zz" * 16, "hex"), ("0" * 31, "hex")]:
        with pytest.raises(crypto.InvalidKey):
            crypto.parse_key(bad, encoding)  # type: ignore[arg-type]


def _frames(pieces: list[bytes | Discarded]) -> list[bytes]:
    return [p for p in pieces if isinstance(p, bytes)]


def test_splitter_byte_by_byte_and_joined() -> None:
    splitter = FrameSplitter(2048)
    out: list[bytes | Discarded] = []
    for i in range(len(DOC_SIA)):
        out += splitter.feed(DOC_SIA[i : i + 1])
    assert out == [DOC_SIA]
    assert _frames(splitter.feed(DOC_CID + DOC_NULL)) == [DOC_CID, DOC_NULL]
    assert not splitter.partial


def test_splitter_boundaries_anywhere() -> None:
    stream = DOC_SIA + DOC_CID + DOC_NULL
    for cut in range(len(stream)):
        splitter = FrameSplitter(2048)
        got = _frames(splitter.feed(stream[:cut]) + splitter.feed(stream[cut:]))
        assert got == [DOC_SIA, DOC_CID, DOC_NULL]


def test_splitter_discards_garbage_and_resyncs() -> None:
    splitter = FrameSplitter(2048)
    out = splitter.feed(b"\x00junk" + DOC_SIA + b"\npartial-without-end" + DOC_CID)
    assert _frames(out) == [DOC_SIA, DOC_CID]
    assert [p.reason for p in out if isinstance(p, Discarded)] == ["garbage", "garbage"]


def test_splitter_oversize() -> None:
    splitter = FrameSplitter(64)
    out = splitter.feed(b"\n" + b"A" * 100)
    assert out == [Discarded("oversize", 101)]
    assert not splitter.partial
    out = splitter.feed(b"B" * 50 + b"\r" + DOC_NULL)
    assert out == [DOC_NULL]
    out = splitter.feed(b"\n" + b"C" * 70 + b"\r")
    assert out == [Discarded("oversize", 72)]


def test_wrong_key_leaving_a_printable_tail_is_a_decrypt_failure() -> None:
    # What a wrong key sometimes yields: unprintable noise whose last byte happens to be "]".
    key = b"K" * 16
    noise = bytes(range(0x80, 0x8F)) + b"]"
    with pytest.raises(FrameRejected) as info:
        open_envelope(parse_envelope(_encrypted_frame(key, noise)), key)
    assert (info.value.reason, info.value.reply) == ("decrypt", "nak")
    # The same noise ending in a timestamp-less "#account|…" is a panel without a timestamp.
    named = b"\x80|#1234|1130 01 004]"
    padded = crypto.random_pad(crypto.pad_length(len(named))) + named
    with pytest.raises(FrameRejected) as info:
        open_envelope(parse_envelope(_encrypted_frame(key, padded)), key)
    assert (info.value.reason, info.value.reply) == ("timestamp", "nak")
