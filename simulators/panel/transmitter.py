"""Alarm panel simulator: a transmitter speaking SIA DC-09 over TCP or UDP.

It behaves like a real panel: numbered frames (1..9999, wrapping), waits for the ACK that
echoes its sequence number, resends on timeout or NAK (taking the receiver's clock from the
NAK), holds events while the receiver is unreachable and reconnects with backoff. Fault
switches inject bad CRC, bad length, garbage, split and joined frames, an unknown account and
unknown codes.

CRC, framing and AES-CBC are implemented here independently of the hub's receiver, so that a
bug in the receiver cannot hide behind the same bug in this fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Self

from simulators.panel.wire import (
    Fault,
    PadStyle,
    PayloadFormat,
    Transport,
    build_frame,
    cid_payload,
    parse_reply,
    sia_payload,
)

_log = logging.getLogger("simulators.panel")

UNREACHABLE_TELL_S = 30.0
"""How long the receiver may be unreachable before the panel says so (retries are quiet)."""


@dataclass(eq=False)
class Outgoing:
    """One message the panel wants delivered."""

    token: str
    payload: str
    """The event data after ``#account|`` (empty for NULL)."""
    seq: int
    label: str
    faults: set[Fault] = field(default_factory=set)
    attempts: int = 0
    acked: bool = False
    duh: bool = False


@dataclass(frozen=True, slots=True)
class _Code:
    cid: int
    sia: str
    sia_restore: str | None = None


_PANIC = _Code(120, "PA", "PR")
_FIRE = _Code(110, "FA", "FR")
_TAMPER = _Code(137, "TA", "TR")
_BURGLARY = _Code(130, "BA", "BR")
_AC = _Code(301, "AT", "AR")
_BATTERY = _Code(302, "YT", "YR")
_TEST = _Code(601, "RX")
_PERIODIC = _Code(602, "RP")
_UNKNOWN = _Code(999, "ZZ")


