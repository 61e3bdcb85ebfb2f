"""Judging probe results (pure) and the absolute picture screen on the simulator's scene."""

from __future__ import annotations

from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from adapters.onvif.driver import CameraProbe, ProfileSummary
from adapters.onvif.video import learn_baseline
from hub.config import Camera, Compliance
from hub.health.probes import camera_result, subscription_findings
from hub.health.video import VideoOutcome, screen, video_problems
from simulators.scene import Scene

AT = datetime(2026, 1, 1, tzinfo=UTC)
TH = Compliance()


def cam(role: str = "gate") -> Camera:
    return Camera.model_validate(
        {
            "id": "cam-1",
            "name": "Gate",
            "host": "127.0.0.1",
            "location": {"floor": "1F", "zone": "gate", "role": role},
        }
    )


def probe(**kw: object) -> CameraProbe:
    base: dict[str, object] = {
        "device_id": "cam-1",
        "reachable": True,
        "latency_s": 0.02,
        "clock_offset_s": 0.3,
        "profiles": (ProfileSummary("P1", "main", "H264", 1920, 1080, 25.0),),
        "stream_uri": "rtsp://127.0.0.1/P1",
    }
    base.update(kw)
    return CameraProbe(**base)  # type: ignore[arg-type]


def test_healthy_camera_is_ok_with_contract_details() -> None:
    r = camera_result(probe(), cam(), TH, AT, None)
    assert r.level == "ok" and r.problems == []
    d = r.stored_detail()
    assert d["clock_offset_s"] == 0.3
    assert d["resolution"] == [1920, 1080]
    assert d["fps_limit"] == 25.0
    assert d["latency_ms"] == 20.0


def test_unreachable_camera_fails_with_a_fix() -> None:
    r = camera_result(
        probe(reachable=False, error="connect refused", error_type="DeviceUnreachable"),
        cam(),
        TH,
        AT,
        None,
    )
    assert r.level == "failed"
    assert "unreachable" in r.reason and "network" in r.fix


def test_clock_resolution_and_frame_rate_problems_degrade() -> None:
    p = probe(
        clock_offset_s=3600.0,
        profiles=(ProfileSummary("P1", "main", "H264", 1024, 576, 12.0),),
    )
    r = camera_result(p, cam("gate"), TH, AT, None)
    assert r.level == "degraded"
    assert [x.check for x in r.problems] == ["clock", "resolution", "fps_limit"]
    assert r.fault_kind == "fault.clock"
    # 1024x576 is enough away from gates, entrances and the finance room.
    r2 = camera_result(p, cam("corridor"), TH, AT, None)
    assert [x.check for x in r2.problems] == ["clock", "fps_limit"]


def test_a_login_refused_for_the_clock_says_so_and_not_the_password() -> None:
    p = probe(
        error="devicemgmt.GetDeviceInformation: HTTP 401; the camera's clock is off by +7200 s",
        error_type="ClockRefused",
        clock_offset_s=7200.0,
        profiles=(),
    )
    r = camera_result(p, cam(), TH, AT, None)
    assert r.level == "failed" and r.reason.startswith("login refused: camera clock wrong")
    assert "clock" in r.fix and "password" not in r.fix
    assert r.stored_detail()["clock_offset_s"] == 7200.0
    assert r.stored_detail()["error_type"] == "ClockRefused"


class _Status:
    def __init__(self, health: str, last_error: str = "") -> None:
        self.health, self.last_error = health, last_error


def test_events_the_camera_never_had_are_a_problem_and_a_lost_subscription_a_warning() -> None:
    never = camera_result(probe(), cam(), TH, AT, None)
    subscription_findings(never, _Status("unsupported", "no Events service"))
    assert never.level == "degraded"
    assert [(x.check, x.warning) for x in never.problems] == [("events", False)]
    assert "no ONVIF Events service" in never.reason

    lost = camera_result(probe(), cam(), TH, AT, None)
    subscription_findings(lost, _Status("lost", "connection reset"))
    assert lost.level == "ok"
    assert [(x.check, x.warning) for x in lost.problems] == [("events", True)]

    fine = camera_result(probe(), cam(), TH, AT, None)
    subscription_findings(fine, _Status("active"))
    subscription_findings(fine, None)  # events not configured: no subscriber
    assert fine.level == "ok" and fine.problems == []


def test_video_findings_come_first_and_a_low_measured_fps_is_a_fault() -> None:
    """A stream delivering 10 fps on a camera set to 25 is a fault, not a warning."""
    findings = [
        {
            "check": "covered",
            "ok": False,
            "score": 0.9,
            "threshold": 0.5,
            "message_zh": "画面遮挡",
            "message_en": "View covered or blocked",
            "fix": "x",
        },
        {
            "check": "dark",
            "ok": False,
            "score": 9.0,
            "threshold": 25.0,
            "message_zh": "暗",
            "message_en": "dark",
            "fix": "y",
            "masked_by": "covered",
        },
    ]
    video = VideoOutcome(findings, fps_measured=10.0, frames=8, source="rtsp_sub")
    r = camera_result(probe(), cam(), TH, AT, video)
    assert r.level == "degraded"
    assert r.fault_kind == "fault.video_quality"
    assert [(x.check, x.warning) for x in r.problems] == [
        ("video.covered", False),
        ("fps_measured", False),
    ]
    assert r.detail["findings"] == findings and r.detail["fps_measured"] == 10.0
    assert r.detail["video_source"] == "rtsp_sub"


def frames(fault: str | None) -> list[np.ndarray]:
    scene = Scene("Gate-A", 1280, 720, seed=3)
    if fault:
        scene.faults.add(fault)
    out = []
    for i in range(6):
        img = cv2.imdecode(np.frombuffer(scene.jpeg(50 + i * 0.04), np.uint8), cv2.IMREAD_COLOR)
        out.append(np.asarray(img, np.uint8))
    return out


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (None, set()),
        ("black", {"black"}),
        ("covered", {"covered"}),
        ("signal_loss", {"signal_loss"}),
        ("frozen", {"frozen"}),
    ],
)
def test_screen_without_baseline(fault: str | None, expected: set[str]) -> None:
    findings = screen(learn_baseline(frames(fault)))
    assert {p.check for p in video_problems(findings)} == {f"video.{c}" for c in expected}
    assert all(
        set(f) >= {"check", "ok", "score", "threshold", "message_zh", "message_en"}
        for f in findings
    )
