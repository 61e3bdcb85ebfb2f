"""SIA DC-09 receiver: thin TCP and UDP transports around the pure frame processor.

Store, then acknowledge: every event decoded from a frame is handed to ``ingest`` and the
reply is written only after all of them were stored. If storing fails, nothing is sent and
the panel resends; the resend carries the same ``dedupe_key``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from ..device_event import DeviceEvent, IngestFn
from .config import AccountConfig, ReceiverLimits
from .protocol import Discarded, FrameSplitter, ReplyKind
from .receiver import PROTOCOL, FrameProcessor, Verdict
from .stats import ReceiverStats
from .supervision import Overdue, SupervisionStatus, Supervisor

_log = logging.getLogger(__name__)

_READ_SIZE = 4096
_MAX_UNKNOWN_REMEMBERED = 4096


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Reply:
    data: bytes
    kind: ReplyKind
    account: str | None


class SiaReceiver:
    """Receives SIA DC-09 messages over TCP and UDP and hands events to the hub.

    Use as ``async with SiaReceiver(...) as receiver:``; ``tcp_port`` / ``udp_port`` give the
    bound ports once entered. All connection handlers and the supervision checker are tasks of
    one ``TaskGroup`` owned by the receiver and cancelled on exit.
    """

    def __init__(
        self,
        accounts: Sequence[AccountConfig],
        ingest: IngestFn,
        *,
        receiver_device_id: str,
        host: str = "127.0.0.1",
        tcp_port: int = 0,
        udp_port: int | None = None,
        limits: ReceiverLimits | None = None,
        clock: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        supervision_check_period: float = 1.0,
    ) -> None:
        names = [a.account for a in accounts]
        if len(set(names)) != len(names):
            raise ValueError("an account is configured twice")
        self._accounts = {a.account: a for a in accounts}
        self._ingest_fn = ingest
        self._receiver_device_id = receiver_device_id
        self._host = host
        self._tcp_port_wanted = tcp_port
        self._udp_port_wanted = udp_port
        self._limits = limits or ReceiverLimits()
        self._clock = clock
        self._monotonic = monotonic
        self._check_period = supervision_check_period
        self._processor = FrameProcessor(accounts)
        self._supervisor = Supervisor(accounts, monotonic())
        self._started = _stamp(clock())
        self.stats = ReceiverStats()
        self._unknown_reported: dict[str, float] = {}
        self._stack: AsyncExitStack | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_in_flight = 0
        self._closing = False
        self._tcp_port: int | None = None
        self._udp_port: int | None = None

    @property
    def tcp_port(self) -> int:
        """The bound TCP port (after entering)."""
        if self._tcp_port is None:
            raise RuntimeError("receiver is not running")
        return self._tcp_port

    @property
    def udp_port(self) -> int | None:
        """The bound UDP port, None when UDP is off."""
        return self._udp_port

    def supervision_state(self, account: str) -> SupervisionStatus | None:
        """Link state of a configured account (None when not configured)."""
        return self._supervisor.status(account)

    async def __aenter__(self) -> Self:
        # Supervision deadlines run from the start: a panel that never speaks is reported too.
        self._supervisor = Supervisor(self._accounts.values(), self._monotonic())
        self._started = _stamp(self._clock())
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            self._tg = await stack.enter_async_context(asyncio.TaskGroup())
            stack.push_async_callback(self._stop_tasks)
            self._server = await asyncio.start_server(
                self._accept, self._host, self._tcp_port_wanted
            )
            stack.callback(self._server.close)
            self._tcp_port = int(self._server.sockets[0].getsockname()[1])
            if self._udp_port_wanted is not None:
                loop = asyncio.get_running_loop()
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self), local_addr=(self._host, self._udp_port_wanted)
                )
                self._udp = transport
                stack.callback(transport.close)
                self._udp_port = int(transport.get_extra_info("sockname")[1])
            self._spawn(self._supervise(), "sia-supervision")
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        _log.info(
            "%s: SIA DC-09 receiver listening on %s tcp=%s udp=%s",
            self._receiver_device_id,
            self._host,
            self._tcp_port,
            self._udp_port,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._closing = True
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        return await stack.__aexit__(exc_type, exc, tb)

    async def _stop_tasks(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._server is not None:
            try:
                async with asyncio.timeout(self._limits.write_timeout):
                    await self._server.wait_closed()
            except TimeoutError:
                _log.warning("%s: TCP server did not close in time", self._receiver_device_id)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        assert self._tg is not None
        task = self._tg.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- TCP ---------------------------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer_name(writer.get_extra_info("peername"))
        if self._closing or self.stats.connections_open >= self._limits.max_connections:
            self.stats.reject("connection_limit")
            _log.warning("%s: refusing TCP connection from %s", self._receiver_device_id, peer)
            writer.transport.abort()
            return
        self.stats.connections_open += 1
        self.stats.connections_total += 1
        task = self._spawn(self._serve_tcp(reader, writer, peer), f"sia-tcp-{peer}")
        task.add_done_callback(lambda _task: self._tcp_closed(writer))

    def _tcp_closed(self, writer: asyncio.StreamWriter) -> None:
        self.stats.connections_open -= 1
        writer.close()

    async def _serve_tcp(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        limits = self._limits
        loop = asyncio.get_running_loop()
        splitter = FrameSplitter(limits.max_frame_bytes)
        frame_started: float | None = None
        last_frame = loop.time()
        try:
            while True:
                # Bytes alone do not keep a connection open: garbage or a slow drip must
                # still deliver a complete frame within idle_timeout.
                timeout = last_frame + limits.idle_timeout - loop.time()
                if frame_started is not None:
                    timeout = min(timeout, frame_started + limits.frame_timeout - loop.time())
                try:
                    async with asyncio.timeout(max(timeout, 0.0)):
                        data = await reader.read(_READ_SIZE)
                except TimeoutError:
                    reason = "idle" if frame_started is None else "frame_timeout"
                    self.stats.reject(reason)
                    _log.info("%s: closing %s (%s)", self._receiver_device_id, peer, reason)
                    return
                if not data:
                    return
                received = loop.time()
                pieces = splitter.feed(data)
                if not splitter.partial:
                    frame_started = None
                elif frame_started is None or pieces:
                    frame_started = received
                for piece in pieces:
                    if isinstance(piece, Discarded):
                        self.stats.reject(piece.reason)
                        _log.debug("%s: %s from %s", self._receiver_device_id, piece.reason, peer)
                        continue
                    last_frame = received
                    reply = await self._handle_frame(piece, peer)
                    if reply is None:
                        continue
                    writer.write(reply.data)
                    async with asyncio.timeout(limits.write_timeout):
                        await writer.drain()
                    self._count_reply(reply, loop.time() - received)
        except (ConnectionError, TimeoutError) as exc:
            _log.info("%s: connection %s ended: %r", self._receiver_device_id, peer, exc)
        except Exception:
            # Supervisor boundary: one connection's failure must not stop the receiver.
            _log.exception("%s: connection %s failed", self._receiver_device_id, peer)

    # -- UDP ---------------------------------------------------------------------------------

    def _datagram(self, data: bytes, addr: Any) -> None:
        if self._closing:
            return
        if len(data) > self._limits.max_frame_bytes:
            self.stats.reject("oversize")
            return
        if self._udp_in_flight >= self._limits.max_udp_in_flight:
            self.stats.reject("overload")
            return
        self._udp_in_flight += 1
        peer = _peer_name(addr)
        received = asyncio.get_running_loop().time()
        task = self._spawn(self._serve_datagram(data, addr, peer, received), f"sia-udp-{peer}")
        task.add_done_callback(self._udp_done)

    def _udp_done(self, _task: asyncio.Task[None]) -> None:
        self._udp_in_flight -= 1

    async def _serve_datagram(self, data: bytes, addr: Any, peer: str, received: float) -> None:
        try:
            reply = await self._handle_frame(data, peer)
            if reply is None or self._udp is None or self._udp.is_closing():
                return
            self._udp.sendto(reply.data, addr)
            self._count_reply(reply, asyncio.get_running_loop().time() - received)
        except Exception:
            _log.exception("%s: datagram from %s failed", self._receiver_device_id, peer)

    # -- shared ------------------------------------------------------------------------------

    def _count_reply(self, reply: _Reply, latency: float) -> None:
        self.stats.replies[reply.kind] += 1
        if reply.kind == "ack" and reply.account is not None:
            self.stats.acks[reply.account] += 1
            self.stats.observe_ack_latency(latency)

    async def _handle_frame(self, frame: bytes, peer: str) -> _Reply | None:
        """Decide, store the events, and return the reply to write (None: stay silent)."""
        now = self._clock()
        verdict = self._processor.process(frame, now)
        cfg = verdict.account
        if cfg is not None:
            self.stats.frames[cfg.account] += 1
        if verdict.reason is not None:
            self.stats.reject(verdict.reason)
            self._log_rejection(verdict, peer)
        if verdict.unknown_account is not None:
            self.stats.unknown_account(verdict.unknown_account)
            await self._report_unknown_account(verdict, peer, now)
        if cfg is not None and verdict.alive and not await self._heard(cfg, now):
            self.stats.reject("ingest")
            return None
        for event in verdict.events:
            if not await self._ingest(event):
                self.stats.reject("ingest")
                return None
        for event in verdict.events:
            self.stats.events[event.kind] += 1
        for _ in range(verdict.unknown_codes):
            self.stats.reject("unknown_code")
        if verdict.reply is None:
            return None
        return _Reply(verdict.reply, verdict.reply_kind, cfg.account if cfg else None)

    def _log_rejection(self, verdict: Verdict, peer: str) -> None:
        if verdict.account is not None:
            _log.warning(
                "%s: %s from %s: %s (reply %s)",
                verdict.account.panel_device_id,
                verdict.reason,
                peer,
                verdict.detail,
                verdict.reply_kind,
            )
        else:
            _log.debug(
                "%s: %s from %s: %s (reply %s)",
                self._receiver_device_id,
                verdict.reason,
                peer,
                verdict.detail,
                verdict.reply_kind,
            )

    async def _ingest(self, event: DeviceEvent) -> bool:
        try:
            async with asyncio.timeout(self._limits.ingest_timeout):
                await self._ingest_fn(event)
        except Exception as exc:
            # The hub could not store it: do not acknowledge; the panel will resend.
            _log.warning("%s: could not store %s: %r", event.device_id, event.kind, exc)
            return False
        return True

    async def _report_unknown_account(self, verdict: Verdict, peer: str, now: datetime) -> None:
        account = verdict.unknown_account
        assert account is not None
        mono = self._monotonic()
        period = self._limits.unknown_account_period
        last = self._unknown_reported.get(account)
        if last is not None and mono - last < period:
            return
        if len(self._unknown_reported) >= _MAX_UNKNOWN_REMEMBERED:
            self._unknown_reported = {
                a: t for a, t in self._unknown_reported.items() if mono - t < period
            }
        # Claimed before the await so that concurrent frames do not report it twice.
        self._unknown_reported[account] = mono
        envelope = verdict.envelope
        event = DeviceEvent(
            device_id=self._receiver_device_id,
            kind="fault.unknown_account",
            occurred_at=now,
            source={
                "protocol": PROTOCOL,
                "account": account,
                "prefix": envelope.prefix if envelope else None,
                "peer": peer,
            },
        )
        _log.warning("%s: frames from unconfigured account %s (%s)", event.device_id, account, peer)
        if not await self._ingest(event):
            self._unknown_reported.pop(account, None)

    async def _heard(self, cfg: AccountConfig, now: datetime) -> bool:
        """Restart the account's supervision timer; store the restore if the link was lost."""
        if not self._supervisor.heard(cfg.account, self._monotonic(), now):
            return True
        return await self._store_restore(cfg, now)

    async def _store_restore(self, cfg: AccountConfig, now: datetime) -> bool:
        lost_since = self._supervisor.lost_since(cfg.account)
        event = DeviceEvent(
            device_id=cfg.panel_device_id,
            kind="fault.supervision.restore",
            occurred_at=now,
            source={"protocol": PROTOCOL, "account": cfg.account, "qualifier": "restore"},
            dedupe_key=f"{PROTOCOL}:{cfg.account}:supervision:{_stamp(lost_since)}:restore",
        )
        if not await self._ingest(event):
            return False
        self._supervisor.restored(cfg.account)
        _log.info("%s: supervision restored (account %s)", cfg.panel_device_id, cfg.account)
        return True

    async def _supervise(self) -> None:
        """The one task that notices silent panels."""
        while True:
            now_mono = self._monotonic()
            for overdue in self._supervisor.overdue(now_mono):
                await self._store_loss(overdue)
            deadline = self._supervisor.next_deadline()
            delay = self._check_period
            if deadline is not None:
                delay = min(delay, max(deadline - self._monotonic(), 0.0))
            # Deadlines pass by without any message, so there is nothing to wait on but time.
            await asyncio.sleep(delay + 0.001)

    async def _store_loss(self, overdue: Overdue) -> None:
        cfg = self._accounts[overdue.account]
        now = self._clock()
        event = DeviceEvent(
            device_id=cfg.panel_device_id,
            kind="fault.supervision",
            occurred_at=now,
            source={"protocol": PROTOCOL, "account": cfg.account, "qualifier": "new"},
            # Stable while this outage is retried: same start, same count of messages heard.
            dedupe_key=f"{PROTOCOL}:{cfg.account}:supervision:{self._started}:{overdue.heard_mark}",
            detail={
                "silent_for": round(overdue.silent_for, 3),
                "interval": cfg.supervision_interval,
                "grace": cfg.supervision_grace,
            },
        )
        if not await self._ingest(event):
            return  # retried on the next check
        _log.warning(
            "%s: supervision fault, account %s silent for %.1f s",
            cfg.panel_device_id,
            cfg.account,
            overdue.silent_for,
        )
        if self._supervisor.mark_lost(overdue, now):
            await self._store_restore(cfg, self._clock())


def _stamp(moment: datetime | None) -> str:
    return "none" if moment is None else moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")


def _peer_name(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, receiver: SiaReceiver) -> None:
        self._receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._receiver._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        _log.debug("UDP error: %r", exc)
