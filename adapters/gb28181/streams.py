"""Live video on demand: the INVITE dialogs of the lower-level platform.

``INVITE`` for a camera channel → 100, then (source opened, media port bound) 200 with our
SDP, retransmitted over UDP until the ACK; the stream starts on the ACK and ends on ``BYE``,
on ``CANCEL`` before the ACK, or when the camera's stream ends (then we send ``BYE``). At most
``max_streams`` run at once: the next INVITE gets 486 Busy Here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from adapters.gb28181.media import MediaError, RtpOutput, RtspReader, pump
from adapters.gb28181.model import Channel, PlatformConfig, PlatformHooks
from adapters.gb28181.sdp import build_answer, parse_offer, ssrc_value
from adapters.gb28181.signalling import Signalling, TransactionTimeout
from adapters.gb28181.transport import Address
from adapters.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    build_request,
    build_response,
    new_tag,
    parse_sip_uri,
    uri_of,
)

log = logging.getLogger(__name__)

USER_AGENT: Final = "mallhub-gb28181"
MEDIA_CONNECT_S: Final = 10.0


class Endpoint(Protocol):
    """What the platform lends the stream manager: its SIP identity and signalling."""

    config: PlatformConfig
    signalling: Signalling

    async def ready(self) -> None: ...

    def via(self) -> str: ...

    def contact(self, user: str) -> str: ...

    @property
    def contact_host(self) -> str: ...


@dataclass(slots=True)
class StreamSession:
    """One live stream, from the INVITE to its end."""

    call_id: str
    channel: Channel
    invite: SipRequest
    peer: Address
    to_tag: str
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ended_by: str = ""
    packets: int = 0
    transport: str = "udp"
    ssrc: str = ""


class StreamManager:
    def __init__(self, endpoint: Endpoint, hooks: PlatformHooks) -> None:
        self.endpoint = endpoint
        self.hooks = hooks
        self.sessions: dict[str, StreamSession] = {}
        self.history: list[StreamSession] = []
        self.counters: Counter[str] = Counter()
        """Refused INVITEs by status, ended streams by cause."""

    @property
    def config(self) -> PlatformConfig:
        return self.endpoint.config

    async def _respond(
        self,
        request: SipRequest,
        addr: Address,
        status: int,
        reason: str,
        *,
        to_tag: str | None = None,
        extra: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> SipResponse:
        response = build_response(
            request,
            status,
            reason,
            to_tag=to_tag,
            extra=extra,
            body=body,
            content_type="application/sdp" if body else None,
            user_agent=USER_AGENT,
        )
        await self.endpoint.signalling.respond(request, response, addr)
        return response

    async def refuse(self, request: SipRequest, addr: Address, status: int, reason: str) -> None:
        self.counters[f"refused_{status}"] += 1
        log.info("%s: INVITE refused: %d %s", self.config.device_id, status, reason)
        await self._respond(request, addr, status, reason, to_tag=new_tag())

    def _find_camera(self, request: SipRequest) -> Channel | None:
        user: str | None = None
        with contextlib.suppress(ValueError):
            user, _, _ = parse_sip_uri(request.uri)
        if not user:
            with contextlib.suppress(ValueError, SipParseError):
                user, _, _ = parse_sip_uri(uri_of(request.require("To")))
        for channel in self.hooks.channels():
            if channel.channel_id == user and channel.kind == "camera":
                return channel
        return None

    async def handle_invite(self, request: SipRequest, addr: Address) -> None:
        """Serve one INVITE to its end (this coroutine lives as long as the stream)."""
        call_id = request.call_id
        await self._respond(request, addr, 100, "Trying")
        if call_id in self.sessions:
            await self.refuse(request, addr, 488, "Not Acceptable Here (re-INVITE)")
            return
        channel = self._find_camera(request)
        if channel is None:
            await self.refuse(request, addr, 404, "Not Found (no such camera channel)")
            return
        if len(self.sessions) >= self.config.max_streams:
            await self.refuse(request, addr, 486, "Busy Here (stream limit reached)")
            return
        try:
            offer = parse_offer(request.body)
        except SipParseError as exc:
            await self.refuse(request, addr, 488, f"Not Acceptable Here ({exc})")
            return
        if offer.session.lower() != "play":
            await self.refuse(request, addr, 488, "Not Acceptable Here (only live video, s=Play)")
            return
        session = StreamSession(call_id, channel, request, addr, new_tag())
        session.transport = offer.transport if offer.setup is None else f"tcp-{offer.setup}"
        self.sessions[call_id] = session  # counts against the limit from now on
        reader: RtspReader | None = None
        output = RtpOutput(offer, self.endpoint.contact_host)
        try:
            source = None
            if self.hooks.stream_source is not None:
                source = await self.hooks.stream_source(channel)
            if source is None:
                await self.refuse(request, addr, 480, "Temporarily Unavailable (no stream)")
                return
            reader = RtspReader(source)
            try:
                await reader.open()
                await output.prepare()
            except (MediaError, OSError) as exc:
                log.warning("%s: %s: %s", self.config.device_id, channel.device_ref, exc)
                await self.refuse(request, addr, 503, "Service Unavailable (camera stream)")
                return
            session.ssrc = (
                offer.ssrc or f"0{self.config.device_id[3:8]}{secrets.randbelow(10000):04d}"
            )
            answer = build_answer(
                offer,
                channel_id=channel.channel_id,
                address=self.endpoint.contact_host,
                port=output.port,
                ssrc=session.ssrc,
                session_id=secrets.randbelow(10**9),
            )
            ok = await self._respond(
                request,
                addr,
                200,
                "OK",
                to_tag=session.to_tag,
                extra=[("Contact", self.endpoint.contact(channel.channel_id))],
                body=answer,
            )
            if not await self._await_ack(session, ok, addr):
                session.ended_by = "no ACK"
                return
            await output.connect(MEDIA_CONNECT_S)
            reader.start(asyncio.get_running_loop())
            session.ended_by = await self._run(session, reader, output, offer.payload_type)
            if not session.stop.is_set():
                await self._send_bye(session)
        except MediaError as exc:
            session.ended_by = str(exc)
            await self._send_bye(session)
        finally:
            self.sessions.pop(call_id, None)
            if session.ended_by:
                self.counters[f"ended: {session.ended_by.split(':')[0]}"] += 1
                self.history.append(session)
                del self.history[:-50]
            await output.close()
            if reader is not None:
                await reader.close()
            log.info(
                "%s: stream of %s ended (%s), %d RTP packets",
                self.config.device_id,
                channel.device_ref,
                session.ended_by or "refused",
                session.packets,
            )

    async def _await_ack(self, session: StreamSession, ok: SipResponse, addr: Address) -> bool:
        """Retransmit the 200 until the ACK (UDP), at most 64·T1 (RFC 3261 §13.3.1.4)."""
        t1 = self.config.t1_s
        interval = t1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 64 * t1
        reliable = self.endpoint.signalling.reliable
        while not session.acked.is_set():
            if session.stop.is_set():
                return False
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining if reliable else min(interval, remaining)):
                    await session.acked.wait()
            if not session.acked.is_set() and not reliable:
                await self.endpoint.signalling.respond(session.invite, ok, addr)
                interval = min(interval * 2, 4.0)
        return not session.stop.is_set()

    async def _run(
        self, session: StreamSession, reader: RtspReader, output: RtpOutput, payload_type: int
    ) -> str:
        def sent(count: int) -> None:
            session.packets += count

        async with asyncio.TaskGroup() as group:
            pumping = group.create_task(
                pump(reader, output, ssrc_value(session.ssrc), payload_type, sent),
                name=f"gb-stream-{session.channel.device_ref}",
            )
            stopping = group.create_task(session.stop.wait(), name="gb-stream-stop")
            await asyncio.wait({pumping, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if session.stop.is_set():
                pumping.cancel()
                return "BYE"
            stopping.cancel()
        return pumping.result()

    # --- in-dialog requests ---------------------------------------------------------------

    def handle_ack(self, request: SipRequest) -> None:
        session = self.sessions.get(request.get("Call-ID") or "")
        if session is not None:
            session.acked.set()

    async def handle_bye(self, request: SipRequest, addr: Address) -> None:
        session = self.sessions.get(request.call_id)
        if session is None:
            await self._respond(request, addr, 481, "Call/Transaction Does Not Exist")
            return
        session.stop.set()
        await self._respond(request, addr, 200, "OK")

    async def handle_cancel(self, request: SipRequest, addr: Address) -> None:
        session = self.sessions.get(request.call_id)
        if session is None or session.acked.is_set():
            await self._respond(request, addr, 481, "Call/Transaction Does Not Exist")
            return
        session.stop.set()
        session.ended_by = "CANCEL"
        await self._respond(request, addr, 200, "OK")
        await self._respond(session.invite, addr, 487, "Request Terminated", to_tag=session.to_tag)

    async def _send_bye(self, session: StreamSession) -> None:
        """End the dialog from our side (best effort, bounded)."""
        if not session.acked.is_set():
            return
        invite = session.invite
        with contextlib.suppress(OSError, TimeoutError):
            await self.endpoint.ready()
        contact = invite.get("Contact")
        target = uri_of(contact) if contact else uri_of(invite.require("From"))
        bye = build_request(
            "BYE",
            target,
            via=self.endpoint.via(),
            from_=f"{invite.require('To')};tag={session.to_tag}",
            to=invite.require("From"),
            call_id=session.call_id,
            cseq=1,
            user_agent=USER_AGENT,
        )
        with contextlib.suppress(TransactionTimeout, OSError):
            await self.endpoint.signalling.request(
                bye, session.peer, timeout_s=8 * self.config.t1_s
            )

    async def close(self) -> None:
        """Stop every stream (BYE to the platform) before the platform unregisters."""
        for session in list(self.sessions.values()):
            session.ended_by = "stopping"
            await self._send_bye(session)
            session.stop.set()
