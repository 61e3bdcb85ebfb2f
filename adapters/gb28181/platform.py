"""The mall as a GB/T 28181 lower-level platform: register, keep alive, answer, report alarms.

``LowerPlatform`` is an async context manager. Entering opens the SIP transport and starts
one task that owns a ``TaskGroup`` of named tasks: the registration cycle (REGISTER with
Digest on the 401, keepalives, renewal before expiry with a fresh Call-ID, re-registration
after ``keepalive_max_missed`` unanswered keepalives or a refused one), the alarm sender
(``Notify/Alarm`` re-sent until answered) and the handlers of the upper platform's requests.
Leaving ends every stream with BYE, unregisters (``Expires: 0``) and closes the transport.

The link's state (online / offline with a reason) goes to ``hooks.on_link_state`` on every
change. A refused registration (403/404, the most common field failure: the upper platform's
ID differs from the one the police gave) names both IDs in the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections import Counter, deque
from datetime import UTC, datetime
from typing import Final, Self

from adapters.gb28181 import manscdp
from adapters.gb28181.alarms import AlarmSender
from adapters.gb28181.model import LinkState, PlatformConfig, PlatformHooks
from adapters.gb28181.queries import QueryHandler
from adapters.gb28181.signalling import Signalling, TransactionTimeout
from adapters.gb28181.streams import USER_AGENT, StreamManager
from adapters.gb28181.transport import Address, SipTransport, TcpTransport, UdpTransport
from adapters.sip.digest import build_authorization, parse_challenge
from adapters.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    build_request,
    build_response,
    format_hostport,
    header_params,
    new_branch,
    new_call_id,
    new_tag,
    parse_sip_uri,
    uri_of,
)

log = logging.getLogger(__name__)

RENEW_FRACTION: Final = 0.8
UNREGISTER_TIMEOUT_S: Final = 3.0


class RegistrationRefused(Exception):
    """The upper platform answered REGISTER with a final failure."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _seen_id(response: SipResponse) -> str | None:
    """An ID the upper platform used for itself: Contact user, else the challenge realm."""
    contact = response.get("Contact")
    if contact:
        with contextlib.suppress(ValueError):
            user, _, _ = parse_sip_uri(uri_of(contact))
            if user and user.isdigit():
                return user
    challenge = response.get("WWW-Authenticate")
    if challenge:
        with contextlib.suppress(SipParseError):
            return parse_challenge(challenge).realm
    return None


