"""``mallhub check`` against a camera nobody here wrote: ipycam 1.3.0, a virtual ONVIF camera
with its own RTSP server streaming real H.264 (encoded by FFmpeg's libx264).

The camera is configured for 25 fps; the test feeds it 25 or 10 pictures a second, so at 10 fps
its ONVIF answers and its stream timestamps still claim 25 while 10 arrive. The check runs as
the technician runs it, ``mallhub check --device … --json`` in its own process, so its terminal
output is what a technician would see: no FFmpeg or OpenCV line may be on it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.device_event import DeviceEvent
from adapters.onvif.driver import OnvifCamera
from adapters.onvif.events import PullPointSubscriber, SubscriptionHealth
from tests.support.sites import site_dict

pytest.importorskip("ipycam", reason="ipycam is installed by scripts/setup (no-deps)")

NOISE = ("[tcp @", "[rtsp @", "[h264 @", "libav", "VIDEOIO", "ffmpeg", "FFmpeg", "cv2")


class Ipycam:
    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.ipycam_camera", "--fps", str(fps)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # ends when it serves, or when it died
        if not line:
            self.stop()
            pytest.fail("ipycam did not start")
        self.onvif_port, self.rtsp_port = (int(x) for x in line.split())

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # it stops when its standard input closes
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def camera_at(request: pytest.FixtureRequest) -> Iterator[Ipycam]:
    cam = Ipycam(request.param)
    try:
        yield cam
    finally:
        cam.stop()


def check(cam: Ipycam, tmp_path: Path, **extra: Any) -> tuple[dict[str, Any], str]:
    data = site_dict(
        broker_url="mqtt://127.0.0.1:1",
        data_dir=tmp_path / "data",
        cameras=[
            {
                "id": "cam-ipy",
                "name": "ipycam",
                "host": "127.0.0.1",
                "port": cam.onvif_port,
                "events": False,
                "location": {"floor": "1F", "zone": "hall", "role": "passage"},
                **extra,
            }
        ],
        health={"probe_timeout_s": 10},
    )
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    # The camera's encoder needs a moment after start before its stream plays.
    deadline = time.monotonic() + 60
    argv = ["check", "--config", str(path), "--device", "cam-ipy", "--json"]
    while True:
        run = subprocess.run(
            [sys.executable, "-m", "hub.cli", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        report = json.loads(run.stdout)
        row = report["devices"][0]
        if row.get("fps_measured") is not None or time.monotonic() > deadline:
            return row, run.stderr


@pytest.mark.parametrize("camera_at", [25.0, 10.0], indirect=True, ids=["25fps", "10fps"])
def test_check_measures_what_the_stream_delivers(camera_at: Ipycam, tmp_path: Path) -> None:
    row, stderr = check(camera_at, tmp_path)
    delivered = camera_at.fps
    assert row["fps_limit"] == 25
    assert row["fps_measured"] == pytest.approx(delivered, rel=0.15)
    assert row["stream"]["codec"] == "H264" and row["stream"]["width"] == 640
    assert row["video_source"] == "rtsp_sub"  # the picture is judged on the sub-stream
    checks = [f["check"] for f in row["findings"] if not f["warning"]]
    if delivered < 25 * 0.9:
        assert "fps_measured" in checks and row["state"] == "degraded"
    else:
        assert "fps_measured" not in checks
    noise = [line for line in stderr.splitlines() if any(n in line for n in NOISE)]
    assert noise == []


@pytest.mark.parametrize("camera_at", [25.0], indirect=True)
def test_events_configured_on_a_camera_without_events_fail_commissioning(
    camera_at: Ipycam, tmp_path: Path
) -> None:
    row, _ = check(camera_at, tmp_path, events=True)
    checks = [f["check"] for f in row["findings"] if not f["warning"]]
    assert "events" in checks and row["state"] == "degraded"
    assert row["manufacturer"] and row["model"] and row["firmware"]


@pytest.mark.parametrize("camera_at", [25.0], indirect=True)
async def test_a_subscription_to_events_the_camera_never_had_stops_at_once(
    camera_at: Ipycam,
) -> None:
    async def ingest(_event: DeviceEvent) -> str:
        return "ignored"

    async with OnvifCamera("cam-ipy", "127.0.0.1", camera_at.onvif_port, "", "") as cam:
        sub = PullPointSubscriber(cam, ingest, backoff_initial_s=0.01, backoff_max_s=0.01)
        async with sub:
            async with asyncio.timeout(20):
                status = await sub.wait_for_status(
                    lambda s: s.health != SubscriptionHealth.STARTING
                )
            assert status.health == SubscriptionHealth.UNSUPPORTED
            # Never "lost", never retried: the subscriber's task has ended.
            assert status.loss_count == 0 and status.recreate_count == 0
            assert sub._task is not None
            async with asyncio.timeout(5):
                await asyncio.wait([sub._task])
            assert sub.status.health == SubscriptionHealth.UNSUPPORTED
