"""Video checks against the synthetic camera scene, always through a real JPEG round trip."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from adapters.onvif.video import (
    CHECKS,
    Baseline,
    Finding,
    Thresholds,
    VideoChecker,
    check_frame,
    faults,
    learn_baseline,
)
from simulators.scene import VIDEO_FAULTS, Scene

CAMERAS = [
    ("Atrium-Cam-01", 0, 1280, 720),
    ("Gate-B", 5, 1280, 720),
    ("P2-Carpark-17", 42, 960, 540),
]

# Which check must report each simulated fault as the root cause.
EXPECTED = {
    "black": "black",
    "frozen": "frozen",
    "blurred": "blur",
    "covered": "covered",
    "dark": "dark",
    "bright": "bright",
    "colour_cast": "colour_cast",
    "noise": "noise",
    "moved": "moved",
    "signal_loss": "signal_loss",
}


def decode(data: bytes) -> NDArray[np.uint8]:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return np.asarray(img, np.uint8)


def frames(scene: Scene, times: list[float]) -> list[NDArray[np.uint8]]:
    return [decode(scene.jpeg(t)) for t in times]


@functools.cache
def baseline_for(name: str, seed: int, width: int, height: int) -> Baseline:
    scene = Scene(name, width, height, seed=seed)
    return learn_baseline(frames(scene, [float(t) for t in range(10)]))


def root_causes(findings: list[Finding]) -> set[str]:
    return {f.check for f in faults(findings)}


def test_every_simulated_fault_has_a_check() -> None:
    assert set(EXPECTED) == set(VIDEO_FAULTS)
    assert set(EXPECTED.values()) == set(CHECKS)


@pytest.mark.parametrize("camera", CAMERAS, ids=[c[0] for c in CAMERAS])
@pytest.mark.parametrize("fault", VIDEO_FAULTS)
def test_detector_matrix(fault: str, camera: tuple[str, int, int, int]) -> None:
    base = baseline_for(*camera)
    scene = Scene(camera[0], camera[2], camera[3], seed=camera[1])
    scene.faults.add(fault)
    times = [200.0 + i for i in range(5)]
    report = VideoChecker(base, window=5).check_series(frames(scene, times), times)

    assert [f.check for f in report.findings] == list(CHECKS)
    assert root_causes(report.findings) == {EXPECTED[fault]}
    hit = next(f for f in report.findings if f.check == EXPECTED[fault])
    assert hit.evaluated
    assert (hit.score > hit.threshold) if hit.limit == "max" else (hit.score < hit.threshold)
    assert hit.message_zh and hit.message_en and hit.fix
    # Anything else that failed is explained by the root cause, never reported alone.
    for f in report.findings:
        if not f.ok and f is not hit:
            assert f.masked_by == EXPECTED[fault]


def test_frozen_with_live_clock_overlay() -> None:
    """Some cameras keep drawing the clock over a stuck picture: still frozen."""
    camera = CAMERAS[0]
    base = baseline_for(*camera)
    scene = Scene(camera[0], camera[2], camera[3], seed=camera[1])
    scene.osd_after_freeze = True
    scene.faults.add("frozen")
    times = [300.0 + 2 * i for i in range(6)]
    shots = frames(scene, times)
    # The clock really does change between the frames...
    assert not np.array_equal(shots[0], shots[-1])
    report = VideoChecker(base, window=6).check_series(shots, times)
    # ...but the change is confined to a tiny area.
    assert root_causes(report.findings) == {"frozen"}


def test_frozen_is_reported_once_the_window_is_stuck() -> None:
    camera = CAMERAS[1]
    base = baseline_for(*camera)
    scene = Scene(camera[0], camera[2], camera[3], seed=camera[1])
    checker = VideoChecker(base, window=4)
    t = 100.0
    for _ in range(4):
        assert faults(checker.add(decode(scene.jpeg(t)), t).findings) == []
        t += 1.0
    scene.faults.add("frozen")
    seen = []
    for _ in range(6):
        seen.append(root_causes(checker.add(decode(scene.jpeg(t)), t).findings))
        t += 1.0
    assert seen[-1] == {"frozen"}
    assert seen[0] == set()  # one stuck frame after live ones is not yet frozen
    scene.faults.clear()
    for _ in range(3):
        last = root_causes(checker.add(decode(scene.jpeg(t)), t).findings)
        t += 1.0
    assert last == set()


@pytest.mark.parametrize("camera", CAMERAS, ids=[c[0] for c in CAMERAS])
def test_no_false_positives_on_a_healthy_scene(camera: tuple[str, int, int, int]) -> None:
    base = baseline_for(*camera)
    scene = Scene(camera[0], camera[2], camera[3], seed=camera[1])
    checker = VideoChecker(base, window=5)
    failures: list[tuple[float, str, float, float]] = []
    evaluated_frozen = 0
    # 60 frames over two minutes of scene time, after the learning period.
    for i in range(60):
        t = 20.0 + 2.0 * i
        report = checker.add(decode(scene.jpeg(t)), t)
        assert len(report.findings) == len(CHECKS)
        for f in report.findings:
            if not f.ok:
                failures.append((t, f.check, f.score, f.threshold))
            if f.check == "frozen" and f.evaluated:
                evaluated_frozen += 1
        assert report.fps == (None if i == 0 else pytest.approx(0.5))
    assert failures == []
    assert evaluated_frozen == 59


def test_moving_people_do_not_count_as_a_moved_camera() -> None:
    camera = CAMERAS[0]
    base = baseline_for(*camera)
    scene = Scene(camera[0], camera[2], camera[3], seed=camera[1])
    scores = [check_frame(decode(scene.jpeg(float(t))), base)[-1] for t in range(30, 90, 10)]
    assert all(f.check == "moved" and f.ok for f in scores)
    assert max(f.score for f in scores) < 0.01


def test_no_frame_is_signal_loss() -> None:
    base = baseline_for(*CAMERAS[0])
    findings = check_frame(None, base)
    assert root_causes(findings) == {"signal_loss"}
    assert [f.check for f in findings] == list(CHECKS)
    assert all(not f.evaluated for f in findings[1:])
    report = VideoChecker(base).add(None)
    assert root_causes(report.findings) == {"signal_loss"}


def test_check_frame_uses_previous_frames_for_frozen() -> None:
    camera = CAMERAS[0]
    base = baseline_for(*camera)
    scene = Scene(camera[0], camera[2], camera[3], seed=camera[1])
    live = frames(scene, [50.0, 51.0, 52.0])
    alone = check_frame(live[-1], base)
    assert next(f for f in alone if f.check == "frozen").evaluated is False
    with_history = check_frame(live[-1], base, previous_frames=live[:-1])
    frozen = next(f for f in with_history if f.check == "frozen")
    assert frozen.evaluated and frozen.ok
    stuck = check_frame(live[0], base, previous_frames=[live[0], live[0]])
    assert root_causes(stuck) == {"frozen"}


def test_combined_faults_are_each_reported() -> None:
    camera = CAMERAS[1]
    base = baseline_for(*camera)
    scene = Scene(camera[0], camera[2], camera[3], seed=camera[1])
    scene.faults.update({"moved", "colour_cast"})
    findings = check_frame(decode(scene.jpeg(400.0)), base)
    assert root_causes(findings) == {"moved", "colour_cast"}


def test_thresholds_can_be_tightened() -> None:
    camera = CAMERAS[0]
    base = baseline_for(*camera)
    scene = Scene(camera[0], camera[2], camera[3], seed=camera[1])
    frame = decode(scene.jpeg(60.0))
    assert root_causes(check_frame(frame, base)) == set()
    strict = Thresholds(bright_abs=10.0)
    assert root_causes(check_frame(frame, base, thresholds=strict)) == {"bright"}


def test_baseline_round_trip() -> None:
    camera = CAMERAS[2]
    base = baseline_for(*camera)
    data = base.to_bytes()
    assert isinstance(data, bytes)
    again = Baseline.from_bytes(data)
    assert (again.width, again.height, again.frames) == (base.width, base.height, base.frames)
    assert again.stats == base.stats
    assert again.activity == base.activity
    assert np.array_equal(again.reference, base.reference)
    assert np.array_equal(again.block_std, base.block_std)
    assert np.array_equal(again.keypoints, base.keypoints)
    assert np.array_equal(again.descriptors, base.descriptors)
    assert again.to_bytes() == data

    scene = Scene(camera[0], camera[2], camera[3], seed=camera[1])
    scene.faults.add("blurred")
    frame = decode(scene.jpeg(70.0))
    assert check_frame(frame, again) == check_frame(frame, base)


@pytest.mark.parametrize("junk", [b"", b"not a baseline", b"PK\x03\x04broken zip"])
def test_baseline_rejects_junk(junk: bytes) -> None:
    with pytest.raises(ValueError):
        Baseline.from_bytes(junk)


def test_baseline_can_be_relearned_after_an_intended_move() -> None:
    camera = CAMERAS[0]
    scene = Scene(camera[0], camera[2], camera[3], seed=camera[1])
    scene.faults.add("moved")
    moved = frames(scene, [500.0 + i for i in range(5)])
    assert root_causes(check_frame(moved[-1], baseline_for(*camera))) == {"moved"}
    relearned = learn_baseline(moved[:-1])
    assert root_causes(check_frame(moved[-1], relearned, previous_frames=moved[-3:-1])) == set()


def test_learn_baseline_needs_frames() -> None:
    with pytest.raises(ValueError):
        learn_baseline([])


def test_grey_and_odd_sized_frames_are_accepted() -> None:
    camera = CAMERAS[0]
    base = baseline_for(*camera)
    scene = Scene(camera[0], camera[2], camera[3], seed=camera[1])
    frame = decode(scene.jpeg(80.0))
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    findings = check_frame(np.asarray(grey, np.uint8), base)
    assert len(findings) == len(CHECKS)
    # A grey picture has no colour at all: that is a colour fault, and only that.
    assert root_causes(findings) <= {"colour_cast"}
