"""A small simulated mall for the health tests: cameras from a CameraFarm, config entries."""

from __future__ import annotations

import asyncio
from typing import Any

from simulators.camera import CameraFarm, SimCamera

USER = "installer"


def camera_entry(
    cam_id: str,
    sim: SimCamera,
    password: str,
    *,
    floor: str = "1F",
    zone: str = "main-gate",
    role: str = "gate",
    events: bool = False,
) -> dict[str, Any]:
    return {
        "id": cam_id,
        "name": f"camera {cam_id}",
        "host": "127.0.0.1",
        "port": sim.port,
        "username": USER,
        "password": password,
        "events": events,
        "location": {"floor": floor, "zone": zone, "role": role},
    }


def health(**overrides: Any) -> dict[str, Any]:
    """Tiny intervals so that debounce happens within a test; probes driven by hand use
    intervals of an hour and call ``probe_now`` / ``run_now`` instead."""
    base: dict[str, Any] = {
        "camera_interval_s": 0.2,
        "video_interval_s": 3600,
        "broadcast_interval_s": 0.5,
        "probe_timeout_s": 3,
        "fail_threshold": 2,
        "recover_threshold": 2,
        "jitter": 0.1,
    }
    base.update(overrides)
    return base


MANUAL = {"camera_interval_s": 3600, "video_interval_s": 3600, "jitter": 0}


async def video_ready(farm: CameraFarm) -> None:
    """Every camera's streams encoded before a check looks at them: the simulator encodes a
    loop on its first use, which on a loaded machine can outlast a probe's budget (a real
    camera answers DESCRIBE at once)."""
    await asyncio.gather(*(camera.video_ready() for camera in farm.cameras))
