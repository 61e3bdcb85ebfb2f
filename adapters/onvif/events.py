"""ONVIF events: topic registry, message parsers and the PullPoint subscription manager.

The pure part (``normalise_topic``, ``TOPIC_RULES``, ``parse_message``) turns one ONVIF
notification into a classified event; ``PullPointSubscriber`` keeps a PullPoint subscription
alive on one camera (create, long-poll, renew at ~80 % of its lifetime, recreate with jittered
backoff after loss) and hands every event to the hub's ``IngestFn``.

Start the subscriber last, once the camera is connected and probed: some cameras slow down
after a subscription is created.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, Self

from adapters.device_event import DeviceEvent, IngestFn, SourceValue
from adapters.errors import AdapterError, NotSupported
from adapters.onvif.driver import PULLPOINT_PORT, OnvifCamera

log = logging.getLogger(__name__)

# --- topics and parsers (pure) --------------------------------------------------------------


def normalise_topic(topic: str) -> str:
    """Canonical topic: no namespace prefixes, no empty or ``.`` segments.

    Cameras differ in how they spell the same topic: ``tns1:RuleEngine/CellMotionDetector/
    Motion``, the same with a trailing ``/`` or ``//.``, or with a prefix on every segment.
    """
    segments = []
    for raw in topic.strip().split("/"):
        segment = raw.strip()
        if not segment or segment == ".":
            continue
        segments.append(segment.rpartition(":")[2])
    return "/".join(segments)


@dataclass(frozen=True, slots=True)
class TopicRule:
    """How one topic becomes a hub event: its kind and the data item holding the state."""

    kind: str
    state_items: tuple[str, ...]


TOPIC_RULES: Final[Mapping[str, TopicRule]] = {
    "RuleEngine/CellMotionDetector/Motion": TopicRule("info.motion", ("IsMotion",)),
    "VideoSource/MotionAlarm": TopicRule("info.motion", ("State",)),
    "RuleEngine/TamperDetector/Tamper": TopicRule("alarm.tamper", ("IsTamper",)),
    "VideoSource/GlobalSceneChange/*": TopicRule("alarm.tamper", ("State",)),
    "VideoSource/ImageTooDark/*": TopicRule("fault.video_quality", ("State",)),
    "VideoSource/ImageTooBright/*": TopicRule("fault.video_quality", ("State",)),
    "VideoSource/ImageTooBlurry/*": TopicRule("fault.video_quality", ("State",)),
    "VideoSource/SignalLoss": TopicRule("fault.video_loss", ("State",)),
    "Device/Trigger/DigitalInput": TopicRule("alarm.digital_input", ("LogicalState", "State")),
    "Device/HardwareFailure/StorageFailure": TopicRule("fault.storage", ("Failed", "State")),
}
"""Normalised topic → rule. A key ending in ``/*`` matches the topic itself and below it."""

_TOKEN_ITEMS: Final = (
    "VideoSourceConfigurationToken",
    "VideoSourceToken",
    "Source",
    "InputToken",
    "RelayToken",
    "Token",
)
_TRUE: Final = frozenset({"true", "1", "active", "on", "yes"})
_FALSE: Final = frozenset({"false", "0", "inactive", "off", "no"})


def find_rule(topic: str, rules: Mapping[str, TopicRule] = TOPIC_RULES) -> TopicRule | None:
    """The rule for a normalised topic, exact match first, then ``/*`` prefixes."""
    rule = rules.get(topic)
    if rule is not None:
        return rule
    parts = topic.split("/")
    for end in range(len(parts), 0, -1):
        rule = rules.get("/".join(parts[:end]) + "/*")
        if rule is not None:
            return rule
    return None


@dataclass(frozen=True, slots=True)
class OnvifMessage:
    """One notification, reduced to plain values."""

    topic: str
    utc_time: datetime | None
    property_operation: str | None
    source: Mapping[str, str]
    data: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    kind: str
    topic: str
    """Normalised topic."""
    active: bool
    token: str | None
    state_item: str


def parse_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def parse_message(
    message: OnvifMessage, rules: Mapping[str, TopicRule] = TOPIC_RULES
) -> ParsedEvent | None:
    """Classify a notification; None when the topic is unknown or carries no readable state."""
    topic = normalise_topic(message.topic)
    rule = find_rule(topic, rules)
    if rule is None:
        return None
    for item in rule.state_items:
        active = parse_bool(message.data.get(item))
        if active is not None:
            break
    else:
        return None
    token = next((message.source[n] for n in _TOKEN_ITEMS if n in message.source), None)
    if token is None and message.source:
        token = next(iter(message.source.values()))
    return ParsedEvent(rule.kind, topic, active, token, item)


def _simple_items(container: Any) -> dict[str, str]:
    items: dict[str, str] = {}
    if container is None:
        return items
    if hasattr(container, "iter"):  # an XML element the library left unparsed
        for node in container.iter():
            if str(node.tag).endswith("SimpleItem") and node.get("Name") is not None:
                items[str(node.get("Name"))] = str(node.get("Value", ""))
        return items
    for item in getattr(container, "SimpleItem", None) or []:
        name = getattr(item, "Name", None)
        if name is not None:
            items[str(name)] = str(getattr(item, "Value", "") or "")
    return items


def _as_utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        # Some firmware omits the zone designator; ONVIF event times are UTC.
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return _as_utc(datetime.fromisoformat(value.strip()))
    return None


def message_from_notification(notification: Any) -> OnvifMessage:
    """Reduce one ``wsnt:NotificationMessage`` (as the library parsed it) to plain values."""
    topic_holder = getattr(notification, "Topic", None)
    topic = getattr(topic_holder, "_value_1", topic_holder)
    wrapper = getattr(notification, "Message", None)
    body: Any = getattr(wrapper, "_value_1", wrapper)
    if hasattr(body, "iter") and not hasattr(body, "Data"):
        # Unparsed tt:Message element: read it directly.
        source_el = next((n for n in body.iter() if str(n.tag).endswith("}Source")), None)
        data_el = next((n for n in body.iter() if str(n.tag).endswith("}Data")), None)
        return OnvifMessage(
            topic=str(topic or ""),
            utc_time=_as_utc(body.get("UtcTime")),
            property_operation=body.get("PropertyOperation"),
            source=_simple_items(source_el),
            data=_simple_items(data_el),
        )
    operation = getattr(body, "PropertyOperation", None)
    return OnvifMessage(
        topic=str(topic or ""),
        utc_time=_as_utc(getattr(body, "UtcTime", None)),
        property_operation=None if operation is None else str(operation),
        source=_simple_items(getattr(body, "Source", None)),
        data=_simple_items(getattr(body, "Data", None)),
    )


# --- subscription health --------------------------------------------------------------------


class SubscriptionHealth(enum.StrEnum):
    STARTING = "starting"
    OK = "ok"
    LOST = "lost"
    """The subscription failed; waiting (with backoff) before recreating it."""
    RETRYING = "retrying"
    """Creating a new subscription after a loss."""
    STOPPED = "stopped"
    UNSUPPORTED = "unsupported"
    """The camera has no Events service (or no PullPoint): a finding once, never retried."""


@dataclass(frozen=True, slots=True)
class SubscriptionStatus:
    """Health of one camera's event subscription, for the health system's findings."""

    device_id: str
    health: SubscriptionHealth
    since: datetime
    last_error: str | None = None
    last_error_type: str | None = None
    loss_count: int = 0
    recreate_count: int = 0
    """Subscriptions created after the first one (each follows a loss)."""
    renew_count: int = 0
    events_ingested: int = 0
    unknown_topics: Mapping[str, int] = field(default_factory=dict)
    unreadable_messages: int = 0


StatusCallback = Callable[[SubscriptionStatus], None]


@dataclass(slots=True)
class _Subscription:
    address: str
    lifetime: timedelta
    renew_at: float
    absolute_times: bool


class PullPointSubscriber:
    """Keeps one PullPoint subscription alive on a connected camera and ingests its events.

    ``async with PullPointSubscriber(camera, ingest):`` starts a task (in its own TaskGroup)
    that runs until the context exits; the subscription is unsubscribed on exit.
    """

    def __init__(
        self,
        camera: OnvifCamera,
        ingest: IngestFn,
        *,
        lifetime_s: float = 600.0,
        pull_timeout_s: float = 30.0,
        message_limit: int = 100,
        backoff_initial_s: float = 2.0,
        backoff_max_s: float = 120.0,
        renew_fraction: float = 0.8,
        on_status: StatusCallback | None = None,
        rules: Mapping[str, TopicRule] = TOPIC_RULES,
    ) -> None:
        self.camera = camera
        self.device_id = camera.device_id
        self._ingest = ingest
        self.lifetime = timedelta(seconds=lifetime_s)
        self.pull_timeout_s = pull_timeout_s
        self.message_limit = message_limit
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.renew_fraction = renew_fraction
        self._on_status = on_status
        self._rules = rules
        self._status = SubscriptionStatus(
            self.device_id, SubscriptionHealth.STARTING, datetime.now(UTC)
        )
        self._unknown: Counter[str] = Counter()
        self._active: dict[tuple[str, str, str | None], ParsedEvent] = {}
        self._pending: deque[DeviceEvent] = deque()
        self._subscription: _Subscription | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._task: asyncio.Task[None] | None = None
        self._created = 0
        self._status_changed = asyncio.Event()

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = contextlib.AsyncExitStack()
        group = await stack.enter_async_context(asyncio.TaskGroup())
        self._task = group.create_task(self._run(), name=f"onvif-events:{self.device_id}")
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = self._task = None
        await self._unsubscribe()
        self._set_status(SubscriptionHealth.STOPPED)

    @property
    def status(self) -> SubscriptionStatus:
        return self._status

    @property
    def active_states(self) -> list[ParsedEvent]:
        """Sources currently "on" (motion, tamper, input ...) as last reported."""
        return list(self._active.values())

    async def wait_for_status(
        self, predicate: Callable[[SubscriptionStatus], bool]
    ) -> SubscriptionStatus:
        """Wait until the status satisfies ``predicate`` (callers bound it with a timeout)."""
        while True:
            changed = self._status_changed
            if predicate(self._status):
                return self._status
            await changed.wait()

    def _set_status(self, health: SubscriptionHealth | None = None, **changes: Any) -> None:
        now = datetime.now(UTC)
        if health is not None and health != self._status.health:
            changes.update(health=health, since=now)
        changes["unknown_topics"] = dict(self._unknown)
        self._status = replace(self._status, **changes)
        if self._on_status is not None:
            self._on_status(self._status)
        # Wake every waiter of this generation; later waiters wait on the fresh event.
        self._status_changed.set()
        self._status_changed = asyncio.Event()

    # --- main loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self.backoff_initial_s
        while True:
            try:
                await self._subscribe()
                backoff = self.backoff_initial_s
                await self._pull_loop()
            except AdapterError as exc:
                if isinstance(exc, NotSupported) and not self._created:
                    # A service the camera never had does not come back by retrying: say so
                    # once and stop, rather than a subscription "lost" every two minutes.
                    # (One that worked before and then fails is a loss, retried below.)
                    log.warning("%s: no event subscription: %s", self.device_id, exc.message)
                    self._set_status(
                        SubscriptionHealth.UNSUPPORTED,
                        last_error=exc.message,
                        last_error_type=type(exc).__name__,
                    )
                    return
                await self._lost(exc)
                delay = random.uniform(0.5, 1.0) * backoff
                backoff = min(backoff * 2, self.backoff_max_s)
                log.warning(
                    "%s: event subscription failed (%s); retrying in %.1fs",
                    self.device_id,
                    exc.message,
                    delay,
                )
                loop = asyncio.get_running_loop()
                deadline = loop.time() + delay
                await self._deliver_pending(deadline)
                await asyncio.sleep(max(0.0, deadline - loop.time()))
                self._set_status(SubscriptionHealth.RETRYING)

    async def _subscribe(self) -> None:
        loop = asyncio.get_running_loop()
        answer = await self.camera.call(
            "events",
            "CreatePullPointSubscription",
            {"InitialTerminationTime": _duration(self.lifetime)},
        )
        try:
            address = str(answer.SubscriptionReference.Address._value_1)
        except AttributeError as exc:
            raise AdapterError(self.device_id, "subscription without an address") from exc
        self.camera.set_pullpoint_address(address)
        lifetime = _lifetime(answer)
        # Some firmware ignores relative termination times and answers with an already
        # (or almost) expired subscription; renew those with absolute times instead.
        absolute = lifetime is not None and lifetime < self.lifetime / 2
        subscription = _Subscription(address, self.lifetime, 0.0, absolute)
        self._subscription = subscription
        if absolute:
            await self._renew(subscription)
        else:
            subscription.renew_at = loop.time() + self._renew_delay(lifetime)
        if self._created:
            self._set_status(recreate_count=self._status.recreate_count + 1)
        self._created += 1
        self._set_status(SubscriptionHealth.OK)
        log.info("%s: event subscription created at %s", self.device_id, address)

    def _renew_delay(self, lifetime: timedelta | None) -> float:
        span = lifetime if lifetime is not None and lifetime.total_seconds() > 0 else self.lifetime
        return span.total_seconds() * self.renew_fraction

    async def _renew(self, subscription: _Subscription) -> None:
        loop = asyncio.get_running_loop()
        if subscription.absolute_times:
            offset = timedelta(seconds=self.camera.clock_offset_s or 0.0)
            until = datetime.now(UTC) + offset + self.lifetime
            termination = until.isoformat(timespec="seconds").replace("+00:00", "Z")
        else:
            termination = _duration(self.lifetime)
        answer = await self.camera.call(
            "subscription", "Renew", {"TerminationTime": termination}, port_type=PULLPOINT_PORT
        )
        subscription.renew_at = loop.time() + self._renew_delay(_lifetime(answer))
        self._set_status(renew_count=self._status.renew_count + 1)
        log.debug("%s: event subscription renewed", self.device_id)

    async def _pull_loop(self) -> None:
        loop = asyncio.get_running_loop()
        subscription = self._subscription
        assert subscription is not None
        while True:
            # Pull timeouts are whole seconds (some cameras reject fractions), so a renewal
            # due within the next second is done now rather than overshot.
            if subscription.renew_at - loop.time() < 1.0:
                await self._renew(subscription)
            if self._pending and not await self._deliver_pending(subscription.renew_at):
                continue
            wait_s = max(1, int(min(self.pull_timeout_s, subscription.renew_at - loop.time())))
            answer = await self.camera.call(
                "pullpoint",
                "PullMessages",
                {"Timeout": timedelta(seconds=wait_s), "MessageLimit": self.message_limit},
                timeout_s=wait_s + self.camera.timeout_s,
                port_type=PULLPOINT_PORT,
            )
            for notification in getattr(answer, "NotificationMessage", None) or []:
                self._pending.extend(self._convert(notification))

    # --- message handling ----------------------------------------------------------------

    def _convert(self, notification: Any) -> list[DeviceEvent]:
        try:
            message = message_from_notification(notification)
        except (AttributeError, TypeError, ValueError) as exc:
            log.warning("%s: unreadable event message: %s", self.device_id, exc)
            self._set_status(unreadable_messages=self._status.unreadable_messages + 1)
            return []
        parsed = parse_message(message, self._rules)
        if parsed is None:
            topic = normalise_topic(message.topic) or "(none)"
            if topic not in self._unknown:
                log.info(
                    "%s: ignoring unknown event topic %s (data %s)",
                    self.device_id,
                    message.topic,
                    dict(message.data),
                )
            self._unknown[topic] += 1
            self._set_status()
            return []
        key = (parsed.kind, parsed.topic, parsed.token)
        was_active = key in self._active
        if message.property_operation == "Initialized" and was_active == parsed.active:
            # A new subscription (or synchronisation point) restates every property; only a
            # state that differs from what the hub already knows is news.
            return []
        if parsed.active:
            self._active[key] = parsed
        else:
            self._active.pop(key, None)
        return [self._event(parsed, message.utc_time, message.property_operation, message)]

    def _event(
        self,
        parsed: ParsedEvent,
        occurred_at: datetime | None,
        operation: str | None,
        message: OnvifMessage | None,
        reason: str | None = None,
    ) -> DeviceEvent:
        when = occurred_at or datetime.now(UTC)
        state = "start" if parsed.active else "stop"
        source: dict[str, SourceValue] = {
            "protocol": "onvif",
            "topic": parsed.topic,
            "token": parsed.token,
            "property_op": operation,
            "item": parsed.state_item,
        }
        detail: dict[str, Any] = {}
        if message is not None:
            source["raw_topic"] = message.topic
            detail = {"source_items": dict(message.source), "data_items": dict(message.data)}
        if reason is not None:
            detail["reason"] = reason
        return DeviceEvent(
            device_id=self.device_id,
            kind=parsed.kind,
            occurred_at=when,
            source=source,
            state=state,
            dedupe_key=(
                f"onvif:{self.device_id}:{parsed.topic}:{parsed.token}:{state}:{when.isoformat()}"
            ),
            detail=detail,
        )

    async def _deliver_pending(self, deadline: float) -> bool:
        """Hand pending events to the hub in order; False if it failed before ``deadline``."""
        loop = asyncio.get_running_loop()
        retry_s = 0.5
        while self._pending:
            try:
                await self._ingest(self._pending[0])
            except Exception:
                # Pulled messages cannot be handed back to the camera, so keep them here
                # and retry; the subscription itself is kept alive by the caller's renewals.
                log.exception("%s: storing an event failed; will retry", self.device_id)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                await asyncio.sleep(min(retry_s, remaining))
                retry_s = min(retry_s * 2, 10.0)
                continue
            self._pending.popleft()
            self._set_status(events_ingested=self._status.events_ingested + 1)
        return True

    async def _lost(self, exc: AdapterError) -> None:
        """Record the loss and end every "on" state: nothing may stay stuck on."""
        self._subscription = None
        self._set_status(
            SubscriptionHealth.LOST,
            last_error=exc.message,
            last_error_type=type(exc).__name__,
            loss_count=self._status.loss_count + (1 if self._created else 0),
        )
        for parsed in list(self._active.values()):
            self._pending.append(
                self._event(
                    replace(parsed, active=False),
                    None,
                    "Reset",
                    None,
                    reason="event subscription lost; state unknown",
                )
            )
        self._active.clear()

    async def _unsubscribe(self) -> None:
        if self._subscription is None or not self.camera.connected:
            return
        self._subscription = None
        try:
            await self.camera.call(
                "subscription", "Unsubscribe", port_type=PULLPOINT_PORT, timeout_s=5.0
            )
        except AdapterError as exc:
            # The camera drops an abandoned subscription at its termination time anyway.
            log.debug("%s: unsubscribe failed: %s", self.device_id, exc.message)


def _duration(value: timedelta) -> str:
    return f"PT{int(value.total_seconds())}S"


def _lifetime(answer: Any) -> timedelta | None:
    current = _as_utc(getattr(answer, "CurrentTime", None))
    termination = _as_utc(getattr(answer, "TerminationTime", None))
    if current is None or termination is None:
        return None
    return termination - current


__all__ = [
    "TOPIC_RULES",
    "OnvifMessage",
    "ParsedEvent",
    "PullPointSubscriber",
    "StatusCallback",
    "SubscriptionHealth",
    "SubscriptionStatus",
    "TopicRule",
    "find_rule",
    "message_from_notification",
    "normalise_topic",
    "parse_bool",
    "parse_message",
]
