"""SIP transactions over a thin transport (RFC 3261 §17, the parts a lower-level platform needs).

Client side: a request is matched to its responses by the Via branch and the CSeq method;
over UDP a non-INVITE request is retransmitted from T1 doubling up to T2 until a final
response or Timer F (64·T1, or the caller's shorter deadline). Server side: a retransmitted
request (same branch and method) gets the response already sent, not a second handling.
Unparsable datagrams are counted and dropped — they never reach the handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Final

from adapters.gb28181.transport import Address
from adapters.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    parse_message,
    via_branch,
)

log = logging.getLogger(__name__)

T2_S: Final = 4.0
_SERVER_CACHE: Final = 256


class TransactionTimeout(Exception):
    """No final response arrived before the transaction's deadline."""


def transaction_key(branch: str | None, method: str) -> tuple[str, str]:
    """The key a response or a retransmitted request is matched by (ACK pairs with INVITE)."""
    return (branch or "", "INVITE" if method == "ACK" else method)


class Signalling:
    """Matches responses to requests, answers retransmissions, hands new requests on."""

    def __init__(
        self,
        send: Callable[[bytes, Address], Awaitable[None]],
        on_request: Callable[[SipRequest, Address], None],
        *,
        t1_s: float = 0.5,
        reliable: bool = False,
    ) -> None:
        self._send = send
        self._on_request = on_request
        self.t1_s = t1_s
        self.reliable = reliable
        self.counters: Counter[str] = Counter()
        """Dropped or absorbed messages by reason."""
        self._pending: dict[tuple[str, str], asyncio.Future[SipResponse]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._answered: OrderedDict[tuple[str, str], tuple[bytes, Address]] = OrderedDict()

    # --- incoming ------------------------------------------------------------------------

    def receive(self, data: bytes, addr: Address) -> None:
        """Feed one received message (a datagram, or one framed out of the TCP stream)."""
        if not data.strip(b"\r\n"):
            return  # keep-alive CRLFs
        self.counters["received"] += 1
        try:
            message = parse_message(data)
            key = transaction_key(via_branch(message.require("Via")), message.cseq[1])
        except SipParseError as exc:
            self.counters["unparsable"] += 1
            log.debug("dropped unparsable SIP message from %s:%d: %s", *addr, exc)
            return
        if isinstance(message, SipResponse):
            future = self._pending.get(key)
            if future is None:
                self.counters["stray_response"] += 1
            elif message.status >= 200 and not future.done():
                future.set_result(message)
            return
        if message.method != "ACK":
            cached = self._answered.get((key[0], message.method))
            if cached is not None:
                self.counters["retransmission"] += 1
                self._spawn_send(*cached)
                return
        self.counters["request"] += 1
        self._on_request(message, addr)

    def _spawn_send(self, data: bytes, addr: Address) -> None:
        # A short-lived send from a synchronous callback; errors only lose a retransmission.
        task = asyncio.get_running_loop().create_task(self._send_quietly(data, addr))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_quietly(self, data: bytes, addr: Address) -> None:
        try:
            await self._send(data, addr)
        except OSError as exc:
            log.debug("resend to %s:%d failed: %s", *addr, exc)

    # --- outgoing ------------------------------------------------------------------------

    async def respond(self, request: SipRequest, response: SipResponse, addr: Address) -> None:
        """Send a response and keep it for retransmissions of the request (final ones only)."""
        data = response.to_bytes()
        if response.status >= 200 and request.method != "INVITE":
            key = (via_branch(request.require("Via")) or "", request.method)
            self._answered[key] = (data, addr)
            while len(self._answered) > _SERVER_CACHE:
                self._answered.popitem(last=False)
        await self._send(data, addr)

    async def request(
        self, request: SipRequest, addr: Address, *, timeout_s: float | None = None
    ) -> SipResponse:
        """Send a non-INVITE request and return its final response.

        Raises ``TransactionTimeout`` after ``timeout_s`` (default 64·T1) without one, and
        ``OSError`` when the transport cannot send at all (TCP refused).
        """
        key = transaction_key(via_branch(request.require("Via")), request.cseq[1])
        future: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        data = request.to_bytes()
        limit = 64 * self.t1_s if timeout_s is None else timeout_s
        interval = self.t1_s
        try:
            await self._send(data, addr)
            async with asyncio.timeout(limit):
                while True:
                    if self.reliable:
                        return await future
                    done, _ = await asyncio.wait({future}, timeout=interval)
                    if done:
                        return future.result()
                    await self._send(data, addr)
                    interval = min(interval * 2, T2_S)
        except TimeoutError as exc:
            raise TransactionTimeout(f"no answer to {request.method} within {limit:g} s") from exc
        finally:
            self._pending.pop(key, None)
            if not future.done():
                future.cancel()
