"""200 simulated cameras in one process, connected and probed by the real driver.

Asserts correctness only; the printed timings (first vs 200th connect) and RSS are for the
performance notes. Run alone (``pytest tests/onvif/test_scale.py -s``) to see the cost of the
first WSDL parse: other tests in the same process warm the shared documents first.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import statistics
from pathlib import Path

from adapters.onvif import driver
from adapters.onvif.driver import CameraProbe, OnvifCamera
from simulators.camera import CameraFarm
from tests.onvif.conftest import USER

CAMERAS = 200
CONCURRENCY = 20


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_200_cameras_connect_and_probe(password: str) -> None:
    cold = not driver._WARM_SERVICES
    rss_before = _rss_mib()
    limit = asyncio.Semaphore(CONCURRENCY)
    probes: dict[int, CameraProbe] = {}
    connect_times: dict[int, float] = {}
    probe_times: dict[int, float] = {}

    async with CameraFarm.uniform(CAMERAS, username=USER, password=password) as farm:
        rss_farm = _rss_mib()
        loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as stack:

            async def connect_and_probe(index: int) -> None:
                sim = farm[index]
                async with limit:
                    cam = OnvifCamera(
                        f"scale-{index:03d}",
                        "127.0.0.1",
                        sim.port,
                        USER,
                        password,
                        timeout_s=30.0,
                        connect_timeout_s=60.0,
                    )
                    await stack.enter_async_context(cam)
                    assert cam.connect_time_s is not None
                    connect_times[index] = cam.connect_time_s
                    started = loop.time()
                    probes[index] = await cam.probe()
                    probe_times[index] = loop.time() - started

            started = loop.time()
            # The first and the last camera connect on their own, so their times compare the
            # cost of a cold start (WSDL parsing) with a warm one, free of queueing effects.
            await connect_and_probe(0)
            async with asyncio.TaskGroup() as group:
                for index in range(1, CAMERAS - 1):
                    group.create_task(connect_and_probe(index), name=f"probe-{index}")
            await connect_and_probe(CAMERAS - 1)
            total = loop.time() - started
            rss_connected = _rss_mib()

    assert len(probes) == CAMERAS
    failed = {i: p.error for i, p in probes.items() if p.error is not None or not p.reachable}
    assert failed == {}
    for index, probe in probes.items():
        assert probe.model == farm[index].config.model
        assert probe.profiles[0].width == farm[index].config.width
        assert probe.snapshot_uri is not None and str(farm[index].port) in probe.snapshot_uri

    first, last = 0, CAMERAS - 1
    middle = [connect_times[i] for i in range(1, CAMERAS - 1)]
    print(
        f"\n{CAMERAS} cameras, concurrency {CONCURRENCY}, WSDL cache cold at start: {cold}\n"
        f"  1st camera:   connect {connect_times[first] * 1000:7.1f} ms, "
        f"first probe {probe_times[first] * 1000:7.1f} ms\n"
        f"  200th camera: connect {connect_times[last] * 1000:7.1f} ms, "
        f"first probe {probe_times[last] * 1000:7.1f} ms\n"
        f"  cameras 2-199 ({CONCURRENCY} at a time): "
        f"median connect {statistics.median(middle) * 1000:.1f} ms\n"
        f"  all connected and probed in {total:.2f} s\n"
        f"  RSS: {rss_before:.0f} MiB before, {rss_farm:.0f} MiB with the farm, "
        f"{rss_connected:.0f} MiB with all {CAMERAS} connected"
    )
