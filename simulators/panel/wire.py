"""SIA DC-09 as the simulated panel writes it: CRC-16, AES-CBC, frames, Contact ID and SIA
payloads, and the receiver's replies.

Implemented here independently of the hub's receiver, so that a bug in the receiver cannot
hide behind the same bug in this fake.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

Transport = Literal["tcp", "udp"]
PayloadFormat = Literal["cid", "sia"]
Fault = Literal["bad_crc", "bad_length", "garbage", "split", "joined", "unknown_account"]
PadStyle = Literal["random", "constant_no_bar"]

FAULTS: tuple[Fault, ...] = (
    "bad_crc",
    "bad_length",
    "garbage",
    "split",
    "joined",
    "unknown_account",
)


def crc16(data: bytes) -> int:
    """CRC-16/ARC computed bit by bit (poly 0x8005 reflected, init 0, no final XOR)."""
    crc = 0
    for byte in data:
        for bit in range(8):
            mix = (crc ^ (byte >> bit)) & 1
            crc >>= 1
            if mix:
                crc ^= 0xA001
    return crc


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def aes_cbc_encrypt(key: bytes, plain: bytes) -> bytes:
    """AES-CBC with an all-zero IV, chained by hand over single-block AES."""
    block = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    previous = bytes(16)
    out = bytearray()
    for i in range(0, len(plain), 16):
        previous = block.update(_xor(plain[i : i + 16], previous))
        out += previous
    return bytes(out)


def aes_cbc_decrypt(key: bytes, cipher: bytes) -> bytes:
    """Inverse of ``aes_cbc_encrypt``."""
    block = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    previous = bytes(16)
    out = bytearray()
    for i in range(0, len(cipher), 16):
        chunk = cipher[i : i + 16]
        out += _xor(block.update(chunk), previous)
        previous = chunk
    return bytes(out)


def key_from_text(text: str, key_format: Literal["ascii", "hex"]) -> bytes:
    """A panel key as programmed: 16/24/32 ASCII characters or 32/48/64 hex digits."""
    key = text.encode("ascii") if key_format == "ascii" else bytes.fromhex(text)
    if len(key) not in (16, 24, 32):
        raise ValueError(f"key must be 128, 192 or 256 bits, got {len(key) * 8}")
    return key


def dc09_time(moment: datetime) -> str:
    """``_HH:MM:SS,MM-DD-YYYY`` in UTC."""
    utc = moment.astimezone(UTC)
    clock = f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    return f"_{clock},{utc.month:02d}-{utc.day:02d}-{utc.year:04d}"


_PAD_CHARS = bytes(c for c in range(0x21, 0x7F) if c not in b"|[]")


def _random_pad(length: int) -> bytes:
    return bytes(secrets.choice(_PAD_CHARS) for _ in range(length))


def build_frame(
    *,
    token: str,
    seq: int,
    account: str,
    data: str,
    prefix: str = "0",
    receiver: str | None = None,
    key: bytes | None = None,
    timestamp: datetime | None = None,
    pad_style: PadStyle = "random",
    corrupt: Literal["bad_crc", "bad_length"] | None = None,
) -> bytes:
    """Build one DC-09 frame, LF to CR. ``data`` is the block inside ``[]`` (e.g.
    ``#1234|Nri1/PA501``); with ``key`` the message is encrypted (``*`` + hex region)."""
    head = f"{seq:04d}{'' if receiver is None else 'R' + receiver}L{prefix}#{account}["
    stamp = dc09_time(timestamp) if timestamp is not None else ""
    if key is None:
        span = f'"{token}"{head}{data}]{stamp}'
    else:
        if timestamp is None:
            raise ValueError("encrypted messages carry a timestamp")
        if pad_style == "random":
            content = f"|{data}]{stamp}".encode("ascii")
            pad = _random_pad(16 - len(content) % 16)
        else:
            # Some transmitters send a constant pad and leave out the '|'.
            content = f"{data}]{stamp}".encode("ascii")
            pad = b"0" * (16 - len(content) % 16)
        region = aes_cbc_encrypt(key, pad + content).hex().upper()
        span = f'"*{token}"{head}{region}'
    raw = span.encode("ascii")
    crc = crc16(raw)
    length = len(raw)
    if corrupt == "bad_crc":
        crc ^= 0x0101
    elif corrupt == "bad_length":
        length += 1
    return b"\n" + f"{crc:04X}{length:04X}".encode("ascii") + raw + b"\r"


def cid_payload(qualifier: int, code: int, group: int, zone: int) -> str:
    """Contact ID event ``QXYZ GG CCC``."""
    return f"{qualifier}{code:03d} {group:02d} {zone:03d}"


def sia_payload(items: Sequence[tuple[str, int | None, int | None]]) -> str:
    """SIA-DCS data: ``N`` then ``ri<area>`` (when it changes) and ``<code><zone>`` per event."""
    parts: list[str] = []
    area: int | None = None
    for code, zone, event_area in items:
        part = ""
        if event_area is not None and event_area != area:
            part = f"ri{event_area}/"
            area = event_area
        part += code + ("" if zone is None else f"{zone:03d}")
        parts.append(part)
    return "N" + "/".join(parts)


@dataclass(frozen=True, slots=True)
class Reply:
    """A receiver reply as the panel understood it."""

    kind: Literal["ACK", "NAK", "DUH"]
    seq: int
    encrypted: bool
    timestamp: datetime | None


_REPLY = re.compile(
    r'"(\*?)(ACK|NAK|DUH)"(\d{4})(?:R[0-9A-Fa-f]{1,6})?L[0-9A-Fa-f]{1,6}(?:#[0-9A-Fa-f]{1,16}|A0)\[(.*)'
)
_REPLY_TIME = re.compile(r"_(\d\d):(\d\d):(\d\d),(\d\d)-(\d\d)-(\d{4})$")


def parse_reply(frame: bytes, key: bytes | None) -> Reply | None:
    """Check and read a receiver reply; None when it is corrupt or unreadable."""
    body = frame.strip(b"\n\r")
    if len(body) < 9:
        return None
    try:
        crc, length = int(body[:4], 16), int(body[4:8], 16)
        span = body[8:]
        if length != len(span) or crc != crc16(span):
            return None
        match = _REPLY.fullmatch(span.decode("ascii"))
        if match is None:
            return None
        rest = match[4]
        if match[1]:
            if key is None or not rest:
                return None
            plain = aes_cbc_decrypt(key, bytes.fromhex(rest))
            rest = plain[plain.index(b"]") :].decode("ascii")
        elif not rest.startswith("]"):
            return None
        timestamp = None
        ts = _REPLY_TIME.search(rest)
        if ts is not None:
            hh, mi, ss, mo, dd, yy = (int(g) for g in ts.groups())
            timestamp = datetime(yy, mo, dd, hh, mi, ss, tzinfo=UTC)
        kind: Literal["ACK", "NAK", "DUH"] = match[2]  # type: ignore[assignment]  # regex limits it
        return Reply(kind, int(match[3]), bool(match[1]), timestamp)
    except (ValueError, UnicodeDecodeError):
        return None
