"""A ``gc.callbacks`` probe: every garbage collection's start, duration and generation.

The benchmarks run the hub as ``mallhub run`` in its own process; to see its collections
they start it through this module (``python -m bench.gcprobe --run-hub FILE run …``), which
installs the probe, runs ``hub.cli`` unchanged and writes the record to ``FILE`` when the
hub stops. Start times are ``time.perf_counter()`` (``CLOCK_MONOTONIC`` on Linux, the same
clock in every process), so the benchmark can keep only the collections that fell inside its
own measurement windows: :func:`longest_in`.

The callback costs a few microseconds per collection and allocates no tracked objects
(three ``array`` appends), so it neither triggers nor lengthens the pauses it measures.
"""

from __future__ import annotations

import gc
import sys
import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Pauses:
    """Collections in the order they happened: ``start[i]`` (perf_counter seconds),
    ``duration[i]`` (wall seconds), ``cpu[i]`` (the collecting thread's CPU seconds: less
    than the duration when the machine's other load took the core meanwhile) and
    ``generation[i]``."""

    start: array[float] = field(default_factory=lambda: array("d"))
    duration: array[float] = field(default_factory=lambda: array("d"))
    cpu: array[float] = field(default_factory=lambda: array("d"))
    generation: array[int] = field(default_factory=lambda: array("b"))

    def longest_in(self, windows: Iterable[tuple[float, float]]) -> tuple[float, int, int]:
        """(longest pause in wall seconds, its generation, collections counted) among the
        collections that started inside any of ``windows`` (perf_counter pairs)."""
        spans = sorted(windows)
        longest, gen, count = 0.0, -1, 0
        for t, d, g in zip(self.start, self.duration, self.generation, strict=True):
            if any(a <= t <= b for a, b in spans):
                count += 1
                if d > longest:
                    longest, gen = d, g
        return longest, gen, count

    def longest_cpu_in(self, windows: Iterable[tuple[float, float]]) -> float:
        """The most CPU one collection inside ``windows`` took (seconds)."""
        spans = sorted(windows)
        return max(
            (
                c
                for t, c in zip(self.start, self.cpu, strict=True)
                if any(a <= t <= b for a, b in spans)
            ),
            default=0.0,
        )

    def per_generation(self, windows: Iterable[tuple[float, float]]) -> dict[int, int]:
        """How many collections of each generation started inside ``windows``."""
        spans = list(windows)
        out = {0: 0, 1: 0, 2: 0}
        for t, g in zip(self.start, self.generation, strict=True):
            if any(a <= t <= b for a, b in spans):
                out[g] += 1
        return out

    def dump(self, path: Path) -> None:
        with path.open("wb") as f:
            array("q", [len(self.start)]).tofile(f)
            self.start.tofile(f)
            self.duration.tofile(f)
            self.cpu.tofile(f)
            self.generation.tofile(f)

    @classmethod
    def load(cls, path: Path) -> Pauses:
        p = cls()
        with path.open("rb") as f:
            n = array("q")
            n.fromfile(f, 1)
            p.start.fromfile(f, n[0])
            p.duration.fromfile(f, n[0])
            p.cpu.fromfile(f, n[0])
            p.generation.fromfile(f, n[0])
        return p


class Probe:
    """Records every collection of this process while installed."""

    def __init__(self) -> None:
        self.pauses = Pauses()
        self._began = 0.0
        self._began_cpu = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        cpu = time.thread_time()
        if phase == "start":
            self._began, self._began_cpu = now, cpu
            return
        p = self.pauses
        p.start.append(self._began)
        p.duration.append(now - self._began)
        p.cpu.append(cpu - self._began_cpu)
        p.generation.append(info["generation"])

    def install(self) -> Probe:
        gc.callbacks.append(self._callback)
        return self

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)


def run_hub(path: Path, argv: list[str]) -> int:
    """Run ``hub.cli`` with ``argv`` under the probe; the record goes to ``path`` at exit."""
    probe = Probe().install()
    from hub.cli import main as hub_main

    try:
        return hub_main(argv)
    finally:
        probe.remove()
        probe.pauses.dump(path)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--run-hub":
        raise SystemExit("usage: python -m bench.gcprobe --run-hub FILE HUB-ARGUMENTS…")
    raise SystemExit(run_hub(Path(sys.argv[2]), sys.argv[3:]))
