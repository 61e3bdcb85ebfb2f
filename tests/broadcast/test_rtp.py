"""RTP header packing, parsing, packetisation and the paced sender."""

from __future__ import annotations

import asyncio

import pytest

from adapters.broadcast.rtp import (
    RtpHeader,
    RtpSender,
    pack_header,
    packetize,
    parse_packet,
)


def test_header_bytes() -> None:
    header = RtpHeader(payload_type=0, sequence=1, timestamp=160, ssrc=0x12345678, marker=True)
    assert pack_header(header) == bytes.fromhex("80 80 0001 000000a0 12345678")
    header = RtpHeader(payload_type=8, sequence=0x1_0001, timestamp=2**32 + 5, ssrc=1)
    assert pack_header(header) == bytes.fromhex("80 08 0001 00000005 00000001")
    with pytest.raises(ValueError):
        pack_header(RtpHeader(128, 0, 0, 0))


def test_parse_skips_csrc_extension_and_padding() -> None:
    data = (
        bytes.fromhex("b1 88 0102 00000010 0000abcd")  # V=2, P=1, X=1, CC=1, M=1, PT=8
        + bytes.fromhex("11111111")  # CSRC
        + bytes.fromhex("bede 0001 01020304")  # extension, one word
        + b"payload"
        + b"\x00\x00\x03"  # three bytes of padding
    )
    header, payload = parse_packet(data)
    assert header == RtpHeader(8, 0x0102, 0x10, 0xABCD, marker=True)
    assert payload == b"payload"
    with pytest.raises(ValueError):
        parse_packet(b"\x40" + bytes(11))  # version 1
    with pytest.raises(ValueError):
        parse_packet(b"\x80\x00")


def test_packetize_pads_the_last_packet_with_silence() -> None:
    payloads = packetize(b"\x01" * 330, 0xFF)
    assert [len(p) for p in payloads] == [160, 160, 160]
    assert payloads[2] == b"\x01" * 10 + b"\xff" * 150
    assert packetize(b"", 0xFF) == []


async def test_sender_numbers_packets_and_wraps() -> None:
    sent: list[bytes] = []
    sender = RtpSender(sent.append, 0, ssrc=7, sequence=0xFFFE, timestamp=2**32 - 160)
    stats = await sender.stream([bytes([i]) * 160 for i in range(4)])
    headers = [parse_packet(p)[0] for p in sent]
    assert [h.sequence for h in headers] == [0xFFFE, 0xFFFF, 0, 1]
    assert [h.timestamp for h in headers] == [2**32 - 160, 0, 160, 320]
    assert [h.marker for h in headers] == [True, False, False, False]
    assert {h.ssrc for h in headers} == {7}
    assert [parse_packet(p)[1][0] for p in sent] == [0, 1, 2, 3]
    assert (stats.packets, stats.samples, stats.stopped) == (4, 640, False)
    assert stats.duration_s == pytest.approx(0.08)


async def test_sender_stops_when_asked() -> None:
    sent: list[bytes] = []
    stop = asyncio.Event()

    def send(packet: bytes) -> None:
        sent.append(packet)
        if len(sent) == 3:
            stop.set()

    stats = await RtpSender(send, 8).stream([b"\xd5" * 160] * 50, stop)
    assert stats.stopped
    assert stats.packets == len(sent) == 3


def test_random_initial_values_differ_between_streams() -> None:
    a, b = RtpSender(lambda _: None, 0), RtpSender(lambda _: None, 0)
    assert (a.ssrc, a.sequence, a.timestamp) != (b.ssrc, b.sequence, b.timestamp)
