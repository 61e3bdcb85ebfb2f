"""What the rest of the hub may read of the police link: its state and the outbox backlog.

Services that report on the link (health, compliance, readiness, metrics) take a
:class:`LinkStatus`, not the link itself, so none of them can publish or reconnect.
"""

from __future__ import annotations

from typing import Protocol

from hub.police.link import LinkState


class LinkStatus(Protocol):
    @property
    def state(self) -> LinkState: ...

    async def outbox_stats(self) -> tuple[int, float | None]:
        """Pending messages and the age of the oldest, in seconds."""
        ...
