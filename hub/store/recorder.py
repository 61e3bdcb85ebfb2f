"""What the services write through: the one store writer, and the site's id and topic prefix
that an event's update message carries.

Every change goes through :class:`~hub.store.writer.StoreWriter` (one queue, group commit);
:class:`Recorder` adds the two writes most services make (an audit entry, a change to an
event with its update for the police) so none of them needs the site's config for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.writer import Audit, Operation, StoreWriter, UpdateEvent


@dataclass(frozen=True, slots=True)
class Recorder:
    writer: StoreWriter
    prefix: str
    """The site's topic prefix (``config.topic_prefix``)."""
    site_id: str

    @property
    def updates_topic(self) -> str:
        return f"{self.prefix}/updates"

    @property
    def sessions(self) -> Callable[[], AsyncSession]:
        """Read sessions on the store (writes go through :meth:`submit`)."""
        return self.writer.sessions

    async def submit(self, op: Operation) -> Any:
        return await self.writer.submit(op)

    async def audit(self, actor: str, action: str, subject: str, **detail: Any) -> None:
        await self.writer.submit(Audit(actor, action, subject, dict(detail)))

    async def update_event(
        self,
        event_id: str,
        changes: dict[str, Any],
        *,
        actor: str = "hub",
        audit_action: str | None = None,
    ) -> dict[str, Any]:
        """Record a change to an event and queue the update message for the police."""
        result: dict[str, Any] = await self.writer.submit(
            UpdateEvent(
                event_id,
                self.updates_topic,
                self.site_id,
                changes,
                actor=actor,
                audit_action=audit_action,
            )
        )
        return result
