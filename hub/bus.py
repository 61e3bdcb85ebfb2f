"""In-process fan-out of committed events and updates, with bounded queues.

The bus carries notifications only: the store is the truth. A slow subscriber loses the
oldest notifications (counted) rather than slowing the alarm path; it can re-read the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BusMessage:
    topic: Literal["event", "update", "device_state", "compliance", "link"]
    body: Any


@dataclass(slots=True)
class Subscription:
    name: str
    queue: asyncio.Queue[BusMessage]
    dropped: int = 0

    async def get(self) -> BusMessage:
        return await self.queue.get()

    def __aiter__(self) -> AsyncIterator[BusMessage]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[BusMessage]:
        while True:
            yield await self.queue.get()


@dataclass(slots=True)
class EventBus:
    subscribers: list[Subscription] = field(default_factory=list)

    def publish(self, topic: str, body: Any) -> None:
        msg = BusMessage(topic, body)  # type: ignore[arg-type]
        for sub in self.subscribers:
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
                if sub.dropped in (1, 100, 10000):
                    log.warning("bus subscriber %s is slow: %d dropped", sub.name, sub.dropped)
            sub.queue.put_nowait(msg)

    @asynccontextmanager
    async def subscribe(self, name: str, maxsize: int = 1000) -> AsyncIterator[Subscription]:
        sub = Subscription(name, asyncio.Queue(maxsize))
        self.subscribers.append(sub)
        try:
            yield sub
        finally:
            self.subscribers.remove(sub)
