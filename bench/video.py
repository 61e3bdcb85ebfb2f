"""Video checks: time per 1920×1080 frame for the full set of checks.

Hub: ``VideoChecker.add`` (signal loss, black, frozen, blur, cover, dark, bright, colour
cast, noise, camera moved) on simulated 1920×1080 scenes, healthy and with each picture
fault, against a baseline learnt from the same scene.

Baseline in the same run: the least any check must do with a full frame — convert it to
grey and downscale it once (``cv2.cvtColor`` + ``cv2.resize``), timed on the same frames.
Goal: ≤ 10 ms median per frame.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import cv2

from adapters.onvif.video import VideoChecker, learn_baseline
from bench.common import percentile, print_machine, table, verdict
from simulators.scene import Scene

GOAL_MS = 10.0
FAULTS = ("", "black", "frozen", "blurred", "covered", "dark", "bright", "colour_cast", "moved")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=60, help="frames per scene variant (default 60)")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    print_machine()
    scene = Scene("bench", width=1920, height=1080, seed=1)
    baseline = learn_baseline([scene.render(t * 0.2) for t in range(10)])
    checks: list[float] = []
    floor: list[float] = []
    for fault in FAULTS:
        scene.faults = {fault} if fault else set()
        frames = [scene.render(10 + i * 0.04) for i in range(args.frames)]
        checker = VideoChecker(baseline)
        for i, frame in enumerate(frames):
            t0 = time.perf_counter()
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            cv2.resize(grey, (480, 270), interpolation=cv2.INTER_AREA)
            floor.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            checker.add(frame, timestamp=i * 0.04)
            checks.append(time.perf_counter() - t0)
    rows = [
        [
            "hub: every video check (VideoChecker.add)",
            len(checks),
            percentile(checks, 50) * 1e3,
            percentile(checks, 99) * 1e3,
        ],
        [
            "baseline: grey + downscale only",
            len(floor),
            percentile(floor, 50) * 1e3,
            percentile(floor, 99) * 1e3,
        ],
    ]
    print("Video checks per 1920×1080 frame (milliseconds)")
    print(table(["path", "frames", "p50", "p99"], rows))
    median = percentile(checks, 50) * 1e3
    print(f"\nmedian {median:.2f} ms (goal ≤ {GOAL_MS} ms): {verdict(median <= GOAL_MS)}")
    return {
        "median_ms": median,
        "p99_ms": percentile(checks, 99) * 1e3,
        "floor_median_ms": percentile(floor, 50) * 1e3,
        "goal_met": median <= GOAL_MS,
    }
