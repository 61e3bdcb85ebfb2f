"""RTP for H.264 (RFC 6184) and H.265 (RFC 7798): NAL units in, RTP payloads out.

Pure functions, no I/O: an encoded access unit (one picture, as Annex B bytes from the
encoder) is split into NAL units, and each NAL unit becomes one RTP payload when it fits
the packet size, or a run of fragmentation units (FU-A for H.264, FU for H.265) when it
does not. The RTP header (sequence number, timestamp, SSRC) is written per session by
``header``; the marker bit goes on the last packet of an access unit.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

MAX_PAYLOAD = 1400
"""Largest RTP payload: an Ethernet MTU minus IP, UDP and RTP headers, with some margin."""

CLOCK_RATE = 90_000
"""RTP clock of every video payload format used here (RFC 6184 / RFC 7798)."""

PAYLOAD_TYPE = 96

_H264_FU_A = 28
_H265_FU = 49
_HEADER = struct.Struct("!BBHII")


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (start codes and trailing zero bytes removed)."""
    starts: list[tuple[int, int]] = []  # (start code position, first NAL byte position)
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        begin = pos - 1 if pos > 0 and data[pos - 1] == 0 else pos
        starts.append((begin, pos + 3))
        pos = data.find(b"\x00\x00\x01", pos + 3)
    nals = []
    for i, (_, first) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(data)
        nal = data[first:end].rstrip(b"\x00")
        if nal:
            nals.append(nal)
    return nals


def h264_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def h265_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F


def packetize_h264(nal: bytes, max_payload: int = MAX_PAYLOAD) -> Iterator[bytes]:
    """RTP payloads for one H.264 NAL unit: single NAL unit packet or FU-A (RFC 6184 5.8)."""
    if len(nal) <= max_payload:
        yield nal
        return
    indicator = (nal[0] & 0xE0) | _H264_FU_A
    nal_type = nal[0] & 0x1F
    body = memoryview(nal)[1:]
    step = max_payload - 2
    for offset in range(0, len(body), step):
        start = 0x80 if offset == 0 else 0
        end = 0x40 if offset + step >= len(body) else 0
        yield bytes((indicator, start | end | nal_type)) + body[offset : offset + step]


def packetize_h265(nal: bytes, max_payload: int = MAX_PAYLOAD) -> Iterator[bytes]:
    """RTP payloads for one H.265 NAL unit: single NAL unit packet or FU (RFC 7798 4.4.3)."""
    if len(nal) <= max_payload:
        yield nal
        return
    nal_type = (nal[0] >> 1) & 0x3F
    # The payload header copies F, LayerId and TID from the NAL header, with type 49.
    header = bytes(((nal[0] & 0x81) | (_H265_FU << 1), nal[1]))
    body = memoryview(nal)[2:]
    step = max_payload - 3
    for offset in range(0, len(body), step):
        start = 0x80 if offset == 0 else 0
        end = 0x40 if offset + step >= len(body) else 0
        yield header + bytes((start | end | nal_type,)) + body[offset : offset + step]


def packetize(codec: str, nals: list[bytes], max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RTP payloads of one access unit, in order (``codec`` is "H264" or "H265")."""
    fn = packetize_h265 if codec == "H265" else packetize_h264
    return [payload for nal in nals for payload in fn(nal, max_payload)]


def header(seq: int, timestamp: int, ssrc: int, marker: bool) -> bytes:
    """The 12-byte RTP header (version 2, no padding, extension or CSRC)."""
    return _HEADER.pack(
        0x80,
        (0x80 if marker else 0) | PAYLOAD_TYPE,
        seq & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc,
    )


def packets(payloads: list[bytes], seq: int, timestamp: int, ssrc: int) -> list[bytes]:
    """RTP packets of one access unit; sequence numbers from ``seq`` on, marker on the last."""
    last = len(payloads) - 1
    return [
        header(seq + i, timestamp, ssrc, i == last) + payload for i, payload in enumerate(payloads)
    ]


def sender_report(ssrc: int, ntp_time: float, timestamp: int, packets: int, octets: int) -> bytes:
    """An RTCP sender report without report blocks (RFC 3550 6.4.1)."""
    ntp = ntp_time + 2_208_988_800  # seconds from 1900, the NTP epoch
    seconds = int(ntp)
    fraction = int((ntp - seconds) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack(
        "!BBHIIIIII",
        0x80,
        200,
        6,
        ssrc,
        seconds & 0xFFFFFFFF,
        fraction,
        timestamp & 0xFFFFFFFF,
        packets & 0xFFFFFFFF,
        octets & 0xFFFFFFFF,
    )
