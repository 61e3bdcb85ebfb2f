"""Which broker the police link tries next: one broker, or the nodes of a cluster in turn."""

from __future__ import annotations

import random


class BrokerRotation:
    """After a failure the next node is tried at once; only when every node of the list
    has failed in a row does the link back off (doubling up to ``max_delay_s``)."""

    def __init__(self, endpoints: list[tuple[str, int]], max_delay_s: float) -> None:
        self.endpoints = endpoints
        self.index = 0
        self.max_delay_s = max_delay_s
        self._delay = 0.5
        self._failed_in_row = 0

    @property
    def current(self) -> tuple[str, int]:
        return self.endpoints[self.index]

    def connected(self) -> None:
        self._delay = 0.5
        self._failed_in_row = 0

    def failed(self) -> float:
        """Move on after a failed or lost connection; returns the seconds to wait."""
        self._failed_in_row += 1
        self.index = (self.index + 1) % len(self.endpoints)
        if self._failed_in_row % len(self.endpoints):
            return 0.05
        wait = self._delay * random.uniform(0.5, 1.0)
        self._delay = min(self._delay * 2, self.max_delay_s)
        return wait
