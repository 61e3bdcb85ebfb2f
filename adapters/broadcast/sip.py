"""SIP paging driver: one call per zone to ``sip:<extension>@host:port`` over UDP.

This is how IP PA amplifiers and paging gateways that take SIP accept announcements: the
zone auto-answers an INVITE offering G.711 (PCMU, PCMA), the message is streamed as RTP to
the address in the answer, and the call is hung up with BYE.

Each call runs on its own pair of UDP sockets (SIP and RTP), so calls to several zones run
side by side without sharing state. Every step has a deadline: the INVITE transaction
retransmits from T1 doubling up to Timer B (RFC 3261 §17.1.1.2, simplified), an answer must
follow a provisional response within ``answer_timeout_s`` (else CANCEL), BYE retransmits like
any non-INVITE request up to ``bye_timeout_s``, and ``play_timeout_s`` bounds the whole call.

Options: ``t1_s`` (0.5), ``invite_timeout_s`` (64·T1), ``answer_timeout_s`` (20),
``bye_timeout_s`` (8), ``play_timeout_s`` (message length + 60), ``timeout_s`` (status probe,
5), ``codecs`` (``["PCMU", "PCMA"]``, in order of preference), ``local_host`` (address to
offer; default the one the OS routes to the controller from), ``from_user`` (``mallhub``),
``language`` (``zh``), ``tts_voices`` (language → espeak-ng voice), ``messages_dir``
(site-specific recordings beside the shipped ones).

A call's parts that stand alone (dialog state, sockets, audio, the OPTIONS probe) are in
``sip_call``; SIP messages and SDP in ``sip_protocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import Counter, deque
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from adapters.broadcast import g711
from adapters.broadcast.audio import (
    MessageCatalog,
)
from adapters.broadcast.base import (
    DEFAULT_TIMEOUT_S,
    REASON_TIMEOUT,
    BroadcastDriver,
    BroadcastStatus,
    ControllerConfig,
    PlayResult,
    ZoneConfig,
    ZoneState,
    now_utc,
    option_float,
)
from adapters.broadcast.g711 import Pcm16
from adapters.broadcast.rtp import CLOCK_RATE, RtpSender, StreamStats, packetize
from adapters.broadcast.sip_call import (
    FAILURE_REASONS,
    T2_S,
    WOKEN,
    ActiveCall,
    CallAudio,
    CallFailed,
    CallReport,
    Dialog,
    Woken,
    options_transaction,
    route,
    udp_socket,
)
from adapters.broadcast.sip_protocol import (
    CODEC_PAYLOAD_TYPES,
    SdpAudio,
    SipParseError,
    SipRequest,
    SipResponse,
    build_authorization,
    build_request,
    build_response,
    build_sdp_offer,
    format_hostport,
    new_branch,
    new_call_id,
    parse_challenge,
    parse_message,
    parse_sdp_audio,
    parse_sip_uri,
    tag_of,
    uri_of,
    via_branch,
)
from adapters.errors import DeviceUnreachable

log = logging.getLogger(__name__)

HISTORY: Final = 100
_ALLOW: Final = "INVITE, ACK, CANCEL, BYE, OPTIONS"


class SipPagingDriver(BroadcastDriver):
    """Pages zones over SIP. ``url`` is ``sip:host[:port]``; zone targets are extensions."""

    def __init__(self, cfg: ControllerConfig) -> None:
        super().__init__(cfg)
        opts = cfg.options
        _, self.host, self.port = parse_sip_uri(cfg.url)
        self.t1_s = option_float(opts, "t1_s", 0.5)
        self.invite_timeout_s = option_float(opts, "invite_timeout_s", 64 * self.t1_s)
        self.answer_timeout_s = option_float(opts, "answer_timeout_s", 20.0)
        self.bye_timeout_s = option_float(opts, "bye_timeout_s", 8.0)
        self.timeout_s = option_float(opts, "timeout_s", DEFAULT_TIMEOUT_S)
        self._play_timeout_s: float | None = (
            option_float(opts, "play_timeout_s", 1.0) if "play_timeout_s" in opts else None
        )
        codecs = [str(c).upper() for c in opts.get("codecs", ["PCMU", "PCMA"])]
        if not codecs or any(c not in CODEC_PAYLOAD_TYPES for c in codecs):
            raise ValueError(f"{cfg.device_id}: codecs must be a list of PCMU and/or PCMA")
        self.codecs = codecs
        self.local_host: str | None = opts.get("local_host")
        self.from_user = str(opts.get("from_user", "mallhub"))
        extra = (Path(str(opts["messages_dir"])),) if opts.get("messages_dir") else ()
        self.audio = CallAudio(
            MessageCatalog(str(opts.get("language", "zh")), extra),
            dict(opts.get("tts_voices", {})),
        )
        self.calls: deque[CallReport] = deque(maxlen=HISTORY)
        """The most recent calls, oldest first."""
        self.counters: Counter[str] = Counter()
        """Ignored incoming datagrams by reason (unparsable, stray)."""
        self._active: dict[str, ActiveCall] = {}

    async def close(self) -> None:
        """Hang up every call in progress and wait (bounded) for the hang-ups."""
        if self._active:
            with contextlib.suppress(DeviceUnreachable):
                await self.stop(list(self._active))

    async def play(self, zones: Sequence[str], message: str) -> list[PlayResult]:
        known, results = self._split_known(zones)
        if not known:
            return [results[z] for z in zones]
        started = now_utc()
        try:
            pcm = await self.audio.pcm(message)
        except CallFailed as exc:
            log.warning("%s: cannot play %r: %s", self.device_id, message, exc.reason)
            pcm = None
            for zone in known:
                results[zone.id] = PlayResult(zone.id, "failed", exc.reason, started)
        if pcm is not None:
            async with asyncio.TaskGroup() as group:
                tasks = {
                    zone.id: group.create_task(self._play_zone(zone, pcm), name=f"page-{zone.id}")
                    for zone in known
                }
            results |= {zone_id: task.result() for zone_id, task in tasks.items()}
        return [results[z] for z in zones]

    async def stop(self, zones: Sequence[str]) -> None:
        wanted = self._known_zones(zones)
        waiting = []
        for zone in wanted:
            active = self._active.get(zone.id)
            if active is None:
                continue
            active.stop.set()
            if active.sip is not None:
                active.sip.wake()
            waiting.append(active.done.wait())
        if not waiting:
            return
        try:
            async with asyncio.timeout(self.bye_timeout_s + self.t1_s):
                await asyncio.gather(*waiting)
        except TimeoutError as exc:
            raise DeviceUnreachable(self.device_id, "calls did not end in time") from exc

    async def status(self) -> BroadcastStatus:
        states: dict[str, ZoneState] = {
            z: ("busy" if z in self._active else "idle") for z in self.zones
        }
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(self.timeout_s):
                remote, local_host = await route(self.host, self.port, self.local_host)
                async with udp_socket(local_host, keep=True) as sock:
                    response = await options_transaction(
                        sock,
                        remote,
                        local_host,
                        host=self.host,
                        port=self.port,
                        from_user=self.from_user,
                        t1_s=self.t1_s,
                    )
        except TimeoutError:
            error, error_type = "timeout: no answer to OPTIONS", "DeviceUnreachable"
        except OSError as exc:
            error, error_type = f"unreachable: {exc}", "DeviceUnreachable"
        else:
            latency = loop.time() - started
            log.debug("%s: OPTIONS → %d in %.3fs", self.device_id, response.status, latency)
            return BroadcastStatus(self.device_id, True, latency, states)
        return BroadcastStatus(
            self.device_id,
            reachable=False,
            zones=dict.fromkeys(self.zones, "unknown"),
            error=error,
            error_type=error_type,
        )

    async def _play_zone(self, zone: ZoneConfig, pcm: Pcm16) -> PlayResult:
        started = now_utc()
        active = self._active.get(zone.id)
        if active is not None:
            return PlayResult(zone.id, "failed", "already paging this zone", started)
        active = self._active[zone.id] = ActiveCall()
        limit = self._play_timeout_s or (len(pcm) / CLOCK_RATE + 60.0)
        dialog: Dialog | None = None
        try:
            try:
                async with asyncio.timeout(self.timeout_s):
                    remote, local_host = await route(self.host, self.port, self.local_host)
            except TimeoutError as exc:
                raise CallFailed(f"{REASON_TIMEOUT}: cannot resolve {self.host}") from exc
            async with (
                udp_socket(local_host, keep=True) as sip,
                udp_socket(local_host, keep=False, even=True) as rtp,
            ):
                active.sip = sip
                dialog = Dialog(
                    zone=zone,
                    request_uri=f"sip:{zone.address}@{format_hostport(self.host, self.port)}",
                    remote=remote,
                    local_host=local_host,
                    sip=sip,
                    rtp=rtp,
                    stop=active.stop,
                )
                try:
                    async with asyncio.timeout(limit):
                        result = await self._call(dialog, pcm, started)
                except TimeoutError:
                    if dialog.ack and not dialog.hangup:
                        await self._hang_up(dialog, within=self.t1_s * 4)
                    raise
        except CallFailed as exc:
            result = PlayResult(zone.id, "failed", exc.reason, started)
        except TimeoutError:
            result = PlayResult(
                zone.id, "failed", f"{REASON_TIMEOUT}: call took over {limit:g} s", started
            )
        except OSError as exc:
            result = PlayResult(zone.id, "failed", f"unreachable: {exc}", started)
        finally:
            self._active.pop(zone.id, None)
            active.done.set()
        log_fn = log.info if result.ok else log.warning
        log_fn(
            "%s: zone %s %s%s",
            self.device_id,
            zone.id,
            result.outcome,
            f" ({result.reason})" if result.reason else "",
        )
        self.calls.append(
            CallReport(
                zone=zone.id,
                extension=zone.address,
                call_id=dialog.call_id if dialog else "",
                result=result,
                final_status=dialog.final_status if dialog else None,
                codec=dialog.codec if dialog else None,
                remote_media=dialog.media if dialog else None,
                rtp=dialog.rtp_stats if dialog else None,
                rtp_packets_received=dialog.rtp.received if dialog else 0,
                authenticated=dialog.authenticated if dialog else False,
                hangup=dialog.hangup if dialog else "",
            )
        )
        return result

    async def _call(self, d: Dialog, pcm: Pcm16, started: datetime) -> PlayResult:
        d.call_id = new_call_id(d.local_host)
        d.from_ = (
            f'"{self.from_user}" <sip:{self.cfg.username or self.from_user}@{self.host}>'
            f";tag={d.from_tag}"
        )
        d.to = f"<{d.request_uri}>"
        session_id = secrets.randbelow(2**31)
        offer = build_sdp_offer(d.local_host, d.rtp.port, self.codecs, session_id=session_id)
        authorization: tuple[str, str] | None = None
        while True:
            branch = new_branch()
            extra = [("Allow", _ALLOW), ("Subject", "paging")]
            if authorization is not None:
                extra.append(authorization)
            invite = build_request(
                "INVITE",
                d.request_uri,
                via=d.via(branch),
                from_=d.from_,
                to=d.to,
                call_id=d.call_id,
                cseq=d.cseq,
                contact=d.contact,
                extra=extra,
                body=offer,
            )
            response = await self._invite_transaction(d, invite, branch)
            d.final_status = response.status
            if response.status >= 300:
                self._ack_failure(d, invite, response)
            if response.status in (401, 407) and authorization is None:
                authorization = self._authorize(d, response)
                d.authenticated = True
                d.cseq += 1
                continue
            break
        if response.status >= 300:
            if response.status in (401, 407):
                raise CallFailed("authentication failed", response.status)
            reason = FAILURE_REASONS.get(response.status, "rejected")
            raise CallFailed(f"{reason} ({response.status} {response.reason})", response.status)
        self._confirm(d, response)
        try:
            answer = parse_sdp_audio(response.body)
        except SipParseError as exc:
            await self._hang_up(d, within=self.bye_timeout_s)
            raise CallFailed(f"bad SDP answer: {exc}") from exc
        codec = self._pick_codec(answer)
        if codec is None or answer.port == 0:
            await self._hang_up(d, within=self.bye_timeout_s)
            raise CallFailed("no common codec in answer")
        d.codec, d.media = codec, (answer.address, answer.port)
        payloads = packetize(g711.ENCODERS[codec](pcm).tobytes(), g711.SILENCE[codec])
        stats = await self._stream(d, payloads)
        d.rtp_stats = stats
        if not d.remote_hangup:
            await self._hang_up(d, within=self.bye_timeout_s)
        reason = ""
        if d.remote_hangup:
            reason = "hung up by the zone"
        elif stats.stopped:
            reason = "stopped"
        elif d.hangup != "bye-ok":
            reason = f"hang-up not confirmed ({d.hangup})"
        if stats.packets == 0:
            return PlayResult(d.zone.id, "failed", reason or "nothing sent", started, 0.0)
        return PlayResult(d.zone.id, "played", reason, started, stats.duration_s)

    def _pick_codec(self, answer: SdpAudio) -> str | None:
        for payload_type in answer.payload_types:
            codec = answer.codec_for(payload_type)
            if codec in self.codecs and CODEC_PAYLOAD_TYPES[codec] == payload_type:
                return codec
        return None

    def _authorize(self, d: Dialog, response: SipResponse) -> tuple[str, str]:
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        challenge_text = response.get(header)
        if challenge_text is None or self.cfg.username is None:
            raise CallFailed("authentication required", response.status)
        try:
            challenge = parse_challenge(challenge_text)
            value = build_authorization(
                challenge,
                username=self.cfg.username,
                password=self.cfg.password or "",
                method="INVITE",
                uri=d.request_uri,
            )
        except ValueError as exc:
            raise CallFailed(f"authentication not possible: {exc}", response.status) from exc
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        return name, value

    async def _receive(self, d: Dialog, deadline: float) -> SipRequest | SipResponse | Woken | None:
        """Next parsable SIP message before ``deadline`` (loop time); ``None`` on timeout."""
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    item = await d.sip.queue.get()
            except TimeoutError:
                return None
            if item is None:
                return WOKEN
            data, addr = item
            if not data.strip():
                continue  # keep-alive
            try:
                message = parse_message(data)
                message.call_id  # noqa: B018 - every message we act on needs one
                message.cseq  # noqa: B018
            except SipParseError as exc:
                self.counters["unparsable"] += 1
                log.debug("%s: ignoring datagram from %s: %s", self.device_id, addr, exc)
                continue
            if message.call_id != d.call_id:
                self.counters["stray"] += 1
                continue
            if isinstance(message, SipRequest):
                self._answer_request(d, message, addr)
                continue
            return message

    def _answer_request(self, d: Dialog, request: SipRequest, addr: Any) -> None:
        """Requests from the zone inside our call: BYE ends it, the rest is declined."""
        if request.method == "ACK":
            return
        if request.method == "BYE":
            d.remote_hangup = True
            d.hangup = "remote"
            d.stop.set()
            reply = build_response(request, 200, "OK")
        elif request.method == "OPTIONS":
            reply = build_response(request, 200, "OK", extra=[("Allow", _ALLOW)])
        else:
            reply = build_response(request, 501, "Not Implemented")
        d.sip.send(reply.to_bytes(), (str(addr[0]), int(addr[1])))

    async def _invite_transaction(self, d: Dialog, invite: SipRequest, branch: str) -> SipResponse:
        """Send the INVITE, retransmit until a provisional answer, return the final one."""
        loop = asyncio.get_running_loop()
        data = invite.to_bytes()
        d.sip.send(data, d.remote)
        now = loop.time()
        interval = self.t1_s
        next_send = now + interval
        timer_b = now + self.invite_timeout_s
        answer_by: float | None = None
        while True:
            if d.stop.is_set():
                if answer_by is not None:
                    await self._cancel(d, invite, branch)
                raise CallFailed("stopped before answer")
            deadline = answer_by if answer_by is not None else min(next_send, timer_b)
            message = await self._receive(d, deadline)
            if isinstance(message, Woken):
                continue
            now = loop.time()
            if message is None:
                if answer_by is not None and now >= answer_by:
                    await self._cancel(d, invite, branch)
                    raise CallFailed(f"{REASON_TIMEOUT}: no answer after ringing")
                if answer_by is None and now >= timer_b:
                    raise CallFailed(f"{REASON_TIMEOUT}: no response to INVITE")
                if answer_by is None and now >= next_send:
                    d.sip.send(data, d.remote)
                    interval *= 2
                    next_send = now + interval
                continue
            assert isinstance(message, SipResponse)
            if message.cseq != (d.cseq, "INVITE"):
                continue
            top_via = message.get("Via")
            if top_via is None or via_branch(top_via) != branch:
                continue
            if message.status < 200:
                if answer_by is None:
                    answer_by = now + self.answer_timeout_s
                continue
            return message

    def _ack_failure(self, d: Dialog, invite: SipRequest, response: SipResponse) -> None:
        """ACK for a non-2xx final response: same branch, the response's To (RFC 3261 17.1.1.3)."""
        ack = build_request(
            "ACK",
            invite.uri,
            via=invite.require("Via"),
            from_=d.from_,
            to=response.get("To") or d.to,
            call_id=d.call_id,
            cseq=d.cseq,
        )
        d.sip.send(ack.to_bytes(), d.remote)

    def _confirm(self, d: Dialog, response: SipResponse) -> None:
        """Take the dialog from the 2xx and send the ACK (a transaction of its own)."""
        d.to = response.get("To") or d.to
        contact = response.get("Contact")
        d.remote_target = uri_of(contact) if contact else d.request_uri
        d.remote_addr = d.remote
        if contact:
            with contextlib.suppress(ValueError):
                _, host, port = parse_sip_uri(d.remote_target)
                d.remote_addr = (host, port)
        if tag_of(d.to) is None:
            log.debug("%s: 2xx without a To tag from zone %s", self.device_id, d.zone.id)
        ack = build_request(
            "ACK",
            d.remote_target,
            via=d.via(new_branch()),
            from_=d.from_,
            to=d.to,
            call_id=d.call_id,
            cseq=d.cseq,
        )
        d.ack = ack.to_bytes()
        d.sip.send(d.ack, d.remote_addr)

    async def _cancel(self, d: Dialog, invite: SipRequest, branch: str) -> None:
        """CANCEL a ringing INVITE and ACK its 487 (best effort, bounded)."""
        cancel = build_request(
            "CANCEL",
            invite.uri,
            via=d.via(branch),
            from_=d.from_,
            to=d.to,
            call_id=d.call_id,
            cseq=d.cseq,
        )
        d.sip.send(cancel.to_bytes(), d.remote)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(self.bye_timeout_s, 4 * self.t1_s)
        while (message := await self._receive(d, deadline)) is not None:
            if isinstance(message, SipResponse) and message.cseq == (d.cseq, "INVITE"):
                if message.status >= 300:
                    self._ack_failure(d, invite, message)
                    return
                if message.status >= 200:
                    # The zone answered as we cancelled: confirm, then hang up properly.
                    self._confirm(d, message)
                    await self._hang_up(d, within=self.bye_timeout_s)
                    return

    async def _stream(self, d: Dialog, payloads: list[bytes]) -> StreamStats:
        """Stream the audio while answering the zone's requests and re-ACKing its 2xx."""
        assert d.media is not None and d.codec is not None
        media = d.media
        sender = RtpSender(lambda data: d.rtp.send(data, media), CODEC_PAYLOAD_TYPES[d.codec])
        async with asyncio.TaskGroup() as group:
            listener = group.create_task(self._listen(d), name=f"sip-listen-{d.zone.id}")
            stats = await sender.stream(payloads, d.stop)
            listener.cancel()
        return stats

    async def _listen(self, d: Dialog) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await self._receive(d, loop.time() + 3600.0)
            if (
                isinstance(message, SipResponse)
                and message.cseq == (d.cseq, "INVITE")
                and 200 <= message.status < 300
            ):
                d.sip.send(d.ack, d.remote_addr)  # our ACK was lost

    async def _hang_up(self, d: Dialog, within: float) -> None:
        """Send BYE and wait for its final response, retransmitting per RFC 3261 timer E."""
        d.cseq += 1
        branch = new_branch()
        bye = build_request(
            "BYE",
            d.remote_target or d.request_uri,
            via=d.via(branch),
            from_=d.from_,
            to=d.to,
            call_id=d.call_id,
            cseq=d.cseq,
        ).to_bytes()
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + within
        interval = self.t1_s
        next_send = now + interval
        d.sip.send(bye, d.remote_addr)
        d.hangup = "bye-timeout"
        while True:
            message = await self._receive(d, min(next_send, deadline))
            now = loop.time()
            if message is None or isinstance(message, Woken):
                if now >= deadline:
                    log.warning("%s: zone %s: BYE not answered", self.device_id, d.zone.id)
                    return
                if now >= next_send:
                    d.sip.send(bye, d.remote_addr)
                    interval = min(interval * 2, T2_S)
                    next_send = now + interval
                continue
            if isinstance(message, SipResponse):
                if message.cseq == (d.cseq - 1, "INVITE") and message.status < 300:
                    d.sip.send(d.ack, d.remote_addr)
                elif message.cseq == (d.cseq, "BYE") and message.status >= 200:
                    d.hangup = "bye-ok" if message.status < 300 else f"bye-{message.status}"
                    return
            if d.remote_hangup:
                return
