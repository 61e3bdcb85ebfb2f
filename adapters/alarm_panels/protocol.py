"""SIA DC-09 wire format: pure functions from bytes to frames and from frames to reply bytes.

A frame is ``LF CRC(4 hex) LEN(4 hex) "ID" SEQ [Rrcvr] Lprefix #account [data] [x-data…]
_HH:MM:SS,MM-DD-YYYY CR``. CRC and LEN cover the span from the opening ``"`` up to (not
including) CR. Nothing in this module does I/O or keeps time; callers pass ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from . import crypto

LF = 0x0A
CR = 0x0D

ReplyKind = Literal["ack", "nak", "duh", "none"]

ACCEPT_BEFORE = timedelta(seconds=40)
"""A message timestamp may lag the receiver's clock by this much."""
ACCEPT_AFTER = timedelta(seconds=20)
"""A message timestamp may lead the receiver's clock by this much."""

_TIMESTAMP_FORMAT = "%H:%M:%S,%m-%d-%Y"
_HEX8 = re.compile(rb"[0-9A-Fa-f]{8}")
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_HEADER = re.compile(
    r'"(?P<star>\*?)(?P<token>[A-Z0-9-]{1,16})"(?P<seq>[0-9]{4})'
    r"(?:R(?P<receiver>[0-9A-Fa-f]{1,6}))?L(?P<prefix>[0-9A-Fa-f]{1,6})"
    r"#(?P<account>[0-9A-Fa-f]{3,16})\[(?P<region>.*)",
    re.DOTALL,
)
_CONTENT = re.compile(
    r"(?P<data>[^\[\]]*)\](?P<xdata>(?:\[[^\[\]]*\])*)"
    r"(?:_(?P<ts>[0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{2}-[0-9]{2}-[0-9]{4}))?",
)
_XDATA = re.compile(r"\[([^\[\]]*)\]")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC: poly 0x8005 reflected, init 0, no final XOR (``123456789`` → 0xBB3D)."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


