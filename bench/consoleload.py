"""A busy console, in a process of its own: ``bench busy`` starts it around an alarm burst.

``BENCH_CONSOLE_TOKEN=… python -m bench.consoleload URL CLIENTS`` runs ``CLIENTS`` loops,
each asking the console's API for the event list, the devices, the compliance status and
the metrics back to back, as operators' browsers and a Prometheus scraper would. It prints
``ready`` after the first answer and, when SIGTERM comes, ``answered failed seconds p50_ms
p99_ms`` (the answers' latency). A
process of its own so that its HTTP parsing does not slow the simulated panels.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import aiohttp

PATHS = (
    "/api/v1/events?limit=50",
    "/api/v1/devices",
    "/api/v1/compliance",
    "/metrics",
)


async def load(url: str, clients: int, token: str) -> tuple[int, int, float, list[float]]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    counts = [0, 0]
    headers = {"Authorization": f"Bearer {token}"}
    ready = asyncio.Event()
    took: list[float] = []

    async def client(session: aiohttp.ClientSession, first: int) -> None:
        i = first
        while not stop.is_set():
            path = PATHS[i % len(PATHS)]
            i += 1
            t = time.perf_counter()
            try:
                async with session.get(url + path, headers=headers) as resp:
                    await resp.read()
                    counts[0 if resp.status == 200 else 1] += 1
                    took.append(time.perf_counter() - t)
            except aiohttp.ClientError:
                counts[1] += 1
            if not ready.is_set():
                ready.set()
                print("ready", flush=True)

    async with aiohttp.ClientSession() as session:
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(client(session, i)) for i in range(clients)]
        await stop.wait()
        elapsed = time.perf_counter() - t0
        await asyncio.gather(*tasks, return_exceptions=True)
    return counts[0], counts[1], elapsed, took


def main() -> int:
    if len(sys.argv) != 3:
        raise SystemExit("usage: BENCH_CONSOLE_TOKEN=… python -m bench.consoleload URL CLIENTS")
    answered, failed, elapsed, took = asyncio.run(
        load(sys.argv[1], int(sys.argv[2]), os.environ["BENCH_CONSOLE_TOKEN"])
    )
    ms = sorted(x * 1e3 for x in took) or [0.0]
    p50, p99 = ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(answered, failed, f"{elapsed:.3f}", f"{p50:.1f}", f"{p99:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
