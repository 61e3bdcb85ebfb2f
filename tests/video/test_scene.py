"""The synthetic camera scene: reproducible, different per camera, faults switchable."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from simulators.scene import VIDEO_FAULTS, Scene


def test_frames_are_reproducible_and_move() -> None:
    a = Scene("Cam-1", 640, 360, seed=3)
    b = Scene("Cam-1", 640, 360, seed=3)
    assert np.array_equal(a.render(12.0), b.render(12.0))
    assert a.render(12.0).shape == (360, 640, 3)
    assert a.render(12.0).dtype == np.uint8
    # People walk: two seconds apart, a sizeable part of the picture differs.
    diff = cv2.absdiff(a.render(12.0), a.render(14.0)).max(axis=2)
    assert np.count_nonzero(diff > 40) > 0.005 * diff.size


def test_each_camera_has_its_own_view() -> None:
    one = Scene("Cam-1", 640, 360, seed=1).render(5.0)
    other_seed = Scene("Cam-1", 640, 360, seed=2).render(5.0)
    other_name = Scene("Cam-2", 640, 360, seed=1).render(5.0)
    for other in (other_seed, other_name):
        assert float(cv2.absdiff(one, other).mean()) > 10.0


def test_clock_is_burned_in() -> None:
    scene = Scene("Cam-1", 640, 360, seed=1)
    scene.faults.add("frozen")
    scene.osd_after_freeze = True
    first = scene.render(10.0)
    later = scene.render(11.0)
    changed = np.argwhere(cv2.absdiff(first, later).max(axis=2) > 0)
    # Only the clock in the top-left corner changes on a stuck picture with a live clock.
    assert len(changed) > 0
    assert changed[:, 0].max() < 360 * 0.1
    assert changed[:, 1].max() < 640 * 0.5


def test_frozen_returns_the_frame_of_the_switch() -> None:
    scene = Scene("Cam-1", 640, 360, seed=1)
    scene.faults.add("frozen")
    stuck = scene.render(20.0)
    assert np.array_equal(scene.render(25.0), stuck)
    assert np.array_equal(scene.render(90.0), stuck)
    scene.faults.discard("frozen")
    assert not np.array_equal(scene.render(90.0), stuck)


@pytest.mark.parametrize("fault", VIDEO_FAULTS)
def test_every_fault_changes_the_picture(fault: str) -> None:
    scene = Scene("Cam-1", 640, 360, seed=1)
    scene.faults.add(fault)
    faulty = scene.render(30.0)
    if fault == "frozen":
        faulty = scene.render(40.0)  # still the picture of 30 s
    healthy = Scene("Cam-1", 640, 360, seed=1).render(40.0 if fault == "frozen" else 30.0)
    assert float(cv2.absdiff(healthy, faulty).mean()) > 1.0


def test_jpeg_is_a_real_jpeg() -> None:
    data = Scene("Cam-1", 640, 360).jpeg(1.0, quality=70)
    assert data[:2] == b"\xff\xd8"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (360, 640, 3)


def test_unknown_fault_is_refused() -> None:
    scene = Scene("Cam-1", 640, 360)
    scene.faults.add("melted")
    with pytest.raises(ValueError, match="melted"):
        scene.render(0.0)