class FrameRejected(Exception):
    """A frame was not accepted. ``reply`` says how the receiver answers it."""

    def __init__(
        self, reason: str, reply: ReplyKind, detail: str, envelope: Envelope | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.reply: ReplyKind = reply
        self.detail = detail
        self.envelope = envelope


@dataclass(frozen=True, slots=True)
class Envelope:
    """A frame whose CRC, length and header are valid; the content may still be encrypted."""

    token: str
    """Message type without the ``*``: ``SIA-DCS``, ``ADM-CID``, ``NULL`` or something else."""
    encrypted: bool
    seq: str
    """Four decimal digits, as sent (echoed in the reply)."""
    receiver: str | None
    """Receiver number after ``R`` as sent, or None when absent."""
    prefix: str
    """Account prefix after ``L`` as sent."""
    account: str
    """Account after ``#`` as sent (the receiver looks it up in upper case)."""
    region: str
    """Everything after ``[``: plaintext content, or the hex ciphertext when encrypted."""


@dataclass(frozen=True, slots=True)
class Message:
    """A fully opened message."""

    envelope: Envelope
    data: str
    """The data block without pad and brackets, e.g. ``#1234|Nri1/PA501`` (empty for NULL)."""
    extended: tuple[str, ...]
    """The x-data blocks' contents, without brackets."""
    timestamp: datetime | None
    """The message's own UTC time, when it sent one."""


def parse_envelope(frame: bytes) -> Envelope:
    """Check framing, LEN, CRC and header of one frame (LF and CR optional at the ends).

    Raises ``FrameRejected``: with reply ``none`` when the frame cannot be trusted to be intact
    (bad LEN or CRC, no readable header), with ``duh`` when it is intact but not understood.
    """
    body = frame[1:] if frame[:1] == b"\n" else frame
    body = body[:-1] if body[-1:] == b"\r" else body
    if len(body) < 9 or not _HEX8.fullmatch(body[:8]) or body[8:9] != b'"':
        _reject_header_variant(body)
        raise FrameRejected("format", "none", "no CRC/LEN header")
    span = body[8:]
    length = int(body[4:8], 16)
    if length != len(span):
        raise FrameRejected("length", "none", f"LEN {length} but span is {len(span)} bytes")
    crc = int(body[:4], 16)
    if crc != crc16_arc(span):
        raise FrameRejected("crc", "none", f"CRC {crc:04X} does not match the span")
    try:
        text = span.decode("ascii")
    except UnicodeDecodeError:
        raise FrameRejected("format", "duh", "non-ASCII bytes in the frame") from None
    match = _HEADER.fullmatch(text)
    if match is None:
        raise FrameRejected("format", "duh", "header does not follow DC-09")
    return Envelope(
        token=match["token"],
        encrypted=bool(match["star"]),
        seq=match["seq"],
        receiver=match["receiver"],
        prefix=match["prefix"],
        account=match["account"],
        region=match["region"],
    )


def _reject_header_variant(body: bytes) -> None:
    """Recognise intact frames that carry a vendor header variant; answer those with DUH.

    Some transmitters send the CRC as two binary bytes, or put a vendor header (``K…``) before
    the standard one. Those frames are intact, so the panel deserves a DUH rather than silence.
    """
    if len(body) > 7 and _HEX4.fullmatch(body[2:6]) and body[6:7] == b'"':
        span = body[6:]
        if int(body[2:6], 16) == len(span) and int.from_bytes(body[:2], "big") == crc16_arc(span):
            raise FrameRejected("unsupported", "duh", "binary CRC header variant")
    quote = body.find(b'"')
    if quote > 8 and _HEX8.fullmatch(body[quote - 8 : quote]):
        span = body[quote:]
        head = body[quote - 8 : quote]
        if int(head[4:8], 16) == len(span) and int(head[:4], 16) == crc16_arc(span):
            raise FrameRejected("unsupported", "duh", "vendor header before the DC-09 header")


def open_envelope(envelope: Envelope, key: bytes | None) -> Message:
    """Decrypt (when needed) and split the content into data, x-data and timestamp.

    Raises ``FrameRejected``: ``decrypt`` (NAK) when an encrypted message cannot be decrypted
    with ``key`` (missing or wrong key), ``timestamp`` (NAK) when the timestamp is unreadable
    or, for an encrypted message, missing; ``format`` (DUH) for an unencrypted message whose
    content is malformed.
    """
    if envelope.encrypted:
        content = _decrypt_region(envelope, key)
        failure = FrameRejected("decrypt", "nak", "decrypted content is malformed", envelope)
    else:
        content = envelope.region
        failure = FrameRejected("format", "duh", "content is malformed", envelope)
    if not _PRINTABLE.fullmatch(content):
        raise failure
    match = _CONTENT.fullmatch(content)
    if match is None:
        raise failure
    ts_text = match["ts"]
    timestamp: datetime | None = None
    if ts_text is not None:
        try:
            timestamp = datetime.strptime(ts_text, _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise FrameRejected(
                "timestamp", "nak", f"unreadable timestamp {ts_text!r}", envelope
            ) from None
    elif envelope.encrypted:
        if not _names_account(match["data"], envelope.account):
            # A wrong key sometimes leaves a short printable tail such as "]": without the
            # timestamp every encrypted message carries and without "#account", the content
            # is noise, and the panel must not be counted as present.
            raise FrameRejected(
                "decrypt", "nak", "wrong key or corrupt ciphertext (no timestamp)", envelope
            )
        raise FrameRejected("timestamp", "nak", "encrypted message without timestamp", envelope)
    return Message(
        envelope=envelope,
        data=match["data"],
        extended=tuple(_XDATA.findall(match["xdata"])),
        timestamp=timestamp,
    )


def _decrypt_region(envelope: Envelope, key: bytes | None) -> str:
    if key is None:
        raise FrameRejected("decrypt", "nak", "encrypted message but no key configured", envelope)
    if not _HEX.fullmatch(envelope.region):
        raise FrameRejected("decrypt", "nak", "encrypted region is not hex", envelope)
    try:
        plain = crypto.decrypt(key, bytes.fromhex(envelope.region))
    except ValueError:
        raise FrameRejected(
            "decrypt", "nak", "ciphertext is not whole AES blocks", envelope
        ) from None
    content = _strip_pad(plain, envelope.account)
    try:
        return content.decode("ascii")
    except UnicodeDecodeError:
        # Decrypting with the wrong key yields random bytes: this is how a wrong key shows.
        raise FrameRejected("decrypt", "nak", "wrong key or corrupt ciphertext", envelope) from None


def _names_account(data: str, account: str) -> bool:
    """True when message data starts with ``#account`` (any case), as every DC-09 data does."""
    return data.upper().startswith("#" + account.upper())


def _strip_pad(plain: bytes, account: str) -> bytes:
    """Remove the pad from decrypted ``pad|data]…``, tolerating panels that omit the ``|``."""
    close = plain.find(b"]")
    if close < 0:
        return plain  # no content end: left for the caller to reject as malformed
    bar = plain.find(b"|", 0, close)
    if bar < 0:
        # No separator before the bracket: a pad without '|' and empty data (NULL).
        return plain[close:]
    marker = b"#" + account.encode("ascii")
    after = plain[bar + 1 : bar + 2]
    if after not in (b"#", b"]") and plain[:bar].upper().endswith(marker.upper()):
        # Pad without '|' followed by "#account|…": this '|' belongs to the data.
        return plain[bar - len(marker) :]
    return plain[bar + 1 :]


def timestamp_in_window(timestamp: datetime, now: datetime) -> bool:
    """True when ``timestamp`` is from 40 s before to 20 s after ``now``."""
    return now - ACCEPT_BEFORE <= timestamp <= now + ACCEPT_AFTER


def format_timestamp(moment: datetime) -> str:
    """``_HH:MM:SS,MM-DD-YYYY`` in UTC."""
    return "_" + moment.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)


def wrap(span: str) -> bytes:
    """Frame a span (from the opening quote on) with LF, CRC, LEN and CR."""
    raw = span.encode("ascii")
    return b"\n" + f"{crc16_arc(raw):04X}{len(raw):04X}".encode("ascii") + raw + b"\r"


def _echo(envelope: Envelope) -> str:
    receiver = f"R{envelope.receiver}" if envelope.receiver is not None else ""
    return f"{envelope.seq}{receiver}L{envelope.prefix}#{envelope.account}["


def build_ack(
    envelope: Envelope,
    key: bytes | None,
    now: datetime,
    pad_source: Callable[[int], bytes] = crypto.random_pad,
) -> bytes:
    """ACK echoing seq, receiver, prefix and account; ``*ACK`` with encrypted pad + timestamp
    when the message was encrypted."""
    if not envelope.encrypted:
        return wrap(f'"ACK"{_echo(envelope)}]')
    if key is None:
        raise ValueError("an encrypted message is acknowledged with its account's key")
    content = ("|]" + format_timestamp(now)).encode("ascii")
    plain = pad_source(crypto.pad_length(len(content))) + content
    region = crypto.encrypt(key, plain).hex().upper()
    return wrap(f'"*ACK"{_echo(envelope)}{region}')


def build_nak(now: datetime) -> bytes:
    """NAK carrying the receiver's clock so the panel can correct its own. Never encrypted."""
    return wrap(f'"NAK"0000R0L0A0[]{format_timestamp(now)}')


def build_duh(envelope: Envelope | None) -> bytes:
    """DUH: intact but not understood. Echoes the header fields when they could be read."""
    if envelope is None:
        return wrap('"DUH"0000R0L0A0[]')
    return wrap(f'"DUH"{_echo(envelope)}]')


@dataclass(frozen=True, slots=True)
class Discarded:
    """Bytes the splitter threw away, and why (``garbage`` or ``oversize``)."""

    reason: str
    size: int


class FrameSplitter:
    """Find LF…CR frames in a byte stream, whatever the read boundaries.

    Bytes outside a frame are discarded as ``garbage``; a frame longer than ``max_frame_bytes``
    is discarded as ``oversize`` and the stream resynchronises on the next LF. A new LF before
    the CR abandons the partial frame (a real frame never contains LF).
    """

    def __init__(self, max_frame_bytes: int) -> None:
        self._max = max_frame_bytes
        self._buf = bytearray()
        self._skipping = False

    @property
    def partial(self) -> bool:
        """True while an unfinished frame is buffered."""
        return bool(self._buf)

    def feed(self, data: bytes) -> list[bytes | Discarded]:
        """Add received bytes; return complete frames and discard notices in stream order."""
        out: list[bytes | Discarded] = []
        buf = self._buf
        buf += data
        while buf:
            if buf[0] != LF:
                start = buf.find(LF)
                cut = len(buf) if start < 0 else start
                if not self._skipping:
                    out.append(Discarded("garbage", cut))
                del buf[:cut]
                if start < 0:
                    break
            self._skipping = False
            end = buf.find(CR, 1)
            restart = buf.find(LF, 1)
            if restart >= 0 and (end < 0 or restart < end):
                out.append(Discarded("garbage", restart))
                del buf[:restart]
                continue
            if end < 0:
                if len(buf) > self._max:
                    out.append(Discarded("oversize", len(buf)))
                    buf.clear()
                    self._skipping = True
                break
            if end + 1 > self._max:
                out.append(Discarded("oversize", end + 1))
            else:
                out.append(bytes(buf[: end + 1]))
            del buf[: end + 1]
        return out
