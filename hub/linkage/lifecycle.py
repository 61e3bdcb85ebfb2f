"""Alarm lifecycle: new → acknowledged → closed, latching, and escalation.

- **Acknowledge** (who, when, via console / api / police): only from ``new``; a second
  acknowledgement changes nothing.
- **Close** with a disposition and an optional note, by a person. Alarms of the latching kinds
  (``alarms.latch_kinds``: panic, duress, hold-up by default) stay until a person resets them,
  as GB 50394 requires for emergency alarms; other alarms, once acknowledged, are closed by
  the hub when the device reports the restore.
- **Escalate** an alarm nobody acknowledged within ``alarms.escalate_after_s``: its priority
  rises one level (1 is the highest and the limit) and an ``escalation`` update re-notifies
  the police; repeated every ``escalate_after_s`` up to ``alarms.max_escalations`` times.

Every transition is checked and applied inside the store writer's transaction (so two
operators acknowledging at once produce one acknowledgement), written to the audit log, and
published as an update of the event.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from sqlalchemy import select

from hub.bus import Subscription
from hub.commands import CommandError
from hub.events import RESTORE_SUFFIX
from hub.store.models import Event, EventUpdate
from hub.store.writer import (
    StoredEvent,
    UnknownEvent,
    UpdateEvent,
    WriteContext,
    iso,
    now_utc,
)
from hub.tasks import stop_task

if TYPE_CHECKING:
    from hub.bus import EventBus
    from hub.config import SiteConfig
    from hub.store.recorder import Recorder

log = logging.getLogger(__name__)

VIAS: Final = ("console", "police", "api", "hub")
PERSON_VIAS: Final = ("console", "police", "api")


class TransitionRefused(ValueError):
    """The event cannot make this transition (``code`` says why)."""

    def __init__(self, event_id: str, code: str, message: str) -> None:
        super().__init__(f"{event_id}: {message}")
        self.event_id = event_id
        self.code = code
        self.message = message


class NoChange(ValueError):
    """The event already is where the transition leads (or past it): nothing to do.

    Raised rather than returned so the writer rolls back and nothing reaches the bus.
    """

    def __init__(self, event_id: str, state: str) -> None:
        super().__init__(f"{event_id}: already {state}")
        self.event_id = event_id
        self.state = state


@dataclass(slots=True)
class Transition(UpdateEvent):
    """Move an event to ``changes["state"]["state"]`` if it is in one of ``from_states``.

    Returns the update message. Raises ``NoChange`` when the event already is where the
    transition leads, ``TransitionRefused`` for a transition not allowed.
    """

    from_states: tuple[str, ...] = ("new",)
    latch_kinds: tuple[str, ...] = ()

    async def apply(self, ctx: WriteContext) -> dict[str, Any]:
        row = (
            await ctx.session.execute(select(Event).where(Event.event_id == self.event_id))
        ).scalar_one_or_none()
        if row is None:
            raise UnknownEvent(self.event_id)
        state = self.changes["state"]
        target = state["state"]
        if row.state == target or (target == "acknowledged" and row.state == "closed"):
            raise NoChange(self.event_id, row.state)
        if row.state not in self.from_states:
            raise TransitionRefused(
                self.event_id, "invalid_state", f"cannot go from {row.state} to {target}"
            )
        if (
            target == "closed"
            and state["via"] not in PERSON_VIAS
            and any(fnmatchcase(row.kind, p) for p in self.latch_kinds)
        ):
            raise TransitionRefused(
                self.event_id, "latched", f"{row.kind} latches until a person resets it"
            )
        return await UpdateEvent.apply(self, ctx)


@dataclass(slots=True)
class Escalate(UpdateEvent):
    """Raise an unacknowledged alarm's priority one level and say so in an update."""

    reason: str = ""

    async def apply(self, ctx: WriteContext) -> dict[str, Any]:
        row = (
            await ctx.session.execute(select(Event).where(Event.event_id == self.event_id))
        ).scalar_one_or_none()
        if row is None:
            raise UnknownEvent(self.event_id)
        if row.state != "new":
            raise NoChange(self.event_id, row.state)
        row.priority = max(1, row.priority - 1)
        escalation = self.changes["escalation"]
        escalation["priority"] = row.priority
        escalation["at"] = iso(ctx.now)
        return await UpdateEvent.apply(self, ctx)


