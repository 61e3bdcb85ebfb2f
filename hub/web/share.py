"""Alarms first: while the alarm path has work, the console's reads take turns.

The console's answers run on the alarm process's event loop, whole. A few operators and a
Prometheus scraper asking back to back take most of the loop's turns during an alarm burst
and multiply the alarm acknowledgement's latency. :class:`ConsoleShare` bounds them:

- while ``busy()`` says the alarm path has work, the console's reads (``GET``/``HEAD``:
  pages, ``/api/v1``, ``/metrics``) are served one at a time, in arrival order, and after
  each one the next waits so that the console's time stays within ``share`` of wall time
  (a read that took ``d`` seconds is followed by ``d × (1/share − 1)`` without one);
- a read waits at most ``max_wait_s`` for the console's share: then it is served as soon as
  the read before it ends, without the pause, still one at a time (reads served back to
  back rather than all at once); and a read served longer than ``max_wait_s`` no longer holds
  the others back. So operators get answers during a long burst, each within ``max_wait_s``
  plus the reads ahead of it;
- while the alarm path is idle, or with ``share`` 1, nothing waits and nothing is added.

Not governed: ``/healthz`` and ``/readyz`` (supervisors), ``/static/`` (files), the live
stream (it stays open for hours and costs little per message), the signed snapshot links
the police platform fetches (``/snapshots/``: the alarm's evidence), and every state-changing
request (logging in, acknowledging, closing: an operator handling the alarms must not queue
behind the reads, and the login throttle's own waits must not hold the turn).

The time a read is charged is its wall time inside the middlewares: the loop may run alarms
while the read awaits the store, so the console's real share of the loop is at most
``share``. Writing the reply after the middlewares return, and parsing the request before,
are not counted. The decisions (:meth:`ConsoleShare.arrive`, :meth:`ConsoleShare.turn`,
:meth:`ConsoleShare.finish`) take the time as an argument; only :meth:`ConsoleShare.serve`
waits, on the event loop's timers.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

POLL_S = 0.05
"""A waiting read asks again at least this often (the alarm path may have gone idle)."""
EXEMPT_PREFIXES = ("/healthz", "/readyz", "/static/", "/api/v1/live", "/snapshots/")
GOVERNED_METHODS = frozenset({"GET", "HEAD"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def governed(method: str, path: str) -> bool:
    """Whether a request takes turns while the alarm path is busy."""
    return method in GOVERNED_METHODS and not path.startswith(EXEMPT_PREFIXES)


@dataclass(eq=False, slots=True)
class Ticket:
    """One console read, from its arrival until it is answered."""

    arrived: float
    started: float | None = None
    turn: bool = False
    """Whether it holds the one turn (it started while the alarm path was busy)."""
    wake: asyncio.Future[None] | None = None


class ConsoleShare:
    """The console's share of the event loop while the alarm path is busy (module doc)."""

    def __init__(
        self,
        share: float,
        busy: Callable[[], bool],
        *,
        max_wait_s: float = 2.0,
        clock: Callable[[], float] = time.perf_counter,
        on_wait: Callable[[float, bool], None] | None = None,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("the console's share must be > 0 and ≤ 1")
        if max_wait_s <= 0:
            raise ValueError("the longest wait must be > 0")
        self.share = share
        self.busy = busy
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.on_wait = on_wait
        """Called with (seconds waited, whether the wait ran out) for every read that waited."""
        self._waiting: deque[Ticket] = deque()
        self._holder: Ticket | None = None
        self._next_at = -math.inf
        self.running = 0
        """Governed reads being served now."""
        self.peak = 0
        """The most governed reads served at once since the last :meth:`reset_peak`."""
        self.delayed = 0
        self.delay_s = 0.0
        self.overdue = 0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def reset_peak(self) -> None:
        self.peak = self.running

    def limiting(self) -> bool:
        return self.share < 1 and self.busy()

    # --- the decisions: the time is an argument ---------------------------------------------

    def arrive(self, now: float) -> Ticket:
        ticket = Ticket(now)
        self._waiting.append(ticket)
        return ticket

    def turn(self, t: Ticket, now: float) -> float:
        """0 when ``t`` starts now (it has then started), else how long to wait at most before
        asking again (sooner when the turn is handed on)."""
        if t.started is not None:
            return 0.0
        if not self.limiting():
            self._start(t, now, overdue=False)
            return 0.0
        holder = self._holder
        if (
            holder is not None
            and holder.started is not None
            and now - holder.started >= self.max_wait_s
        ):
            holder = None  # served for too long: it no longer holds the others back
        first = holder is None and self._waiting[0] is t
        deadline = t.arrived + self.max_wait_s
        if first and (now >= self._next_at or now >= deadline):
            t.turn = True
            self._holder = t
            self._start(t, now, overdue=now >= deadline)
            return 0.0
        until = min(self._next_at, deadline) if first else math.inf
        return max(0.0, min(until, now + POLL_S) - now)

    def finish(self, t: Ticket, now: float) -> None:
        """``t`` is answered, failed, or was cancelled (waiting or running)."""
        if t.started is None:
            head = bool(self._waiting) and self._waiting[0] is t
            self._waiting.remove(t)
            if head:
                self._wake_first()
            return
        self.running -= 1
        if t.turn:
            t.turn = False
            if self._holder is not t:
                return  # it was served too long and another has the turn now
            self._holder = None
            spent = max(0.0, now - t.started)
            self._next_at = now + min(spent * (1 / self.share - 1), self.max_wait_s)
            self._wake_first()

    def _start(self, t: Ticket, now: float, *, overdue: bool) -> None:
        head = self._waiting[0] is t
        self._waiting.remove(t)
        if head and not t.turn:
            self._wake_first()  # the next one may take the turn
        t.started = now
        self.running += 1
        self.peak = max(self.peak, self.running)
        waited = now - t.arrived
        if waited > 0:
            self.delayed += 1
            self.delay_s += waited
            if overdue:
                self.overdue += 1
            if self.on_wait is not None:
                self.on_wait(waited, overdue)

    def _wake_first(self) -> None:
        if self._waiting:
            wake = self._waiting[0].wake
            if wake is not None and not wake.done():
                wake.set_result(None)

    # --- the waiting ------------------------------------------------------------------------

    async def serve(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer ``request`` with ``handler`` when its turn comes."""
        t = self.arrive(self.clock())
        try:
            wait = self.turn(t, t.arrived)
            if wait > 0:
                loop = asyncio.get_running_loop()
                while wait > 0:
                    wake = t.wake = loop.create_future()
                    timer = loop.call_later(wait, _wake, wake)
                    try:
                        await wake
                    finally:
                        timer.cancel()
                    wait = self.turn(t, self.clock())
            return await handler(request)
        finally:
            self.finish(t, self.clock())

    def middleware(self) -> Middleware:
        """The aiohttp middleware that governs the console's reads."""

        @web.middleware
        async def alarms_first(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.share >= 1 or not governed(request.method, request.path):
                return await handler(request)
            return await self.serve(request, handler)

        return alarms_first


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
