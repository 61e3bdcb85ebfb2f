"""Run ``mallhub`` with tracemalloc and compare its snapshots: where does memory grow?

``BENCH_TRACEMALLOC=DIR python -m bench soak`` starts the hub through this module: it traces
allocations (25 frames deep) and writes a snapshot to DIR every ``BENCH_TRACEMALLOC_EVERY``
seconds (default 60) and when the hub stops. Then::

    python -m bench.tracemem DIR            # growth from the 2nd snapshot to the last

prints the allocation sites that grew most, grouped by traceback. The first snapshot is
skipped as a baseline because the first minute is imports, WSDL parsing and caches warming.
This is a diagnostic, not a benchmark: tracing slows the hub several times.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import tracemalloc
from pathlib import Path

ENV_DIR = "BENCH_TRACEMALLOC"
ENV_EVERY = "BENCH_TRACEMALLOC_EVERY"


def _dump(folder: Path, n: int) -> None:
    tracemalloc.take_snapshot().dump(str(folder / f"snapshot-{n:04d}.bin"))


def run_hub(argv: list[str]) -> int:
    """Run ``hub.cli`` with ``argv`` under tracemalloc, dumping snapshots periodically."""
    folder = Path(os.environ[ENV_DIR])
    folder.mkdir(parents=True, exist_ok=True)
    every = float(os.environ.get(ENV_EVERY, "60"))
    tracemalloc.start(25)
    stop = threading.Event()
    count = [0]

    def loop() -> None:
        while not stop.wait(every):
            count[0] += 1
            _dump(folder, count[0])

    t = threading.Thread(target=loop, name="tracemalloc-dump", daemon=True)
    t.start()
    from hub.cli import main as hub_main

    try:
        return hub_main(argv)
    finally:
        stop.set()
        count[0] += 1
        _dump(folder, count[0])


def compare(folder: Path, top: int) -> None:
    snaps = sorted(folder.glob("snapshot-*.bin"))
    if len(snaps) < 3:
        raise SystemExit(f"{folder}: need at least 3 snapshots, found {len(snaps)}")
    base = tracemalloc.Snapshot.load(str(snaps[1]))
    last = tracemalloc.Snapshot.load(str(snaps[-1]))
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    base, last = base.filter_traces(filters), last.filter_traces(filters)
    total = sum(s.size for s in last.statistics("filename")) - sum(
        s.size for s in base.statistics("filename")
    )
    print(f"{snaps[1].name} → {snaps[-1].name}: traced memory {total / 2**20:+.2f} MiB")
    for stat in last.compare_to(base, "traceback")[:top]:
        if stat.size_diff <= 0:
            break
        print(f"\n{stat.size_diff / 1024:+.1f} KiB in {stat.count_diff:+d} blocks")
        for line in stat.traceback.format(limit=8, most_recent_first=True):
            print("   ", line)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.tracemem", description=__doc__)
    p.add_argument("folder", type=Path)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args()
    compare(args.folder, args.top)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--run-hub":
        raise SystemExit(run_hub(sys.argv[2:]))
    main()