class Lifecycle:
    """Acknowledge, close and escalate alarms. An async context manager (the hub enters it)."""

    def __init__(
        self,
        config: SiteConfig,
        recorder: Recorder,
        bus: EventBus,
        *,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.recorder = recorder
        self.bus = bus
        self.clock = clock
        alarms = config.alarms
        self.escalate_after = timedelta(seconds=alarms.escalate_after_s)
        self.max_escalations = alarms.max_escalations
        self.latch_kinds = tuple(alarms.latch_kinds)
        self.escalated: dict[str, int] = {}
        """Per alarm: how many times it escalated while this hub ran."""
        self._due: list[tuple[datetime, str, int]] = []
        self._wake = asyncio.Event()
        self._stack = AsyncExitStack()
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        try:
            self._sub = await self._stack.enter_async_context(self.bus.subscribe("lifecycle"))
            await self._load_open_alarms()
            self._task = asyncio.create_task(self._run(), name="lifecycle")
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        try:
            await stop_task(task)
        finally:
            await self._stack.aclose()

    def is_latching(self, kind: str) -> bool:
        return any(fnmatchcase(kind, p) for p in self.latch_kinds)

    # --- transitions ---------------------------------------------------------------------

    async def cmd_ack(self, body: dict[str, Any]) -> dict[str, Any]:
        """The police platform's ``ack`` command: acknowledge one event for an officer."""
        event_id = body.get("event_id")
        by = body.get("by")
        note = body.get("note")
        if not isinstance(event_id, str) or not event_id:
            raise CommandError("invalid", "event_id (string) is required")
        if not isinstance(by, str) or not by:
            raise CommandError("invalid", "by (string) is required")
        if note is not None and not isinstance(note, str):
            raise CommandError("invalid", "note must be a string")
        try:
            return await self.acknowledge(event_id, by=by[:128], via="police", note=note)
        except UnknownEvent as exc:
            raise CommandError("not_found", f"no event {event_id}") from exc

    async def acknowledge(
        self, event_id: str, *, by: str, via: str, note: str | None = None
    ) -> dict[str, Any]:
        """Acknowledge (idempotent for an event already past ``new``)."""
        if via not in VIAS:
            raise ValueError(f"via must be one of {VIAS}")
        state: dict[str, Any] = {
            "state": "acknowledged",
            "by": by[:128],
            "via": via,
            "at": iso(self.clock()),
        }
        if note:
            state["note"] = note[:2000]
        return await self._transition(
            event_id, state, ("new",), f"{via}:{by[:128]}", "event.acknowledged"
        )

    async def close(
        self,
        event_id: str,
        *,
        by: str,
        via: str,
        disposition: str,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Close with a disposition (e.g. ``false_alarm``, ``handled``, ``drill``).

        Latching alarms can be closed only by a person (console, api or police), never by
        the hub itself. Closing a ``new`` alarm acknowledges it in the same step.
        """
        if via not in VIAS:
            raise ValueError(f"via must be one of {VIAS}")
        if not disposition.strip():
            raise ValueError("a disposition is required to close an alarm")
        state: dict[str, Any] = {
            "state": "closed",
            "by": by[:128],
            "via": via,
            "at": iso(self.clock()),
            "disposition": disposition.strip()[:64],
        }
        if note:
            state["note"] = note[:2000]
        return await self._transition(
            event_id, state, ("new", "acknowledged"), f"{via}:{by[:128]}", "event.closed"
        )

    async def _transition(
        self,
        event_id: str,
        state: dict[str, Any],
        from_states: tuple[str, ...],
        actor: str,
        audit_action: str,
    ) -> dict[str, Any]:
        try:
            await self.recorder.submit(
                Transition(
                    event_id,
                    self.recorder.updates_topic,
                    self.recorder.site_id,
                    {"state": state},
                    actor=actor,
                    audit_action=audit_action,
                    from_states=from_states,
                    latch_kinds=self.latch_kinds,
                )
            )
        except NoChange as exc:
            return {"event_id": event_id, "state": exc.state, "changed": False}
        return {"event_id": event_id, "state": state["state"], "changed": True}

    # --- escalation and restores ---------------------------------------------------------

    async def _load_open_alarms(self) -> None:
        """After a restart, unacknowledged alarms keep escalating where they left off."""
        async with self.recorder.sessions() as s:
            rows = (
                await s.execute(
                    select(Event.event_id, Event.received_at).where(
                        Event.category == "alarm", Event.state == "new"
                    )
                )
            ).all()
            done: dict[str, int] = {}
            updates = await s.execute(
                select(EventUpdate.event_id, EventUpdate.message)
                .join(Event, Event.event_id == EventUpdate.event_id)
                .where(Event.category == "alarm", Event.state == "new")
            )
            for event_id, message in updates:
                if isinstance(message, dict) and "escalation" in message:
                    done[event_id] = done.get(event_id, 0) + 1
        now = self.clock()
        for event_id, received_at in rows:
            so_far = done.get(event_id, 0)
            if so_far >= self.max_escalations:
                continue
            # Levels that fell due while the hub was down are not replayed one by one: the
            # alarm goes straight to the level it should have reached by now.
            overdue = int((now - received_at) / self.escalate_after)
            level = max(so_far + 1, min(self.max_escalations, overdue))
            self._schedule(received_at + self.escalate_after * level, event_id, level)

    def _schedule(self, due: datetime, event_id: str, level: int) -> None:
        heapq.heappush(self._due, (due, event_id, level))
        self._wake.set()

    async def _run(self) -> None:
        assert self._sub is not None
        async with asyncio.TaskGroup() as group:
            group.create_task(self._escalator(), name="lifecycle-escalate")
            async for msg in self._sub:
                if msg.topic == "event" and isinstance(msg.body, StoredEvent):
                    await self._on_event(msg.body)

    async def _on_event(self, event: StoredEvent) -> None:
        if event.category == "alarm":
            self._schedule(event.received_at + self.escalate_after, event.event_id, 1)
        elif event.kind.endswith(RESTORE_SUFFIX) and event.device_id is not None:
            try:
                await self._close_on_restore(event)
            except Exception:
                log.exception("%s: closing on restore failed", event.device_id)

    async def _close_on_restore(self, restore: StoredEvent) -> None:
        base = restore.kind[: -len(RESTORE_SUFFIX)]
        if self.is_latching(base):
            return
        async with self.recorder.sessions() as s:
            open_ids = (
                await s.execute(
                    select(Event.event_id).where(
                        Event.device_id == restore.device_id,
                        Event.kind == base,
                        Event.state == "acknowledged",
                    )
                )
            ).scalars()
            ids = list(open_ids)
        for event_id in ids:
            await self.close(
                event_id,
                by="hub",
                via="hub",
                disposition="restored",
                note=f"device reported {restore.kind} (event {restore.event_id})",
            )

    async def _escalator(self) -> None:
        while True:
            self._wake.clear()
            if not self._due:
                await self._wake.wait()
                continue
            due, event_id, level = self._due[0]
            wait_s = (due - self.clock()).total_seconds()
            if wait_s > 0:
                try:
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            heapq.heappop(self._due)
            try:
                escalated = await self.escalate(event_id, level)
            except Exception:
                log.exception("%s: escalation failed", event_id)
                continue
            if escalated and level < self.max_escalations:
                self._schedule(due + self.escalate_after, event_id, level + 1)

    async def escalate(self, event_id: str, level: int) -> bool:
        """Escalate one alarm if it is still unacknowledged; True when it did."""
        after_s = self.escalate_after.total_seconds() * level
        reason = f"not acknowledged within {after_s:g} s"
        now = self.clock()
        try:
            await self.recorder.submit(
                Escalate(
                    event_id,
                    self.recorder.updates_topic,
                    self.recorder.site_id,
                    {
                        "escalation": {
                            "level": level,
                            "priority": 1,
                            "at": iso(now),
                            "reason": reason,
                        },
                        "linkage": [
                            {
                                "type": "renotify",
                                "target": "police",
                                "outcome": "ok",
                                "detail": f"escalation level {level}: {reason}",
                                "at": iso(now),
                                "rule": "escalation",
                            }
                        ],
                    },
                    actor="hub",
                    audit_action="event.escalated",
                    reason=reason,
                )
            )
        except NoChange:
            return False
        self.escalated[event_id] = level
        log.warning("%s: escalated to level %d (%s)", event_id, level, reason)
        return True
