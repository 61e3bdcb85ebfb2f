"""The parts of one SIP paging call: its dialog state, its UDP sockets (SIP and RTP), what
happened on the wire (:class:`CallReport`), and how a failed call is reported."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

from adapters.broadcast.audio import AudioError, MessageCatalog, load_wav, render_text, tts_voice
from adapters.broadcast.base import (
    REASON_BUSY,
    REASON_NO_AUDIO,
    PlayResult,
    ZoneConfig,
)
from adapters.broadcast.g711 import Pcm16
from adapters.broadcast.rtp import StreamStats
from adapters.broadcast.sip_protocol import (
    SipParseError,
    SipResponse,
    build_request,
    format_hostport,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)

log = logging.getLogger("adapters.broadcast.sip")

T2_S: Final = 4.0
"""RFC 3261's T2: the longest retransmission interval of a non-INVITE request."""


FAILURE_REASONS: Final = {
    403: "forbidden",
    404: "extension not found",
    408: "no answer",
    480: "temporarily unavailable",
    486: REASON_BUSY,
    488: "codec not acceptable",
    600: REASON_BUSY,
    603: "declined",
}


class CallFailed(Exception):
    """The call ended without the message being played; ``reason`` goes to the result."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Woken:
    """Returned by a receive that was interrupted by ``stop``."""


WOKEN: Final = Woken()


@dataclass(frozen=True, slots=True)
class CallReport:
    """What happened on the wire during one zone's call (kept for diagnostics and tests)."""

    zone: str
    extension: str
    call_id: str
    result: PlayResult
    final_status: int | None = None
    codec: str | None = None
    remote_media: tuple[str, int] | None = None
    rtp: StreamStats | None = None
    rtp_packets_received: int = 0
    authenticated: bool = False
    hangup: str = ""
    """``bye-ok`` (our BYE answered 2xx), ``bye-timeout``, ``bye-<code>``, ``remote`` or ``""``."""


class Datagrams(asyncio.DatagramProtocol):
    """A UDP socket whose datagrams are queued (SIP) or only counted (RTP)."""

    def __init__(self, keep: bool) -> None:
        self._keep = keep
        self.queue: asyncio.Queue[tuple[bytes, Any] | None] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's UDP transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received += 1
        if self._keep:
            self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable) on an unconnected socket; the timers handle it.
        log.debug("UDP error on local socket: %s", exc)

    def wake(self) -> None:
        self.queue.put_nowait(None)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)


@dataclass(slots=True)
class ActiveCall:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    sip: Datagrams | None = None


@dataclass(slots=True)
class Dialog:
    """State of one call, from the INVITE to the end of the BYE transaction."""

    zone: ZoneConfig
    request_uri: str
    remote: tuple[str, int]
    local_host: str
    sip: Datagrams
    rtp: Datagrams
    stop: asyncio.Event
    call_id: str = ""
    from_tag: str = field(default_factory=new_tag)
    from_: str = ""
    cseq: int = 1
    to: str = ""
    remote_target: str = ""
    remote_addr: tuple[str, int] = ("", 0)
    ack: bytes = b""
    final_status: int | None = None
    authenticated: bool = False
    codec: str | None = None
    media: tuple[str, int] | None = None
    rtp_stats: StreamStats | None = None
    hangup: str = ""
    remote_hangup: bool = False

    def via(self, branch: str) -> str:
        return (
            f"SIP/2.0/UDP {format_hostport(self.local_host, self.sip.port)};branch={branch};rport"
        )

    @property
    def contact(self) -> str:
        return f"<sip:mallhub@{format_hostport(self.local_host, self.sip.port)}>"


@contextlib.asynccontextmanager
async def udp_socket(host: str, *, keep: bool, even: bool = False) -> AsyncIterator[Datagrams]:
    """A UDP socket on an ephemeral port of ``host`` (an even one for RTP, when asked)."""
    loop = asyncio.get_running_loop()
    for attempt in range(20):
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: Datagrams(keep), local_addr=(host, 0)
        )
        if not even or protocol.port % 2 == 0 or attempt == 19:
            break
        transport.close()
    try:
        yield protocol
    finally:
        transport.close()


async def options_transaction(
    sock: Datagrams,
    remote: tuple[str, int],
    local_host: str,
    *,
    host: str,
    port: int,
    from_user: str,
    t1_s: float,
) -> SipResponse:
    """One OPTIONS transaction; any response proves the controller is there."""
    call_id = new_call_id(local_host)
    branch = new_branch()
    hostport = format_hostport(host, port)
    request = build_request(
        "OPTIONS",
        f"sip:{hostport}",
        via=f"SIP/2.0/UDP {format_hostport(local_host, sock.port)};branch={branch};rport",
        from_=f"<sip:{from_user}@{host}>;tag={new_tag()}",
        to=f"<sip:{hostport}>",
        call_id=call_id,
        cseq=1,
        extra=[("Accept", "application/sdp")],
    ).to_bytes()
    interval = t1_s
    sock.send(request, remote)
    while True:
        try:
            async with asyncio.timeout(interval):
                item = await sock.queue.get()
        except TimeoutError:
            sock.send(request, remote)
            interval = min(interval * 2, T2_S)
            continue
        if item is None:
            continue
        with contextlib.suppress(SipParseError):
            message = parse_message(item[0])
            if isinstance(message, SipResponse) and message.get("Call-ID") == call_id:
                return message


class CallAudio:
    """What a call plays: a catalogued recording by name, or any other text through TTS."""

    def __init__(self, catalog: MessageCatalog, tts_voices: Mapping[str, str]) -> None:
        self.catalog = catalog
        self.tts_voices = tts_voices
        self._cache: dict[str, Pcm16] = {}

    async def pcm(self, message: str) -> Pcm16:
        """The message as 8 kHz PCM: a stored recording (read once) or text spoken by TTS."""
        stored = self.catalog.get(message)
        if stored is not None:
            cached = self._cache.get(stored.name)
            if cached is None:
                try:
                    cached = await asyncio.to_thread(load_wav, stored.wav)
                except AudioError as exc:
                    raise CallFailed(f"no audio: {exc}") from exc
                self._cache[stored.name] = cached
            return cached
        if not message.strip():
            raise CallFailed("empty message")
        try:
            pcm = await render_text(message, tts_voice(message, self.tts_voices))
        except AudioError as exc:
            raise CallFailed(f"{REASON_NO_AUDIO}: {exc}") from exc
        if pcm is None:
            raise CallFailed(REASON_NO_AUDIO)
        return pcm


async def route(host: str, port: int, local_host: str | None) -> tuple[tuple[str, int], str]:
    """Controller address (resolved) and the local address that reaches it."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"cannot resolve {host}")
    family, _, _, _, sockaddr = infos[0]
    remote = (str(sockaddr[0]), int(sockaddr[1]))
    if local_host:
        return remote, local_host
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        # connect() on UDP sends nothing; it only asks the kernel for the route.
        probe.connect(remote)
        return remote, str(probe.getsockname()[0])
