"""The camera simulator's ``jpeg_loop``: a loop of frames encoded once, like a camera's
hardware encoder, so that hundreds of simulated cameras leave the CPU to the hub."""

from __future__ import annotations

import secrets

from adapters.onvif.grab import fetch_snapshot
from simulators.camera import CameraFarm

USER = "installer"
LOOP = 3


async def test_a_loop_of_frames_encoded_once_until_a_fault_changes_the_picture() -> None:
    password = secrets.token_urlsafe(12)
    async with CameraFarm.uniform(
        1, username=USER, password=password, width=320, height=180, jpeg_loop=LOOP
    ) as farm:
        cam = farm[0]
        url = f"{cam.base_url}/onvif/snapshot?profile=Profile_1"

        async def snapshot() -> bytes:
            return await fetch_snapshot(url, device_id="cam", username=USER, password=password)

        served = {await snapshot() for _ in range(3 * LOOP + 3)}
        assert 1 <= len(served) <= LOOP
        cam.set_faults(["black"])
        assert await snapshot() not in served  # the loop is encoded afresh
        cam.set_faults(clear=["black"])
        live = CameraFarm.uniform(1, username=USER, password=password, width=320, height=180)
        assert live[0].config.jpeg_loop == 0  # rendering every frame stays the default
