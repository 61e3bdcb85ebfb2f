"""Alarms upward: ``Notify/Alarm`` re-sent until answered, and alarm subscriptions.

``send`` only queues (it never blocks the hub). Each queued alarm is delivered by a task of
its own — up to ``IN_FLIGHT`` at once, so one slow answer never holds the others back — that
waits for the registration, sends the MESSAGE (retransmitted by the transaction layer) and,
when no 2xx comes, sends it again after a jittered back-off, until the upper platform answers.
A ``SUBSCRIBE`` with ``Alarm`` is accepted (200, with its expiry); while it lasts every alarm
is also sent as a ``NOTIFY`` inside that subscription's dialog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Protocol

from adapters.gb28181 import manscdp
from adapters.gb28181.manscdp import AlarmNotice, ManscdpError
from adapters.gb28181.model import PlatformConfig
from adapters.gb28181.signalling import Signalling, TransactionTimeout
from adapters.gb28181.transport import Address
from adapters.sip.message import (
    SipRequest,
    SipResponse,
    build_request,
    build_response,
    new_tag,
    tag_of,
    uri_of,
)

log = logging.getLogger(__name__)

IN_FLIGHT: Final = 8
MAX_SUBSCRIPTION_S: Final = 3600
USER_AGENT: Final = "mallhub-gb28181"


class _Platform(Protocol):
    """What the alarm sender uses of the platform."""

    config: PlatformConfig
    signalling: Signalling

    def next_sn(self) -> int: ...

    async def wait_registered(self) -> None: ...

    async def send_message(self, body: bytes, *, timeout_s: float | None = None) -> SipResponse: ...

    async def respond(
        self, request: SipRequest, addr: Address, status: int, reason: str, body: bytes = b""
    ) -> None: ...

    async def ready(self) -> None: ...

    def via(self) -> str: ...

    def contact(self, user: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alarm that reached the upper platform."""

    key: str
    channel_id: str
    sn: int
    attempts: int
    queued_at: datetime
    delivered_at: datetime


@dataclass(slots=True)
class _Subscription:
    request: SipRequest
    peer: Address
    to_tag: str
    expires_at: float
    event: str
    cseq: int = 0


