"""Every video finding on real RTSP streams from the camera simulator, H.264 and H.265: the
hub's video check (``VideoProbe``) learns the healthy picture, then each fault switch of the
simulator must raise its finding, and the healthy stream none.

The simulator serves a 1280x720 main stream and a 640x360 sub-stream (the picture is judged
on the sub-stream, the frame rate measured on the main one), 25 fps declared, a GOP of 2 s.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from adapters.onvif.driver import CameraProbe, OnvifCamera
from hub.config import Camera, Compliance
from hub.health.probes import camera_result
from hub.health.video import VideoOutcome, VideoProbe
from simulators.camera import CameraConfig, CameraFarm, SimCamera

USER = "installer"
# Which finding each simulator fault must raise as a root cause.
PICTURE = {
    "black": "video.black",
    "frozen": "video.frozen",
    "blurred": "video.blur",
    "covered": "video.covered",
    "dark": "video.dark",
    "bright": "video.bright",
    "colour_cast": "video.colour_cast",
    "noise": "video.noise",
    "moved": "video.moved",
    "signal_loss": "video.signal_loss",
}
STREAM = {
    "low_fps": "fps_measured",
    "no_keyframe": "video.no_key_frame",
    "stall": "video.stream_stalled",
    "rtsp_unauthorized": "video.stream_auth",
    "rtsp_refused": "video.unavailable",
    "rtsp_unavailable": "video.unavailable",
    "encoder_mismatch": "video.codec_mismatch",
}
CFG = Camera.model_validate(
    {
        "id": "cam-1",
        "name": "cam",
        "host": "127.0.0.1",
        "location": {"floor": "1F", "zone": "hall", "role": "passage"},
        "events": False,
    }
)


class Rig:
    def __init__(self, sim: SimCamera, cam: OnvifCamera, probe: CameraProbe, password: str):
        self.sim, self.cam, self.probe = sim, cam, probe
        self.video = VideoProbe("cam-1", USER, password)
        self.pool = ThreadPoolExecutor(2)

    async def check(self) -> VideoOutcome:
        # Each test on its own: no source remembered as failed by the test before.
        self.video.failed.clear()
        # A fault switched on makes the simulator encode new loops on the next DESCRIBE;
        # a real camera's encoder is ready at once, so the test waits for them first.
        await self.sim.video_ready()
        p = self.probe
        assert p.profiles
        return await self.video.run(
            self.cam,
            p.profiles[0].token,
            p.stream_uri,
            p.snapshot_uri,
            within=30,
            executor=self.pool,
            profiles=p.profiles,
        )

    def problems(self, outcome: VideoOutcome) -> list[str]:
        at = datetime.now(UTC)
        result = camera_result(self.probe, CFG, Compliance(), at, outcome)
        return [x.check for x in result.problems if not x.warning]


# One simulated camera per codec for the whole module: its encoded loops are made once.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(params=["H264", "H265"], scope="module", loop_scope="module")
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    password = secrets.token_urlsafe(12)
    config = CameraConfig(
        "cam",
        USER,
        password,
        width=1280,
        height=720,
        encoding=request.param,
        sub_encoding=request.param,
        stall_after_s=2.0,
        seed=3,
    )
    async with (
        CameraFarm([config]) as farm,
        OnvifCamera("cam-1", "127.0.0.1", farm[0].port, USER, password) as cam,
    ):
        probe = await cam.probe()
        assert probe.error is None, probe.error
        r = Rig(farm[0], cam, probe, password)
        learned = await r.check()
        assert learned.learned is not None, learned.findings
        try:
            yield r
        finally:
            r.pool.shutdown()


async def test_the_healthy_stream_raises_nothing(rig: Rig) -> None:
    outcome = await rig.check()
    assert rig.problems(outcome) == []
    assert outcome.source == "rtsp_sub"
    assert outcome.fps_measured == pytest.approx(25, rel=0.1)
    codec = "H265" if rig.probe.profiles[0].encoding == "H265" else "H264"
    assert outcome.stream["codec"] == codec
    assert (outcome.stream["width"], outcome.stream["height"]) == (1280, 720)


@pytest.mark.parametrize("fault", sorted(PICTURE))
async def test_each_picture_fault_raises_its_finding(rig: Rig, fault: str) -> None:
    rig.sim.set_faults([fault])
    try:
        outcome = await rig.check()
    finally:
        rig.sim.set_faults(clear=[fault])
    assert outcome.source == "rtsp_sub"
    problems = rig.problems(outcome)
    assert PICTURE[fault] in problems, outcome.findings


@pytest.mark.parametrize("fault", sorted(STREAM))
async def test_each_stream_fault_raises_its_finding(rig: Rig, fault: str) -> None:
    rig.sim.set_faults([fault])
    try:
        outcome = await rig.check()
    finally:
        rig.sim.set_faults(clear=[fault])
    problems = rig.problems(outcome)
    assert STREAM[fault] in problems, (problems, outcome)
    if fault == "low_fps":
        assert outcome.fps_measured == pytest.approx(10, rel=0.15)
    if fault in ("rtsp_refused", "rtsp_unavailable", "rtsp_unauthorized"):
        assert outcome.fps_measured is None  # never a rate that was not measured
    if fault == "encoder_mismatch":
        assert "video.resolution_mismatch" in problems  # sent at two thirds of the size
    if fault == "rtsp_unauthorized":
        assert outcome.stream_error is not None and "rtsp://" in outcome.stream_error
        assert "power" not in " ".join(problems)