class PanelSimulator:
    """A simulated panel. ``async with PanelSimulator(...) as panel: panel.press(3)``.

    Scenario methods queue messages and return them at once; the sender task delivers them in
    order, one at a time (or two, joined). Counters: ``sent`` (frames written, resends
    included), ``acked``, ``naks``, ``duh``, ``resends``, ``pending`` (held, not yet ACKed).
    """

    def __init__(
        self,
        host: str,
        port: int,
        account: str,
        *,
        key: bytes | None = None,
        transport: Transport = "tcp",
        payload_format: PayloadFormat = "cid",
        prefix: str = "0",
        receiver: str | None = None,
        area: int = 1,
        ack_timeout: float = 2.0,
        connect_timeout: float = 5.0,
        reconnect_min: float = 0.05,
        reconnect_max: float = 5.0,
        supervision_every: float | None = None,
        periodic_test_every: float | None = None,
        timestamps: bool = True,
        pad_style: PadStyle = "random",
        split_delay: float = 0.02,
        unknown_account: str = "FFFFFF",
    ) -> None:
        if key is not None and len(key) not in (16, 24, 32):
            raise ValueError("key must be 16, 24 or 32 bytes")
        self.host = host
        self.port = port
        self.account = account
        self.key = key
        self.transport: Transport = transport
        self.payload_format: PayloadFormat = payload_format
        self.prefix = prefix
        self.receiver = receiver
        self.area = area
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.supervision_every = supervision_every
        self.periodic_test_every = periodic_test_every
        self.timestamps = timestamps
        self.pad_style: PadStyle = pad_style
        self.split_delay = split_delay
        self.unknown_account = unknown_account
        self.sent = 0
        self.acked = 0
        self.naks = 0
        self.duh = 0
        self.resends = 0
        self.bad_replies = 0
        self.connects = 0
        self.connect_failures = 0
        self.delivered: list[Outgoing] = []
        self._queue: deque[Outgoing] = deque()
        self._faults: list[Fault] = []
        self._seq = 0
        self._clock_offset = timedelta(0)
        self._silent = False
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._replies: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._tcp: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader_task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._spawn(self._sender(), "panel-sender")
        if self.supervision_every is not None:
            self._spawn(self._every(self.supervision_every, self._supervision_due), "panel-null")
        if self.periodic_test_every is not None:
            self._spawn(self._every(self.periodic_test_every, self.periodic_test), "panel-test")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._disconnect()
        tg, self._tg = self._tg, None
        if tg is not None:
            await tg.__aexit__(exc_type, exc, tb)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        assert self._tg is not None, "use the simulator as an async context manager"
        task = self._tg.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- state for tests ------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Messages held: queued or in flight, not yet ACKed (nor refused with DUH)."""
        return len(self._queue)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[PanelSimulator], bool], within: float) -> None:
        """Wait until ``predicate(self)`` holds; raises ``TimeoutError`` after ``within`` s."""
        async with asyncio.timeout(within):
            while not predicate(self):
                await self._changed.wait()

    async def wait_acked(self, count: int, within: float) -> None:
        """Wait until ``count`` messages in total have been ACKed."""
        await self.wait_for(lambda p: p.acked >= count, within)

    async def wait_idle(self, within: float) -> None:
        """Wait until nothing is pending."""
        await self.wait_for(lambda p: p.pending == 0, within)

    # -- scenario -------------------------------------------------------------------------

    def press(self, zone: int) -> Outgoing:
        """Panic button pressed (Contact ID 120 / SIA PA)."""
        return self._event(_PANIC, zone, restore=False, label="press")

    def restore(self, zone: int) -> Outgoing:
        """Panic button restored (Contact ID 3120 / SIA PR)."""
        return self._event(_PANIC, zone, restore=True, label="restore")

    def fire(self, zone: int) -> Outgoing:
        """Fire alarm (110 / FA)."""
        return self._event(_FIRE, zone, restore=False, label="fire")

    def tamper(self, zone: int) -> Outgoing:
        """Tamper (137 / TA)."""
        return self._event(_TAMPER, zone, restore=False, label="tamper")

    def intrusion(self, zone: int) -> Outgoing:
        """Burglary (130 / BA)."""
        return self._event(_BURGLARY, zone, restore=False, label="intrusion")

    def ac_loss(self) -> Outgoing:
        """Mains power lost (301 / AT)."""
        return self._event(_AC, 0, restore=False, label="ac_loss")

    def ac_restore(self) -> Outgoing:
        """Mains power back (3301 / AR)."""
        return self._event(_AC, 0, restore=True, label="ac_restore")

    def low_battery(self) -> Outgoing:
        """Low battery (302 / YT)."""
        return self._event(_BATTERY, 0, restore=False, label="low_battery")

    def test(self, zone: int = 0) -> Outgoing:
        """Manual test (601 / RX)."""
        return self._event(_TEST, zone, restore=False, label="test")

    def periodic_test(self) -> Outgoing:
        """Periodic test (602 / RP)."""
        return self._event(_PERIODIC, 0, restore=False, label="periodic_test")

    def unknown_code(self, zone: int = 0) -> Outgoing:
        """An event code the receiver has no mapping for (999 / ZZ)."""
        return self._event(_UNKNOWN, zone, restore=False, label="unknown_code")

    def supervision(self) -> Outgoing:
        """A NULL supervision message."""
        return self._enqueue("NULL", "", "null")

    def burst(self, count: int) -> list[Outgoing]:
        """``count`` intrusion alarms on zones 1..count, as fast as the receiver ACKs."""
        return [self.intrusion(zone % 1000) for zone in range(1, count + 1)]

    def send_payload(self, token: str, payload: str, label: str = "custom") -> Outgoing:
        """Queue a message with any type and data (after ``#account|``)."""
        return self._enqueue(token, payload, label)

    def go_silent(self) -> None:
        """Stop transmitting (link cut): events are held until ``resume``."""
        self._silent = True
        self._wake.set()

    def resume(self) -> None:
        """Transmit again, held events first."""
        self._silent = False
        self._wake.set()

    def clock_skew(self, seconds: float) -> None:
        """Set the panel clock this far from true UTC (until a NAK corrects it)."""
        self._clock_offset = timedelta(seconds=seconds)

    def inject(self, fault: Fault) -> None:
        """Apply ``fault`` to the next message's first transmission (``joined``: the next two
        messages go out in one write)."""
        self._faults.append(fault)

    def _event(self, code: _Code, zone: int, *, restore: bool, label: str) -> Outgoing:
        if self.payload_format == "cid":
            return self._enqueue(
                "ADM-CID", cid_payload(3 if restore else 1, code.cid, self.area, zone), label
            )
        sia_code = code.sia_restore if restore and code.sia_restore else code.sia
        return self._enqueue("SIA-DCS", sia_payload([(sia_code, zone, self.area)]), label)

    def _enqueue(self, token: str, payload: str, label: str) -> Outgoing:
        self._seq = self._seq % 9999 + 1
        message = Outgoing(token, payload, self._seq, label, set(self._faults))
        self._faults.clear()
        self._queue.append(message)
        self._wake.set()
        return message

    def _supervision_due(self) -> None:
        if not self._queue:
            self.supervision()

    async def _every(self, period: float, action: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(period)
            if not self._silent:
                action()

    # -- sending --------------------------------------------------------------------------

    def now(self) -> datetime:
        """The panel's own clock."""
        return datetime.now(UTC) + self._clock_offset

    def frame_for(self, message: Outgoing, *, first_attempt: bool) -> bytes:
        """The bytes for one transmission of ``message``."""
        faults = message.faults if first_attempt else set()
        account = self.unknown_account if "unknown_account" in faults else self.account
        data = f"#{account}|{message.payload}" if message.token != "NULL" else ""
        corrupt: Literal["bad_crc", "bad_length"] | None = None
        if "bad_crc" in faults:
            corrupt = "bad_crc"
        elif "bad_length" in faults:
            corrupt = "bad_length"
        frame = build_frame(
            token=message.token,
            seq=message.seq,
            account=account,
            data=data,
            prefix=self.prefix,
            receiver=self.receiver,
            key=self.key,
            timestamp=self.now() if self.timestamps or self.key is not None else None,
            pad_style=self.pad_style,
            corrupt=corrupt,
        )
        if "garbage" in faults:
            junk = bytes(random.choice(b"ABCXYZ0123456789\x00\xff") for _ in range(20))
            frame = junk + b"\nJUNK-WITHOUT-END" + frame
        return frame

    async def _sender(self) -> None:
        backoff = self.reconnect_min
        loop = asyncio.get_running_loop()
        unreachable_since: float | None = None
        told = False
        while True:
            while self._silent or not self._queue:
                self._wake.clear()
                if self._silent:
                    await self._disconnect()
                await self._wake.wait()
            batch = [self._queue[0]]
            if "joined" in batch[0].faults and batch[0].attempts == 0 and len(self._queue) > 1:
                batch.append(self._queue[1])
            try:
                await self._connect()
            except OSError as exc:
                self.connect_failures += 1
                self._notify()
                # A panel retries quietly, as real ones do (a receiver that is starting, or
                # restarting, is not news); only a receiver gone for long is worth a line.
                now = loop.time()
                unreachable_since = unreachable_since or now
                level = logging.DEBUG
                if not told and now - unreachable_since >= UNREACHABLE_TELL_S:
                    level, told = logging.WARNING, True
                _log.log(
                    level,
                    "panel %s: cannot reach %s:%s for %.0f s, %d event(s) held: %r",
                    self.account,
                    self.host,
                    self.port,
                    now - unreachable_since,
                    len(self._queue),
                    exc,
                )
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.reconnect_max)
                continue
            if told:
                _log.info("panel %s: reached %s:%s again", self.account, self.host, self.port)
            unreachable_since, told = None, False
            backoff = self.reconnect_min
            try:
                await self._transmit(batch)
            except (OSError, ConnectionError) as exc:
                _log.debug("panel %s: link lost: %r", self.account, exc)
                await self._disconnect()
            await self._await_replies(batch)

    async def _transmit(self, batch: list[Outgoing]) -> None:
        while not self._replies.empty():
            self._replies.get_nowait()  # stale replies to earlier attempts
        frames = []
        split = False
        for message in batch:
            first = message.attempts == 0
            if not first:
                self.resends += 1
            split = split or (first and "split" in message.faults)
            frames.append(self.frame_for(message, first_attempt=first))
            message.attempts += 1
        self.sent += len(frames)
        self._notify()
        if self._udp is not None:
            for frame in frames:
                self._udp.sendto(frame)
            return
        assert self._tcp is not None
        writer = self._tcp[1]
        data = b"".join(frames)
        if split:
            cuts = sorted({1, len(data) // 3, 2 * len(data) // 3})
            pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        else:
            pieces = [data]
        for index, piece in enumerate(pieces):
            if index:
                # Paced so the receiver really sees the frame across several reads.
                await asyncio.sleep(self.split_delay)
            writer.write(piece)
            async with asyncio.timeout(self.ack_timeout):
                await writer.drain()

    async def _await_replies(self, batch: list[Outgoing]) -> None:
        waiting = {m.seq: m for m in batch}
        try:
            async with asyncio.timeout(self.ack_timeout):
                while waiting:
                    raw = await self._replies.get()
                    if raw is None:
                        return  # connection closed: resend after reconnecting
                    reply = parse_reply(raw, self.key)
                    if reply is None:
                        self.bad_replies += 1
                        continue
                    if reply.kind == "NAK":
                        self.naks += 1
                        if reply.timestamp is not None:
                            self._clock_offset = reply.timestamp - datetime.now(UTC)
                        self._notify()
                        return
                    message = waiting.pop(reply.seq, None)
                    if message is None:
                        continue  # late reply to an earlier attempt
                    if reply.kind == "ACK":
                        message.acked = True
                        self.acked += 1
                    else:
                        # A real panel reports DUH to its installer and does not retry.
                        message.duh = True
                        self.duh += 1
                    self._queue.remove(message)
                    self.delivered.append(message)
                    self._notify()
        except TimeoutError:
            _log.debug("panel %s: no reply for %s", self.account, sorted(waiting))

    async def _connect(self) -> None:
        if self._tcp is not None or self._udp is not None:
            return
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            if self.transport == "udp":
                replies = self._replies
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: _ReplyCollector(replies), remote_addr=(self.host, self.port)
                )
                self._udp = udp
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                self._tcp = (reader, writer)
                self._reader_task = self._spawn(self._read_tcp(reader), "panel-reader")
        self.connects += 1
        self._notify()

    async def _read_tcp(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                frame = await reader.readuntil(b"\r")
                self._replies.put_nowait(frame[frame.rfind(b"\n") :] if b"\n" in frame else frame)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        self._replies.put_nowait(None)
        # The receiver closed the link: reconnect before the next transmission.
        if self._tcp is not None and self._tcp[0] is reader:
            writer = self._tcp[1]
            self._tcp = None
            writer.close()

    async def _disconnect(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            writer = self._tcp[1]
            self._tcp = None
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            self._reader_task = None

    # -- raw access for fault tests -------------------------------------------------------

    async def send_raw(self, data: bytes) -> None:
        """Write arbitrary bytes on the panel's connection (no ACK handling)."""
        await self._connect()
        if self._udp is not None:
            self._udp.sendto(data)
            return
        assert self._tcp is not None
        self._tcp[1].write(data)
        async with asyncio.timeout(self.ack_timeout):
            await self._tcp[1].drain()


class _ReplyCollector(asyncio.DatagramProtocol):
    def __init__(self, replies: asyncio.Queue[bytes | None]) -> None:
        self._replies = replies

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._replies.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the receiver is not there; resend on timeout.
        _log.debug("panel UDP error: %r", exc)
