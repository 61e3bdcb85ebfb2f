"""Login throttling that cannot lock anyone out and does not tell which user names exist.

See :class:`LoginGuard`; docs/api.md ("Logging in, and guessing passwords") states the rules
for API users.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Login throttling (see LoginGuard): wrong passwords for one account from one address
#: before that address is refused for that account, failures from one address (any names)
#: before the address is refused, and the window both count in.
MAX_FAILURES = 5
ADDRESS_FAILURES = 20
THROTTLE_WINDOW_S = 15 * 60
#: Failures on one account (from every address) after which each attempt on it waits, and
#: how long at most: slowed, never refused, so an admin at their own desk always gets in.
SLOW_AFTER = 10
SLOW_MAX_S = 4.0


def _window() -> deque[float]:
    return deque()


@dataclass(slots=True)
class LoginGuard:
    """Who may try a password now, and how long they wait first.

    * Per address: ADDRESS_FAILURES wrong passwords (any user names) from one client
      address within the window, and the address is refused (429) for any name.
    * Per account and address: MAX_FAILURES wrong passwords for one name from one address,
      and that address is refused for that name (429); the same name from other addresses
      still works, so nobody can lock an admin out of the monitoring room's own screens.
    * Per account: after SLOW_AFTER failures on one name from all addresses together, each
      attempt on that name waits (growing to SLOW_MAX_S) before the password is checked:
      a guessing botnet is slowed down, the real admin is only made to wait.

    Every rule is kept by name (case-folded) in memory, for names that exist and names that
    do not alike, and is checked before the store is asked: the answers and their timing do
    not tell which user names exist. A hub restart forgets the counts; the store keeps the
    audit trail of every failure.
    """

    address_limit: int = ADDRESS_FAILURES
    pair_limit: int = MAX_FAILURES
    slow_after: int = SLOW_AFTER
    slow_max_s: float = SLOW_MAX_S
    window_s: float = THROTTLE_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    _by_address: dict[str, deque[float]] = field(default_factory=dict)
    _by_pair: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _by_account: dict[str, deque[float]] = field(default_factory=dict)

    @staticmethod
    def _key(name: str) -> str:
        return name[:64].casefold()

    def _recent(self, table: dict[Any, deque[float]], key: Any) -> deque[float]:
        q = table.get(key)
        if q is None:
            return _window()
        cutoff = self.clock() - self.window_s
        while q and q[0] < cutoff:
            q.popleft()
        if not q:
            del table[key]
        return q

    def _wait(self, q: deque[float], limit: int) -> float | None:
        if len(q) < limit:
            return None
        return max(1.0, q[-limit] + self.window_s - self.clock())

    def retry_after(self, name: str, address: str) -> float | None:
        """Seconds until this address may try this name again, or None when it may now."""
        by_address = self._wait(self._recent(self._by_address, address), self.address_limit)
        pair = self._wait(self._recent(self._by_pair, (self._key(name), address)), self.pair_limit)
        waits = [w for w in (by_address, pair) if w is not None]
        return max(waits) if waits else None

    def delay(self, name: str) -> float:
        """Seconds to wait before checking a password for ``name`` (0 when not under attack)."""
        n = len(self._recent(self._by_account, self._key(name))) - self.slow_after
        if n < 0:
            return 0.0
        return min(self.slow_max_s, 0.25 * 2.0**n)

    def failed(self, name: str, address: str) -> None:
        now = self.clock()
        key = self._key(name)
        tables: tuple[tuple[dict[Any, deque[float]], Any], ...] = (
            (self._by_address, address),
            (self._by_pair, (key, address)),
            (self._by_account, key),
        )
        for table, k in tables:
            table.setdefault(k, _window()).append(now)
        if len(self._by_pair) > 100_000:  # a flood of names: keep memory bounded
            self._prune()

    def succeeded(self, name: str, address: str) -> None:
        self._by_pair.pop((self._key(name), address), None)

    def forget(self, name: str) -> None:
        """An admin unlocked the account: its counts start again from every address."""
        key = self._key(name)
        self._by_account.pop(key, None)
        for pair in [p for p in self._by_pair if p[0] == key]:
            del self._by_pair[pair]

    def _prune(self) -> None:
        tables: tuple[dict[Any, deque[float]], ...] = (
            self._by_address,
            self._by_pair,
            self._by_account,
        )
        for table in tables:
            for k in list(table):
                self._recent(table, k)