@dataclass(slots=True)
class _Queued:
    notice: AlarmNotice
    queued_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class AlarmSender:
    def __init__(self, platform: _Platform) -> None:
        self.platform = platform
        self.delivered: deque[Delivery] = deque(maxlen=1000)
        """The most recent deliveries, oldest first."""
        self.counters: Counter[str] = Counter()
        self.responses: set[int] = set()
        """SNs the upper platform confirmed with ``Response/Alarm``."""
        self.subscriptions: dict[str, _Subscription] = {}
        self._queue: deque[_Queued] = deque()
        self._ready = asyncio.Event()
        self._slots = asyncio.Semaphore(IN_FLIGHT)
        self._active: set[str] = set()
        self._keys: set[str] = set()

    # --- the hub's side ---------------------------------------------------------------------

    def send(self, notice: AlarmNotice) -> None:
        """Queue an alarm; a second call with the same ``key`` while it is pending is ignored."""
        if notice.key in self._keys:
            return
        self._keys.add(notice.key)
        self._queue.append(_Queued(notice))
        self._active.add(notice.channel_id)
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._keys)

    def answered(self, sn: int) -> None:
        self.responses.add(sn)
        while len(self.responses) > 10000:
            self.responses.pop()

    def alarming(self, channel_id: str) -> bool:
        return channel_id in self._active

    def reset(self, channel_id: str | None) -> None:
        """ResetAlarm: the channel (or, without one, every channel) is no longer alarming."""
        if channel_id is None or channel_id == self.platform.config.device_id:
            self._active.clear()
        else:
            self._active.discard(channel_id)

    # --- delivery -------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            while True:
                await self._ready.wait()
                self._ready.clear()
                while self._queue:
                    item = self._queue.popleft()
                    group.create_task(self._deliver(item), name=f"gb28181-alarm-{item.notice.key}")

    async def _deliver(self, item: _Queued) -> None:
        platform = self.platform
        cfg = platform.config
        attempt = 0
        async with self._slots:
            while True:
                await platform.wait_registered()
                attempt += 1
                sn = platform.next_sn()
                body = manscdp.encode(manscdp.alarm_notify(sn, item.notice), cfg.charset)
                self.counters["sent"] += 1
                try:
                    response = await platform.send_message(body, timeout_s=16 * cfg.t1_s)
                except (TransactionTimeout, OSError) as exc:
                    self.counters["unanswered"] += 1
                    log.info("%s: alarm %s unanswered: %s", cfg.device_id, item.notice.key, exc)
                except Exception:  # supervisor: keep trying, never lose the alarm
                    self.counters["send_error"] += 1
                    log.exception("%s: alarm %s not sent", cfg.device_id, item.notice.key)
                else:
                    if response.status < 300:
                        break
                    self.counters[f"refused_{response.status}"] += 1
                cap = min(cfg.retry_max_s, cfg.t1_s * 2**attempt)
                await asyncio.sleep(random.uniform(cap / 2, cap))
        self._keys.discard(item.notice.key)
        self.delivered.append(
            Delivery(
                item.notice.key,
                item.notice.channel_id,
                sn,
                attempt,
                item.queued_at,
                datetime.now(UTC),
            )
        )
        await self._notify_subscribers(body)

    # --- subscriptions --------------------------------------------------------------------

    async def handle_subscribe(self, request: SipRequest, addr: Address) -> None:
        platform = self.platform
        cfg = platform.config
        if request.body.strip():
            try:
                parsed = manscdp.parse(request.body)
            except ManscdpError as exc:
                await platform.respond(request, addr, 400, f"Bad Request ({exc})")
                return
            if parsed.cmd_type != "Alarm":
                await platform.respond(request, addr, 489, "Bad Event")
                return
        expires_text = (request.get("Expires") or str(MAX_SUBSCRIPTION_S)).strip()
        expires = min(int(expires_text), MAX_SUBSCRIPTION_S) if expires_text.isdigit() else 0
        existing = self.subscriptions.get(request.call_id)
        to_tag = tag_of(request.get("To")) or (existing.to_tag if existing else new_tag())
        if expires == 0:
            self.subscriptions.pop(request.call_id, None)
        else:
            loop = asyncio.get_running_loop()
            self.subscriptions[request.call_id] = _Subscription(
                request, addr, to_tag, loop.time() + expires, request.get("Event") or "Alarm"
            )
        self.counters["subscribe"] += 1
        body = manscdp.encode(manscdp.result("Alarm", 0, cfg.device_id), cfg.charset)
        response = build_response(
            request,
            200,
            "OK",
            to_tag=to_tag,
            extra=[("Expires", str(expires)), ("Contact", platform.contact(cfg.device_id))],
            body=body,
            content_type=manscdp.CONTENT_TYPE,
            user_agent=USER_AGENT,
        )
        await platform.signalling.respond(request, response, addr)

    async def _notify_subscribers(self, body: bytes) -> None:
        platform = self.platform
        loop = asyncio.get_running_loop()
        for call_id, sub in list(self.subscriptions.items()):
            remaining = int(sub.expires_at - loop.time())
            if remaining <= 0:
                self.subscriptions.pop(call_id, None)
                continue
            sub.cseq += 1
            subscribe = sub.request
            with contextlib.suppress(OSError, TimeoutError):
                await platform.ready()
            contact = subscribe.get("Contact")
            notify = build_request(
                "NOTIFY",
                uri_of(contact) if contact else uri_of(subscribe.require("From")),
                via=platform.via(),
                from_=f"{subscribe.require('To').split(';tag=')[0]};tag={sub.to_tag}",
                to=subscribe.require("From"),
                call_id=call_id,
                cseq=sub.cseq,
                extra=[
                    ("Event", sub.event),
                    ("Subscription-State", f"active;expires={remaining}"),
                ],
                body=body,
                content_type=manscdp.CONTENT_TYPE,
                user_agent=USER_AGENT,
            )
            with contextlib.suppress(TransactionTimeout, OSError):
                response = await platform.signalling.request(
                    notify, sub.peer, timeout_s=8 * platform.config.t1_s
                )
                self.counters["notify_sent"] += 1
                if response.status == 481:
                    self.subscriptions.pop(call_id, None)
