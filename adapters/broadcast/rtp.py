"""RTP (RFC 3550) for G.711 audio: header packing and a sender paced in real time.

Packets carry 20 ms (160 samples at 8 kHz). Sequence number, timestamp and SSRC start at
random values as the RFC asks; the first packet of the talk spurt has the marker bit set.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

RTP_VERSION: Final = 2
HEADER_SIZE: Final = 12
SAMPLES_PER_PACKET: Final = 160
CLOCK_RATE: Final = 8000
PACKET_INTERVAL_S: Final = SAMPLES_PER_PACKET / CLOCK_RATE

_HEADER: Final = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class RtpHeader:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool = False


def pack_header(header: RtpHeader) -> bytes:
    """The 12-byte fixed header (no padding, no extension, no CSRC)."""
    if not 0 <= header.payload_type <= 127:
        raise ValueError(f"payload type {header.payload_type} out of range")
    return _HEADER.pack(
        RTP_VERSION << 6,
        (0x80 if header.marker else 0) | header.payload_type,
        header.sequence & 0xFFFF,
        header.timestamp & 0xFFFFFFFF,
        header.ssrc & 0xFFFFFFFF,
    )


def parse_packet(data: bytes) -> tuple[RtpHeader, bytes]:
    """Header and payload of an RTP packet (CSRC list, extension and padding removed)."""
    if len(data) < HEADER_SIZE:
        raise ValueError("shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise ValueError(f"RTP version {first >> 6}")
    offset = HEADER_SIZE + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < offset + 4:
            raise ValueError("truncated header extension")
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data)
    if first & 0x20:
        end -= data[-1]
    if offset > end:
        raise ValueError("truncated RTP packet")
    header = RtpHeader(second & 0x7F, sequence, timestamp, ssrc, bool(second & 0x80))
    return header, data[offset:end]


def packetize(codes: bytes, silence: int) -> list[bytes]:
    """Split encoded audio into 160-sample payloads, padding the last with silence."""
    payloads = [codes[i : i + SAMPLES_PER_PACKET] for i in range(0, len(codes), SAMPLES_PER_PACKET)]
    if payloads and len(payloads[-1]) < SAMPLES_PER_PACKET:
        payloads[-1] += bytes([silence]) * (SAMPLES_PER_PACKET - len(payloads[-1]))
    return payloads


@dataclass(frozen=True, slots=True)
class StreamStats:
    packets: int
    samples: int
    first_sequence: int
    first_timestamp: int
    ssrc: int
    stopped: bool

    @property
    def duration_s(self) -> float:
        return self.samples / CLOCK_RATE


class RtpSender:
    """Sends one stream of G.711 payloads to one address, paced at one packet per 20 ms.

    Pacing is against absolute deadlines on the loop clock, so scheduling jitter does not
    accumulate into drift over a long message.
    """

    def __init__(
        self,
        send: Callable[[bytes], None],
        payload_type: int,
        *,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        self._send = send
        self.payload_type = payload_type
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.sequence = secrets.randbits(16) if sequence is None else sequence
        self.timestamp = secrets.randbits(32) if timestamp is None else timestamp

    async def stream(self, payloads: list[bytes], stop: asyncio.Event | None = None) -> StreamStats:
        """Send every payload in real time; returns early (``stopped``) when ``stop`` is set."""
        loop = asyncio.get_running_loop()
        first_sequence, first_timestamp = self.sequence, self.timestamp
        start = loop.time()
        sent = samples = 0
        stopped = False
        for index, payload in enumerate(payloads):
            if stop is not None and stop.is_set():
                stopped = True
                break
            header = RtpHeader(
                self.payload_type, self.sequence, self.timestamp, self.ssrc, marker=index == 0
            )
            self._send(pack_header(header) + payload)
            sent += 1
            samples += len(payload)
            self.sequence = (self.sequence + 1) & 0xFFFF
            self.timestamp = (self.timestamp + len(payload)) & 0xFFFFFFFF
            delay = start + (index + 1) * PACKET_INTERVAL_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        return StreamStats(sent, samples, first_sequence, first_timestamp, self.ssrc, stopped)
