"""pysiaalarm's receiver as a process of its own: the peer ``bench siacompare`` measures
the hub against.

``python -m bench.siapeer --port P --accounts 1001,1002,… --gc-file FILE`` runs pysiaalarm's
asyncio TCP receiver (``SIAClient``, as Home Assistant's SIA integration runs it) with a
callback that only counts, until SIGTERM; it parses, checks and acknowledges every frame and
stores nothing. Its garbage collections are recorded like the hub's (``bench.gcprobe``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from pysiaalarm.account import SIAAccount
from pysiaalarm.aio.client import SIAClient
from pysiaalarm.event import SIAEvent

from bench.gcprobe import Probe


async def serve(port: int, accounts: list[str]) -> int:
    received = 0

    async def on_event(_event: SIAEvent) -> None:
        nonlocal received
        received += 1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # SIAClient's __new__ picks its TCP subclass (the way Home Assistant builds it), which
    # mypy cannot see: it only sees the abstract base.
    client = SIAClient(  # type: ignore[abstract]
        "127.0.0.1", port, [SIAAccount(a) for a in accounts], on_event
    )
    async with client:
        await stop.wait()
    return received


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.siapeer", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--accounts", required=True, help="comma-separated account numbers")
    p.add_argument("--gc-file", type=Path, required=True)
    args = p.parse_args()
    # pysiaalarm logs every rejected frame as a warning; the benchmark counts replies itself.
    logging.basicConfig(level=logging.ERROR)
    probe = Probe().install()
    try:
        asyncio.run(serve(args.port, args.accounts.split(",")))
    finally:
        probe.remove()
        probe.pauses.dump(args.gc_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
