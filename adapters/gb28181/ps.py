"""MPEG-2 Program Stream muxing of H.264/H.265 access units (ISO/IEC 13818-1 §2.5), and RTP.

GB/T 28181 carries video as PS over RTP: each access unit becomes one pack — a pack header,
on key frames a system header and a program stream map (PSM) naming the video's stream type
(0x1B H.264, 0x24 H.265), then PES packets with PTS/DTS holding the Annex B bytes. The pack
is cut into RTP payloads; the last packet of a frame has the marker bit set, and the RTP
timestamp is the frame's 90 kHz presentation time. Over TCP each RTP packet is preceded by
its 16-bit length (RFC 4571). Pure functions: no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

Codec = Literal["h264", "h265"]
STREAM_TYPES: Final[dict[Codec, int]] = {"h264": 0x1B, "h265": 0x24}
VIDEO_STREAM_ID: Final = 0xE0
MUX_RATE: Final = 6106  # units of 50 bytes/s (≈2.4 Mbit/s); a bound, decoders do not enforce it
RTP_PAYLOAD_MAX: Final = 1400
START_CODE: Final = b"\x00\x00\x00\x01"


def _crc32_mpeg(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def pack_header(scr: int) -> bytes:
    """14-byte MPEG-2 pack header with system clock reference ``scr`` (90 kHz, extension 0)."""
    base = scr & 0x1FFFFFFFF
    ext = 0
    b = bytearray(b"\x00\x00\x01\xba")
    b.append(0x44 | ((base >> 27) & 0x38) | ((base >> 28) & 0x03))
    b.append((base >> 20) & 0xFF)
    b.append(((base >> 12) & 0xF8) | 0x04 | ((base >> 13) & 0x03))
    b.append((base >> 5) & 0xFF)
    b.append(((base << 3) & 0xF8) | 0x04 | ((ext >> 7) & 0x03))
    b.append(((ext << 1) & 0xFE) | 0x01)
    b += bytes([(MUX_RATE >> 14) & 0xFF, (MUX_RATE >> 6) & 0xFF, ((MUX_RATE << 2) & 0xFC) | 0x03])
    b.append(0xF8)  # reserved, no stuffing
    return bytes(b)


def system_header() -> bytes:
    """System header announcing one video stream and no audio."""
    rate = (1 << 23) | (MUX_RATE << 1) | 1  # marker, rate_bound (22 bits), marker
    body = bytearray(rate.to_bytes(3, "big"))
    body.append(0x00)  # audio_bound 0, fixed_flag 0, CSPS_flag 0
    body.append(0x21)  # audio lock 0, video lock 0, marker 1, video_bound 1
    body.append(0x7F)  # packet_rate_restriction 0, reserved
    # stream entry: stream_id, '11', P-STD_buffer_bound_scale 1 (×1024 bytes), bound 400
    body += bytes([VIDEO_STREAM_ID, 0xE0 | ((400 >> 8) & 0x1F), 400 & 0xFF])
    return b"\x00\x00\x01\xbb" + struct.pack("!H", len(body)) + bytes(body)


def program_stream_map(codec: Codec, version: int = 0) -> bytes:
    """PSM with one elementary stream (video, ``stream_type`` of ``codec``) and its CRC."""
    entries = bytes([STREAM_TYPES[codec], VIDEO_STREAM_ID, 0, 0])
    body = bytearray()
    body.append(0xE0 | (version & 0x1F))  # current_next_indicator 1, reserved, version
    body.append(0xFF)  # reserved 7 bits + marker
    body += struct.pack("!H", 0)  # program_stream_info_length
    body += struct.pack("!H", len(entries))
    body += entries
    length = len(body) + 4
    head = b"\x00\x00\x01\xbc" + struct.pack("!H", length)
    crc = _crc32_mpeg(head + bytes(body))
    return head + bytes(body) + struct.pack("!I", crc)


def _timestamp(prefix: int, value: int) -> bytes:
    v = value & 0x1FFFFFFFF
    return bytes(
        [
            (prefix << 4) | ((v >> 29) & 0x0E) | 0x01,
            (v >> 22) & 0xFF,
            ((v >> 14) & 0xFE) | 0x01,
            (v >> 7) & 0xFF,
            ((v << 1) & 0xFE) | 0x01,
        ]
    )


def pes_packets(payload: bytes, pts: int, dts: int | None) -> Iterator[bytes]:
    """Video PES packets carrying ``payload``; the first has PTS (and DTS when it differs)."""
    first = True
    offset = 0
    while first or offset < len(payload):
        if first:
            if dts is not None and dts != pts:
                flags, header = 0xC0, _timestamp(0x3, pts) + _timestamp(0x1, dts)
            else:
                flags, header = 0x80, _timestamp(0x2, pts)
        else:
            flags, header = 0x00, b""
        room = 65535 - 3 - len(header)
        chunk = payload[offset : offset + room]
        offset += len(chunk)
        length = 3 + len(header) + len(chunk)
        yield (
            b"\x00\x00\x01"
            + bytes([VIDEO_STREAM_ID])
            + struct.pack("!H", length)
            + bytes([0x80 | (0x04 if first else 0), flags, len(header)])
            + header
            + chunk
        )
        first = False


def mux_access_unit(codec: Codec, data: bytes, pts: int, dts: int | None, key: bool) -> bytes:
    """One pack for one access unit (Annex B bytes); key frames also get system header and PSM."""
    scr = dts if dts is not None else pts
    parts = [pack_header(max(0, scr - 3600))]
    if key:
        parts += [system_header(), program_stream_map(codec)]
    parts.extend(pes_packets(data, pts, dts))
    return b"".join(parts)


# --- Annex B helpers -------------------------------------------------------------------------


def nal_types(codec: Codec, data: bytes) -> list[int]:
    """NAL unit types of an Annex B buffer."""
    types: list[int] = []
    index = data.find(b"\x00\x00\x01")
    while index >= 0 and index + 3 < len(data):
        header = data[index + 3]
        types.append((header >> 1) & 0x3F if codec == "h265" else header & 0x1F)
        index = data.find(b"\x00\x00\x01", index + 3)
    return types


def has_parameter_sets(codec: Codec, data: bytes) -> bool:
    """Whether an access unit carries its SPS (H.264 type 7; H.265 VPS 32 and SPS 33)."""
    types = set(nal_types(codec, data))
    return 7 in types if codec == "h264" else {32, 33} <= types


def annexb_extradata(codec: Codec, extradata: bytes) -> bytes:
    """Parameter sets as Annex B, from Annex B extradata (RTSP) or avcC / hvcC (MP4)."""
    if not extradata or extradata.startswith((b"\x00\x00\x01", START_CODE)):
        return extradata
    out = bytearray()
    try:
        if codec == "h264":
            count = extradata[5] & 0x1F
            pos = 6
            for table in range(2):
                if table == 1:
                    count = extradata[pos]
                    pos += 1
                for _ in range(count):
                    (size,) = struct.unpack_from("!H", extradata, pos)
                    out += START_CODE + extradata[pos + 2 : pos + 2 + size]
                    pos += 2 + size
        else:
            arrays = extradata[22]
            pos = 23
            for _ in range(arrays):
                (count,) = struct.unpack_from("!H", extradata, pos + 1)
                pos += 3
                for _ in range(count):
                    (size,) = struct.unpack_from("!H", extradata, pos)
                    out += START_CODE + extradata[pos + 2 : pos + 2 + size]
                    pos += 2 + size
    except (IndexError, struct.error):
        return b""
    return bytes(out)


# --- RTP ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class RtpPacketizer:
    """Cuts packs into RTP packets with a fixed SSRC, a running sequence and 90 kHz timestamps."""

    ssrc: int
    payload_type: int = 96
    sequence: int = 0
    max_payload: int = RTP_PAYLOAD_MAX

    def packets(self, pack: bytes, timestamp: int) -> list[bytes]:
        chunks = [pack[i : i + self.max_payload] for i in range(0, len(pack), self.max_payload)]
        out = []
        for index, chunk in enumerate(chunks):
            marker = 0x80 if index == len(chunks) - 1 else 0
            header = struct.pack(
                "!BBHII",
                0x80,
                marker | self.payload_type,
                self.sequence & 0xFFFF,
                timestamp & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            )
            self.sequence = (self.sequence + 1) & 0xFFFF
            out.append(header + chunk)
        return out


def frame_rfc4571(packet: bytes) -> bytes:
    """An RTP packet with the 16-bit length prefix of RTP over a TCP stream (RFC 4571)."""
    if len(packet) > 0xFFFF:
        raise ValueError("RTP packet too long for RFC 4571 framing")
    return struct.pack("!H", len(packet)) + packet
