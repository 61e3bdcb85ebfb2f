"""Thin SIP transports: bytes in and out, nothing else.

UDP: one socket; every datagram is one message. TCP: one connection to the upper platform,
opened on first use and again after it drops; messages are cut out of the stream by
Content-Length (``StreamFramer``). Both hand each message's bytes and the peer's address to
``on_message``; parsing and every protocol rule live above.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Literal, Protocol

from adapters.sip.message import SipParseError, StreamFramer

log = logging.getLogger(__name__)

Address = tuple[str, int]
OnMessage = Callable[[bytes, Address], None]
TransportName = Literal["UDP", "TCP"]


class SipTransport(Protocol):
    name: TransportName

    @property
    def local(self) -> Address: ...

    async def ready(self) -> None:
        """Have the local address final (TCP: connected), so Via and Contact can name it."""

    async def send(self, data: bytes, addr: Address) -> None: ...

    async def close(self) -> None: ...


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, on_message: OnMessage) -> None:
        self.on_message = on_message

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_message(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the upper platform is down: the timers handle it.
        log.debug("SIP/UDP socket error: %s", exc)


class UdpTransport:
    name: TransportName = "UDP"

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self._transport = transport

    @classmethod
    async def open(cls, host: str, port: int, on_message: OnMessage) -> UdpTransport:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(on_message), local_addr=(host, port)
        )
        # Python 3.11's UDP transport does not subclass DatagramTransport.
        return cls(transport)

    @property
    def local(self) -> Address:
        name = self._transport.get_extra_info("sockname")
        return str(name[0]), int(name[1])

    async def ready(self) -> None:
        return

    async def send(self, data: bytes, addr: Address) -> None:
        self._transport.sendto(data, addr)

    async def close(self) -> None:
        self._transport.close()


class TcpTransport:
    """One client connection to ``remote``; requests from the peer arrive on it too."""

    name: TransportName = "TCP"

    def __init__(
        self,
        local_host: str,
        remote: Address,
        on_message: OnMessage,
        *,
        connect_timeout_s: float = 5.0,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self.local_host = local_host
        self.remote = remote
        self.on_message = on_message
        self.on_disconnect = on_disconnect
        self.connect_timeout_s = connect_timeout_s
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._local: Address = (local_host, 0)

    @property
    def local(self) -> Address:
        return self._local

    async def _connect(self) -> asyncio.StreamWriter:
        async with self._lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await asyncio.open_connection(
                    self.remote[0], self.remote[1], local_addr=(self.local_host, 0)
                )
            name = writer.get_extra_info("sockname")
            self._local = (str(name[0]), int(name[1]))
            self._writer = writer
            # One reader per connection; it ends when the connection does.
            self._reader_task = asyncio.get_running_loop().create_task(
                self._read(reader, writer), name=f"sip-tcp-read-{self.remote[0]}:{self.remote[1]}"
            )
            return writer

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = StreamFramer()
        try:
            while data := await reader.read(65536):
                for message in framer.feed(data):
                    self.on_message(message, self.remote)
        except SipParseError as exc:
            log.warning("SIP/TCP from %s:%d: %s; closing", *self.remote, exc)
        except OSError as exc:
            log.debug("SIP/TCP read from %s:%d: %s", *self.remote, exc)
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
            if self.on_disconnect is not None:
                self.on_disconnect()

    async def ready(self) -> None:
        await self._connect()

    async def send(self, data: bytes, addr: Address) -> None:
        writer = await self._connect()
        writer.write(data)
        await writer.drain()

    async def close(self) -> None:
        task, self._reader_task = self._reader_task, None
        if self._writer is not None:
            self._writer.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
