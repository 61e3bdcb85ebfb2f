"""ONVIF Events (PullPoint) of a simulated camera, and the events it raises."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import xml.etree.ElementTree as ET
from datetime import timedelta

from aiohttp import web

from simulators.camera.base import CameraBase
from simulators.camera.model import (
    EVENT_TYPES,
    SUBSCRIPTION_PATH,
    Message,
    SoapFault,
    Subscription,
)
from simulators.onvif_soap import (
    TNS1,
    TOPIC_DIALECT,
    SoapRequest,
    child_text,
    parse_duration,
    parse_termination,
    q,
    sub,
)

log = logging.getLogger(__name__)


class EventServices(CameraBase):
    """ONVIF Events: PullPoint subscriptions fed by ``emit``."""

    def drop_subscriptions(self) -> None:
        """Forget every subscription, as a camera does on reboot; pending pulls get a fault."""
        for subscription in self._subs.values():
            subscription.dropped = True
            subscription.wakeup.set()
        self._subs.clear()

    def emit(self, kind: str, active: bool, *, source: str | None = None) -> None:
        """Raise one event (a property change) on every live subscription."""
        event_type = EVENT_TYPES[kind]
        source_items = event_type.source_items
        if source is not None:
            source_items = ((source_items[0][0], source), *source_items[1:])
        self._properties[(event_type.topic, source_items[0][1])] = active
        message = Message(
            event_type.topic,
            source_items,
            (event_type.data_item, "true" if active else "false"),
            self.now(),
            "Changed",
        )
        for subscription in self._subs.values():
            subscription.queue.append(message)
            subscription.wakeup.set()

    def burst(self, kind: str, count: int, *, source: str | None = None) -> None:
        """``count`` on/off pairs of one event in quick succession (ends "off")."""
        for _ in range(count):
            self.emit(kind, True, source=source)
            self.emit(kind, False, source=source)

    # --- Events --------------------------------------------------------------------------

    async def _get_event_properties(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        out = ET.Element(q("tev", "GetEventPropertiesResponse"))
        sub(
            out, "tev:TopicNamespaceLocation", "http://www.onvif.org/onvif/ver10/topics/topicns.xml"
        )
        sub(out, "wsnt:FixedTopicSet", "true")
        topic_set = sub(out, "wstop:TopicSet")
        for event_type in EVENT_TYPES.values():
            parent = topic_set
            parts = event_type.topic.split(":", 1)[1].split("/")
            for i, part in enumerate(parts):
                existing = parent.find(f"{{{TNS1}}}{part}")
                if existing is None:
                    existing = ET.SubElement(parent, f"{{{TNS1}}}{part}")
                    if i == len(parts) - 1:
                        existing.set(q("wstop", "topic"), "true")
                parent = existing
        sub(out, "wsnt:TopicExpressionDialect", TOPIC_DIALECT)
        sub(
            out,
            "wsnt:TopicExpressionDialect",
            "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete",
        )
        sub(
            out,
            "tev:MessageContentFilterDialect",
            "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter",
        )
        sub(
            out,
            "tev:MessageContentSchemaLocation",
            "http://www.onvif.org/onvif/ver10/schema/onvif.xsd",
        )
        return out

    def _initialised_messages(self) -> list[Message]:
        now = self.now()
        messages = []
        for (topic, source), active in self._properties.items():
            event_type = next(e for e in EVENT_TYPES.values() if e.topic == topic)
            items = ((event_type.source_items[0][0], source), *event_type.source_items[1:])
            value = "true" if active else "false"
            messages.append(
                Message(topic, items, (event_type.data_item, value), now, "Initialized")
            )
        return messages

    async def _create_pull_point_subscription(
        self, soap: SoapRequest, request: web.Request
    ) -> ET.Element:
        if "subscription_loss" in self.faults:
            raise SoapFault("Receiver", "ter:Action", "event service unavailable")
        now = self.now()
        try:
            termination = parse_termination(
                child_text(soap.operation, "InitialTerminationTime"), now, timedelta(minutes=10)
            )
        except ValueError as exc:
            raise SoapFault("Sender", "ter:InvalidArgVal", str(exc)) from exc
        sid = secrets.token_hex(8)
        subscription = Subscription(sid, termination)
        # Like real cameras, a new subscription first reports the current state of every
        # property, so a client can resynchronise after losing its previous subscription.
        subscription.queue.extend(self._initialised_messages())
        self._subs[sid] = subscription
        self.subscriptions_created += 1
        out = ET.Element(q("tev", "CreatePullPointSubscriptionResponse"))
        reference = sub(out, "tev:SubscriptionReference")
        sub(reference, "wsa:Address", f"http://{self._host(request)}{SUBSCRIPTION_PATH}{sid}")
        sub(out, "wsnt:CurrentTime", self._time(now))
        sub(out, "wsnt:TerminationTime", self._time(termination))
        return out

    def _subscription(self, request: web.Request) -> Subscription:
        sid = (
            request.path.removeprefix(SUBSCRIPTION_PATH)
            if request.path.startswith(SUBSCRIPTION_PATH)
            else ""
        )
        subscription = self._subs.get(sid)
        if subscription is None:
            raise SoapFault("Sender", "ter:InvalidArgVal", "no such subscription")
        if subscription.termination < self.now():
            del self._subs[sid]
            raise SoapFault("Sender", "ter:InvalidArgVal", "subscription expired")
        return subscription

    async def _pull_messages(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        subscription = self._subscription(request)
        subscription.pulls += 1
        try:
            timeout = parse_duration(child_text(soap.operation, "Timeout") or "PT0S")
            limit = int(child_text(soap.operation, "MessageLimit") or "1")
        except ValueError as exc:
            raise SoapFault("Sender", "ter:InvalidArgVal", str(exc)) from exc
        wait_s = min(timeout.total_seconds(), self.config.max_pull_timeout_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not subscription.queue and not subscription.dropped and not self._closing:
            subscription.wakeup.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await subscription.wakeup.wait()
        if subscription.dropped:
            raise SoapFault("Sender", "ter:InvalidArgVal", "subscription no longer exists")
        messages = [
            subscription.queue.popleft() for _ in range(min(limit, len(subscription.queue)))
        ]
        now = self.now()
        out = ET.Element(q("tev", "PullMessagesResponse"))
        sub(out, "tev:CurrentTime", self._time(now))
        sub(out, "tev:TerminationTime", self._time(subscription.termination))
        suffix = "//." if "topic_suffix" in self.faults else ""
        for message in messages:
            holder = sub(out, "wsnt:NotificationMessage")
            topic = sub(holder, "wsnt:Topic", message.topic + suffix, Dialect=TOPIC_DIALECT)
            # The topic is a QName path in text: declare its prefix where it is used.
            topic.set("xmlns:tns1", TNS1)
            wrapper = sub(holder, "wsnt:Message")
            body = sub(
                wrapper,
                "tt:Message",
                UtcTime=self._time(message.at),
                PropertyOperation=message.operation,
            )
            source = sub(body, "tt:Source")
            for name, value in message.source:
                sub(source, "tt:SimpleItem", Name=name, Value=value)
            data = sub(body, "tt:Data")
            sub(data, "tt:SimpleItem", Name=message.data[0], Value=message.data[1])
        return out

    async def _renew(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        subscription = self._subscription(request)
        now = self.now()
        try:
            subscription.termination = parse_termination(
                child_text(soap.operation, "TerminationTime"), now, timedelta(minutes=10)
            )
        except ValueError as exc:
            raise SoapFault("Sender", "ter:InvalidArgVal", str(exc)) from exc
        subscription.renewals += 1
        out = ET.Element(q("wsnt", "RenewResponse"))
        sub(out, "wsnt:TerminationTime", self._time(subscription.termination))
        sub(out, "wsnt:CurrentTime", self._time(now))
        return out

    async def _unsubscribe(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        subscription = self._subscription(request)
        subscription.dropped = True
        subscription.wakeup.set()
        del self._subs[subscription.sid]
        return ET.Element(q("wsnt", "UnsubscribeResponse"))

    async def _set_synchronization_point(
        self, soap: SoapRequest, request: web.Request
    ) -> ET.Element:
        subscription = self._subscription(request)
        subscription.queue.extend(self._initialised_messages())
        subscription.wakeup.set()
        return ET.Element(q("tev", "SetSynchronizationPointResponse"))
