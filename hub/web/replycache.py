"""Answers the console repeats, kept between requests so that a busy console costs the
alarm path (the same event loop) less, without answering anything different.

- ``/metrics``: the Prometheus text is rendered at most once per :data:`METRICS_MAX_AGE_S`
  (a scraper asks every 15 s; a burst of scrapes within a second gets one rendering).
- The devices list: kept, with its encoded reply, until the store commits anything that can
  change it (every commit except alarms and publication marks, which touch neither device
  states, probes, pictures nor test mode), until the earliest test mode in it ends, and at
  most :data:`DEVICES_MAX_AGE_S` (another process, such as the operator's CLI, may write to
  the store without this hub's writer).
- The compliance report: encoded once per result of the compliance service.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from hub.store.writer import MarkPublished, MarkReceipted, Operation, StoreEvent, StoreWriter

METRICS_MAX_AGE_S: Final = 1.0
DEVICES_MAX_AGE_S: Final = 2.0
_NO_DEVICE_CHANGE: Final = (StoreEvent, MarkPublished, MarkReceipted)


def encode(data: Any) -> bytes:
    """JSON as every API reply is encoded (UTF-8, Chinese kept readable)."""
    return json.dumps(data, ensure_ascii=False).encode()


@dataclass(slots=True)
class Devices:
    """One devices list as the store had it, with its encoded reply."""

    items: list[dict[str, Any]]
    counts: dict[str, int]
    body: bytes
    generation: int
    made: float
    until: datetime | None
    """When the earliest test mode in the list ends (its answer changes then)."""


@dataclass(slots=True)
class ReplyCache:
    clock: Callable[[], float] = time.monotonic
    generation: int = 0
    """Commits that may have changed the devices list, counted by the writer's listener."""
    _watching: StoreWriter | None = None
    _metrics: tuple[float, bytes] | None = None
    _devices: Devices | None = None
    _compliance: tuple[Any, bytes] | None = field(default=None)

    # --- /metrics ---------------------------------------------------------------------------

    def metrics(self, render: Callable[[], bytes]) -> bytes:
        now = self.clock()
        if self._metrics is not None and now - self._metrics[0] < METRICS_MAX_AGE_S:
            return self._metrics[1]
        body = render()
        self._metrics = (now, body)
        return body

    # --- the devices list -------------------------------------------------------------------

    def watch(self, writer: StoreWriter) -> None:
        """Count ``writer``'s commits from now on (once per writer)."""
        if self._watching is not writer:
            self._watching = writer
            self.generation += 1
            writer.add_listener(self._on_commit)

    def _on_commit(self, pairs: Sequence[tuple[Operation, Any]]) -> None:
        if not all(isinstance(op, _NO_DEVICE_CHANGE) for op, _ in pairs):
            self.generation += 1

    def devices(self, now: datetime) -> Devices | None:
        d = self._devices
        if d is None or d.generation != self.generation:
            return None
        if self.clock() - d.made >= DEVICES_MAX_AGE_S:
            return None
        if d.until is not None and now >= d.until:
            return None
        return d

    def keep_devices(self, items: list[dict[str, Any]], generation: int) -> Devices:
        """Keep ``items``, read from the store when the generation was ``generation``."""
        counts: dict[str, int] = {}
        ends: list[datetime] = []
        for d in items:
            counts[d["state"]] = counts.get(d["state"], 0) + 1
            if d["test_mode_until"] is not None:
                ends.append(datetime.fromisoformat(d["test_mode_until"].replace("Z", "+00:00")))
        body = encode({"items": items, "counts": counts})
        kept = Devices(items, counts, body, generation, self.clock(), min(ends, default=None))
        self._devices = kept
        return kept

    # --- compliance -------------------------------------------------------------------------

    def compliance(self, result: Any, report: Callable[[Any], Any]) -> bytes:
        """The encoded report of ``result``, made once per result object."""
        if self._compliance is not None and self._compliance[0] is result:
            return self._compliance[1]
        body = encode(report(result))
        self._compliance = (result, body)
        return body
