"""How a long-running command (``mallhub run``, ``mallhub demo``) learns to stop: SIGTERM or
SIGINT, or the end of a given duration."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def stop_on_signals(*, hangup: bool = False) -> Iterator[asyncio.Event]:
    """An event set by SIGTERM/SIGINT (and SIGHUP with ``hangup``: a closed terminal),
    installed before anything starts, so a signal that arrives while the hub is still
    starting also leads to an orderly stop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT, *((signal.SIGHUP,) if hangup else ()))
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def wait_stop(stop: asyncio.Event, duration: float | None = None) -> None:
    """Until ``stop`` is set, or ``duration`` seconds have passed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(duration):
            await stop.wait()
