"""Housekeeping that keeps the store from growing without bound."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from types import TracebackType
from typing import Self

from hub.store.writer import PruneOutbox, StoreUnavailable, StoreWriter
from hub.tasks import stop_task

log = logging.getLogger(__name__)


class Maintenance:
    """Every ``every_s``: drop outbox rows delivered (and receipted) over ``keep`` ago.

    The events themselves stay: they are the record. Only their delivery bookkeeping goes.
    """

    def __init__(
        self, writer: StoreWriter, *, keep: timedelta = timedelta(days=7), every_s: float = 3600
    ) -> None:
        self.writer = writer
        self.keep = keep
        self.every_s = every_s
        self.pruned = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="maintenance")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_task(self._task)
        self._task = None

    async def run_once(self) -> int:
        n: int = await self.writer.submit(PruneOutbox(self.keep))
        self.pruned += n
        if n:
            log.info("pruned %d delivered outbox messages older than %s", n, self.keep)
        return n

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except StoreUnavailable as exc:
                log.warning("outbox pruning skipped: %s", exc)
            await asyncio.sleep(self.every_s)