class LowerPlatform:
    """One registration with one upper platform (see the module docstring)."""

    def __init__(self, config: PlatformConfig, hooks: PlatformHooks) -> None:
        self.config = config
        self.hooks = hooks
        self.counters: Counter[str] = Counter()
        """Registrations, keepalives sent/missed, refused requests."""
        self.state = LinkState(False, "not started", datetime.now(UTC))
        self.streams = StreamManager(self, hooks)
        self.queries = QueryHandler(self)
        self.alarms = AlarmSender(self)
        self.signalling = Signalling(
            self._send, self._on_request, t1_s=config.t1_s, reliable=config.transport == "TCP"
        )
        self._transport: SipTransport | None = None
        self._server: Address = (config.server_host, config.server_port)
        self._runner: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._incoming: deque[tuple[SipRequest, Address]] = deque()
        self._incoming_ready = asyncio.Event()
        self._relink = asyncio.Event()
        self._registered = asyncio.Event()
        self._sn = random.randrange(1, 10000)
        self._contact_host = config.contact_host or ""
        self.server_id_seen: str | None = None
        """The last ID the upper platform used for itself (challenge realm or Contact)."""

    # --- identity -------------------------------------------------------------------------

    @property
    def contact_host(self) -> str:
        return self._contact_host

    @property
    def local_port(self) -> int:
        return self._transport.local[1] if self._transport is not None else 0

    async def ready(self) -> None:
        """Connect first over TCP: Via and Contact must name the connection's own port."""
        if self._transport is not None:
            await self._transport.ready()

    def via(self) -> str:
        name = self._transport.name if self._transport is not None else "UDP"
        hostport = format_hostport(self._contact_host, self.local_port)
        return f"SIP/2.0/{name} {hostport};rport;branch={new_branch()}"

    def contact(self, user: str) -> str:
        return f"<sip:{user}@{format_hostport(self._contact_host, self.local_port)}>"

    def next_sn(self) -> int:
        self._sn = self._sn % 999_999 + 1
        return self._sn

    @property
    def server_uri(self) -> str:
        return f"sip:{self.config.server_id}@{self.config.server_domain}"

    @property
    def registered(self) -> bool:
        return self._registered.is_set()

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        cfg = self.config
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(cfg.server_host, cfg.server_port, type=socket.SOCK_DGRAM)
        self._server = (str(infos[0][4][0]), int(infos[0][4][1]))
        if cfg.transport == "TCP":
            self._transport = TcpTransport(
                cfg.local_host,
                self._server,
                self.signalling.receive,
                on_disconnect=self._relink.set,
            )
        else:
            self._transport = await UdpTransport.open(
                cfg.local_host, cfg.local_port, self.signalling.receive
            )
        if not self._contact_host:
            self._contact_host = await self._route_host()
        self._runner = loop.create_task(self._run(), name=f"gb28181-{cfg.device_id}")
        return self

    async def _route_host(self) -> str:
        """The local address the OS routes to the upper platform from (for Via and SDP)."""
        if self.config.local_host not in ("0.0.0.0", "::", ""):
            return self.config.local_host
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(self._server)
            return str(probe.getsockname()[0])

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.streams.close()
            if self._runner is not None:
                self._runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._runner
                self._runner = None
            if self.registered:
                with contextlib.suppress(TransactionTimeout, RegistrationRefused, OSError):
                    async with asyncio.timeout(UNREGISTER_TIMEOUT_S):
                        await self._register(expires=0)
                        self.counters["unregistered"] += 1
        finally:
            if self._runner is not None:
                self._runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._runner
            if self._transport is not None:
                await self._transport.close()
            self._registered.clear()
            self._set_state(False, "stopped")

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            group.create_task(self._registration_cycle(), name="gb28181-register")
            group.create_task(self.alarms.run(), name="gb28181-alarms")
            group.create_task(self._dispatch(), name="gb28181-dispatch")

    async def wait_registered(self) -> None:
        await self._registered.wait()

    # --- link state -----------------------------------------------------------------------

    def _set_state(
        self, online: bool, reason: str, seen: str | None = None, expires: int | None = None
    ) -> None:
        if (online, reason) == (self.state.online, self.state.reason):
            return
        self.state = LinkState(online, reason, datetime.now(UTC), seen, expires)
        log.log(
            logging.INFO if online else logging.WARNING,
            "%s: link to %s %s: %s",
            self.config.device_id,
            self.config.server_id,
            "online" if online else "offline",
            reason,
        )
        if self.hooks.on_link_state is not None:
            self.hooks.on_link_state(self.state)

    # --- registration ---------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        cap = min(self.config.retry_max_s, self.config.retry_min_s * 2**attempt)
        return random.uniform(cap / 2, cap)

    async def _registration_cycle(self) -> None:
        attempt = 0
        while True:
            self._relink.clear()
            try:
                expires = await self._register(self.config.register_expires_s)
            except RegistrationRefused as exc:
                self._registered.clear()
                self._set_state(False, exc.reason, self.server_id_seen)
            except TransactionTimeout as exc:
                self._registered.clear()
                self._set_state(False, str(exc))
            except OSError as exc:
                self._registered.clear()
                self._set_state(False, f"cannot reach the upper platform: {exc}")
            except Exception as exc:  # supervisor: an unforeseen answer must not end the link
                log.exception("%s: registration failed", self.config.device_id)
                self._registered.clear()
                self._set_state(False, f"registration failed: {type(exc).__name__}")
            else:
                attempt = 0
                self._registered.set()
                self.counters["registered"] += 1
                self._set_state(True, "registered", self.server_id_seen, expires)
                lost = await self._keep_alive(expires)
                if lost is not None:
                    self._registered.clear()
                    self._set_state(False, lost)
                continue
            await asyncio.sleep(self._backoff(attempt))
            attempt += 1

    async def _register(self, expires: int) -> int:
        """One REGISTER cycle: a fresh Call-ID, Digest on the 401; returns the granted expiry."""
        cfg = self.config
        call_id = new_call_id(self._contact_host)
        from_ = f"<sip:{cfg.device_id}@{cfg.domain}>;tag={new_tag()}"
        to = f"<sip:{cfg.device_id}@{cfg.domain}>"
        uri = f"sip:{cfg.server_id}@{format_hostport(*self._server)}"
        authorization: list[tuple[str, str]] = []
        for cseq in (1, 2):
            await self.ready()
            request = build_request(
                "REGISTER",
                uri,
                via=self.via(),
                from_=from_,
                to=to,
                call_id=call_id,
                cseq=cseq,
                contact=self.contact(cfg.device_id),
                extra=[("Expires", str(expires)), *authorization],
                user_agent=USER_AGENT,
            )
            response = await self.signalling.request(request, self._server)
            seen = _seen_id(response) or self.server_id_seen
            self.server_id_seen = seen
            if 200 <= response.status < 300:
                return self._granted(response, expires)
            if response.status in (401, 407) and cseq == 1:
                header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
                if cfg.password is None:
                    raise RegistrationRefused(response.status, "challenged, but no password set")
                try:
                    challenge = parse_challenge(response.require(header))
                    value = build_authorization(
                        challenge, username=cfg.device_id, password=cfg.password,
                        method="REGISTER", uri=uri,
                    )  # fmt: skip
                except (SipParseError, ValueError) as exc:
                    raise RegistrationRefused(response.status, f"bad challenge: {exc}") from exc
                name = "Authorization" if response.status == 401 else "Proxy-Authorization"
                authorization = [(name, value)]
                continue
            raise RegistrationRefused(response.status, self._refusal(response, seen))
        raise RegistrationRefused(401, "password rejected (401 after Digest)")

    def _refusal(self, response: SipResponse, seen: str | None) -> str:
        cfg = self.config
        text = f"REGISTER refused: {response.status} {response.reason}".rstrip()
        if response.status in (401, 407):
            return "password rejected (401 after Digest)"
        if response.status in (403, 404):
            text += (
                f" — upper platform ID configured {cfg.server_id} (domain {cfg.server_domain}),"
                f" upper platform answered as {seen or 'unknown'}, our ID {cfg.device_id}"
            )
        return text

    @staticmethod
    def _granted(response: SipResponse, asked: int) -> int:
        value = response.get("Expires")
        if value is None and (contact := response.get("Contact")):
            value = header_params(contact).get("expires")
        if value is not None and value.strip().isdigit():
            return int(value)
        return asked

    async def _keep_alive(self, expires: int) -> str | None:
        """Send keepalives until it is time to renew (→ None) or the link is lost (→ why)."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + max(1.0, expires * RENEW_FRACTION)
        missed = 0
        while True:
            wait = min(cfg.keepalive_interval_s, renew_at - loop.time())
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._relink.wait()
            if self._relink.is_set():
                return "connection to the upper platform lost"
            if loop.time() >= renew_at:
                return None
            body = manscdp.encode(manscdp.keepalive(self.next_sn(), cfg.device_id), cfg.charset)
            self.counters["keepalive_sent"] += 1
            try:
                response = await self.send_message(body, timeout_s=cfg.keepalive_interval_s)
            except (TransactionTimeout, OSError):
                missed += 1
                self.counters["keepalive_missed"] += 1
                if missed >= cfg.keepalive_max_missed:
                    return f"{missed} keepalives unanswered"
                continue
            if response.status >= 300:
                return f"keepalive refused: {response.status} {response.reason}".rstrip()
            missed = 0

    # --- outgoing MESSAGE -----------------------------------------------------------------

    async def send_message(self, body: bytes, *, timeout_s: float | None = None) -> SipResponse:
        """A MANSCDP ``MESSAGE`` to the upper platform (outside any dialog)."""
        cfg = self.config
        await self.ready()
        request = build_request(
            "MESSAGE",
            self.server_uri,
            via=self.via(),
            from_=f"<sip:{cfg.device_id}@{cfg.domain}>;tag={new_tag()}",
            to=f"<{self.server_uri}>",
            call_id=new_call_id(self._contact_host),
            cseq=1,
            body=body,
            content_type=manscdp.CONTENT_TYPE,
            user_agent=USER_AGENT,
        )
        return await self.signalling.request(request, self._server, timeout_s=timeout_s)

    async def _send(self, data: bytes, addr: Address) -> None:
        if self._transport is None:
            raise OSError("transport closed")
        await self._transport.send(data, addr)

    # --- incoming requests ----------------------------------------------------------------

    def _on_request(self, request: SipRequest, addr: Address) -> None:
        self._incoming.append((request, addr))
        self._incoming_ready.set()

    async def _dispatch(self) -> None:
        while True:
            await self._incoming_ready.wait()
            self._incoming_ready.clear()
            while self._incoming:
                request, addr = self._incoming.popleft()
                assert self._group is not None
                self._group.create_task(
                    self._handle_safely(request, addr), name=f"gb28181-{request.method.lower()}"
                )

    async def _handle_safely(self, request: SipRequest, addr: Address) -> None:
        """Handle one request; a broken one is answered 400, never allowed to end the group."""
        try:
            await self._handle(request, addr)
        except SipParseError as exc:
            self.counters["bad_request"] += 1
            log.info("%s: bad %s from %s:%d: %s", self.config.device_id, request.method, *addr, exc)
            with contextlib.suppress(SipParseError, OSError):
                await self.respond(request, addr, 400, f"Bad Request ({exc})")
        except OSError as exc:
            log.info("%s: cannot answer %s: %s", self.config.device_id, request.method, exc)
        except Exception:  # supervisor: one request must never end the platform
            self.counters["handler_error"] += 1
            log.exception("%s: %s from %s:%d failed", self.config.device_id, request.method, *addr)
            if request.method != "ACK":
                with contextlib.suppress(Exception):
                    await self.respond(request, addr, 500, "Server Internal Error")

    async def respond(
        self, request: SipRequest, addr: Address, status: int, reason: str, body: bytes = b""
    ) -> None:
        response = build_response(
            request,
            status,
            reason,
            to_tag=new_tag() if status >= 200 else None,
            body=body,
            content_type=manscdp.CONTENT_TYPE if body else None,
            user_agent=USER_AGENT,
        )
        await self.signalling.respond(request, response, addr)

    async def _handle(self, request: SipRequest, addr: Address) -> None:
        method = request.method
        if addr[0] != self._server[0]:
            # Only the configured upper platform may query or control the mall.
            self.counters["foreign_request"] += 1
            if method != "ACK":
                await self.respond(request, addr, 403, "Forbidden")
            return
        if method == "MESSAGE":
            await self.queries.handle_message(request, addr)
        elif method == "INVITE":
            await self.streams.handle_invite(request, addr)
        elif method == "ACK":
            self.streams.handle_ack(request)
        elif method == "BYE":
            await self.streams.handle_bye(request, addr)
        elif method == "CANCEL":
            await self.streams.handle_cancel(request, addr)
        elif method == "SUBSCRIBE":
            await self.alarms.handle_subscribe(request, addr)
        elif method == "OPTIONS":
            await self.respond(request, addr, 200, "OK")
        else:
            self.counters["unsupported_method"] += 1
            await self.respond(request, addr, 501, "Not Implemented")
