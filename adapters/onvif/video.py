"""Video quality checks on camera frames, each judged against a per-camera baseline.

Every check works on a small grey copy of the frame (``WORK_WIDTH`` pixels wide) and,
for colour, a tinier colour copy, so a full set costs a few milliseconds even for
1920 x 1080 input. A :class:`Baseline` is learned from frames taken while the camera was
known good; the checks compare against it rather than against fixed numbers, because
what is "dark" or "soft" differs from one view to the next.

The measurements and the baseline live in :mod:`adapters.onvif.baseline` (re-exported
here). All functions here are CPU-bound and synchronous; callers on the event loop run them
with ``asyncio.to_thread``.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from adapters.onvif.baseline import (
    BASELINE_FORMAT,
    TINY_WIDTH,
    WORK_WIDTH,
    Baseline,
    Frame,
    FrameStats,
    Prepared,
    changed_fraction,
    features,
    grey_picture,
    learn_baseline,
    prepare,
    shrink,
)

__all__ = [
    "BASELINE_FORMAT",
    "CHECKS",
    "TINY_WIDTH",
    "WORK_WIDTH",
    "Baseline",
    "Finding",
    "Frame",
    "FrameStats",
    "Thresholds",
    "VideoChecker",
    "VideoReport",
    "check_frame",
    "faults",
    "learn_baseline",
    "shrink",
]

logger = logging.getLogger(__name__)

_local = threading.local()


#: Every check, in the order findings are reported. A failure of an earlier check can
#: explain a failure of a later one (see ``_CONSEQUENCES``).
CHECKS = (
    "signal_loss",
    "black",
    "covered",
    "frozen",
    "dark",
    "bright",
    "blur",
    "noise",
    "colour_cast",
    "moved",
)

# Which other checks a failure makes meaningless: a black picture is also "dark", has no
# sharpness and matches nothing, so only the root cause should raise an alarm.
_CONSEQUENCES: dict[str, frozenset[str]] = {
    "signal_loss": frozenset(CHECKS) - {"signal_loss"},
    "black": frozenset(CHECKS) - {"signal_loss", "black"},
    "covered": frozenset({"frozen", "dark", "bright", "blur", "noise", "colour_cast", "moved"}),
    "frozen": frozenset(),
    "dark": frozenset({"blur", "noise", "colour_cast", "moved"}),
    "bright": frozenset({"blur", "colour_cast", "moved"}),
    "blur": frozenset({"moved"}),
    "noise": frozenset({"blur", "moved"}),
    "colour_cast": frozenset(),
    "moved": frozenset(),
}

_MESSAGES: dict[str, tuple[str, str, str]] = {
    "signal_loss": (
        "No video signal",
        "无视频信号",
        "Check the camera's power, cable and encoder channel.",
    ),
    "black": ("Black picture", "黑屏", "Check the lens cap, iris and the camera's video output."),
    "covered": (
        "View covered or blocked",
        "画面遮挡",
        "Remove whatever covers the lens; check for tampering.",
    ),
    "frozen": ("Picture frozen", "画面冻结", "Restart the camera or its encoder channel."),
    "dark": ("Picture too dark", "画面过暗", "Check the lighting, exposure and IR illuminator."),
    "bright": ("Picture too bright", "画面过亮", "Check exposure, backlight and sunlight glare."),
    "blur": ("Picture blurred", "画面模糊", "Refocus the lens and clean the window or dome."),
    "noise": (
        "Picture noisy",
        "画面噪声",
        "Check gain settings, lighting and the cable shielding.",
    ),
    "colour_cast": (
        "Colour cast",
        "画面偏色",
        "Check white balance and the colour cable (BNC/encoder).",
    ),
    "moved": (
        "Camera moved or scene changed",
        "画面移位",
        "Restore the camera's aim, or re-learn the baseline if the move was intended.",
    ),
}


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one check on one frame.

    ``score`` is the measured value and ``threshold`` its limit: with ``limit == "max"``
    the check fails when ``score > threshold``, with ``"min"`` when ``score < threshold``.
    ``masked_by`` names an earlier failing check that explains this failure (only the
    unmasked failures are root causes). ``evaluated`` is false when the check could not
    run (for example frozen detection with a single frame); such a finding is ok.
    """

    check: str
    ok: bool
    score: float
    threshold: float
    limit: Literal["max", "min"]
    message_en: str
    message_zh: str
    fix: str | None = None
    masked_by: str | None = None
    evaluated: bool = True
    details: dict[str, float] = field(default_factory=dict)

    @property
    def is_fault(self) -> bool:
        """A failure that is a root cause rather than a side effect of another failure."""
        return not self.ok and self.masked_by is None


def faults(findings: Sequence[Finding]) -> list[Finding]:
    """The root-cause failures among ``findings``."""
    return [f for f in findings if f.is_fault]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits for the checks; relative ones are multiples of the baseline's value."""

    signal_loss_area: float = 0.5  # fraction of the view a uniform coloured card may cover
    black_level: float = 30.0  # grey level the brightest 3 % of pixels must reach
    covered_area: float = 0.5  # fraction of the baseline's textured area that went flat
    frozen_change: float = 0.005  # fraction of the view that must change between frames
    dark_ratio: float = 0.45  # of the baseline mean brightness
    dark_abs: float = 25.0
    bright_gain: float = 0.55  # fraction of the headroom above the baseline mean
    bright_abs: float = 235.0
    blur_ratio: float = 0.4  # of the baseline sharpness
    noise_ratio: float = 2.0  # of the baseline noise estimate
    colour_shift: float = 14.0  # Lab a/b distance (8-bit Lab units)
    moved_shift: float = 0.05  # displacement of the view as a fraction of its width


# ---------------------------------------------------------------------------- checks


def _finding(
    check: str,
    score: float,
    threshold: float,
    limit: Literal["max", "min"],
    *,
    evaluated: bool = True,
    details: dict[str, float] | None = None,
) -> Finding:
    ok = not evaluated or (score <= threshold if limit == "max" else score >= threshold)
    en, zh, fix = _MESSAGES[check]
    return Finding(
        check=check,
        ok=ok,
        score=score,
        threshold=threshold,
        limit=limit,
        message_en=en,
        message_zh=zh,
        fix=None if ok else fix,
        evaluated=evaluated,
        details=details or {},
    )


def _check_signal_loss(p: Prepared, base: Baseline, th: Thresholds) -> Finding:
    limit = max(th.signal_loss_area, min(0.9, base.stats.card + 0.3))
    return _finding("signal_loss", p.stats.card, limit, "max")


def _check_black(p: Prepared, base: Baseline, th: Thresholds) -> Finding:
    # The brightest few percent ignore the burned-in clock, which stays on a black picture.
    limit = min(th.black_level, 0.5 * base.stats.p_high)
    return _finding(
        "black", p.stats.p_high, limit, "min", details={"mean": p.stats.mean, "std": p.stats.std}
    )


def _check_covered(p: Prepared, base: Baseline, th: Thresholds) -> Finding:
    # Blocks that had texture when the camera was good and are now flat. A relative floor
    # keeps a merely darker picture (texture scaled down, not gone) from counting.
    textured = base.block_std >= 6.0
    n_textured = int(np.count_nonzero(textured))
    if n_textured == 0:
        return _finding("covered", 0.0, th.covered_area, "max", evaluated=False)
    flat = p.block_std < np.maximum(2.5, 0.12 * base.block_std)
    lost = float(np.count_nonzero(flat & textured)) / n_textured
    details = {
        "edge_density": p.stats.edge_density,
        "edge_density_ratio": p.stats.edge_density / max(base.stats.edge_density, 1e-6),
        "entropy": p.stats.entropy,
        "entropy_drop": base.stats.entropy - p.stats.entropy,
    }
    return _finding("covered", lost, th.covered_area, "max", details=details)


def _check_frozen(greys: Sequence[NDArray[np.uint8]], base: Baseline, th: Thresholds) -> Finding:
    limit = th.frozen_change
    if not math.isnan(base.activity):
        # A camera whose good picture barely changes (still scene, strong noise filter)
        # gets a lower bar, but never below what a burned-in clock alone changes.
        limit = min(limit, max(0.0015, 0.25 * base.activity))
    if len(greys) < 2:
        return _finding("frozen", 1.0, limit, "min", evaluated=False)
    changes = [changed_fraction(a, b) for a, b in itertools.pairwise(greys)]
    # The median ignores one odd pair, such as a key-frame refresh of a stuck stream.
    score = float(np.median(changes))
    return _finding("frozen", score, limit, "min", details={"pairs": float(len(changes))})


def _check_dark(p: Prepared, base: Baseline, th: Thresholds) -> Finding:
    limit = max(th.dark_abs, th.dark_ratio * base.stats.mean)
    return _finding("dark", p.stats.mean, limit, "min")


def _check_bright(p: Prepared, base: Baseline, th: Thresholds) -> Finding:
    limit = min(th.bright_abs, base.stats.mean + th.bright_gain * (255.0 - base.stats.mean))
    return _finding("bright", p.stats.mean, limit, "max")


def _check_blur(p: Prepared, base: Baseline, th: Thresholds) -> Finding:
    ratio = p.stats.sharpness / max(base.stats.sharpness, 1e-6)
    details = {"sharpness": p.stats.sharpness, "laplacian_var": p.stats.laplacian_var}
    return _finding("blur", ratio, th.blur_ratio, "min", details=details)


def _check_noise(p: Prepared, base: Baseline, th: Thresholds) -> Finding:
    ratio = p.stats.noise / max(base.stats.noise, 0.5)
    return _finding("noise", ratio, th.noise_ratio, "max", details={"sigma": p.stats.noise})


def _check_colour_cast(p: Prepared, base: Baseline, th: Thresholds) -> Finding:
    da = p.stats.lab_a - base.stats.lab_a
    db = p.stats.lab_b - base.stats.lab_b
    details = {"delta_a": da, "delta_b": db}
    return _finding("colour_cast", math.hypot(da, db), th.colour_shift, "max", details=details)


def _check_moved(p: Prepared, base: Baseline, th: Thresholds) -> Finding:
    shift, inliers, method = _estimate_shift(p.grey, base)
    details = {"inliers": float(inliers), "method": method}
    return _finding("moved", shift, th.moved_shift, "max", details=details)


def _estimate_shift(grey: NDArray[np.uint8], base: Baseline) -> tuple[float, int, float]:
    """How far the view moved from the reference, as a fraction of its width.

    Returns (displacement, inlier matches, method) where method is 1 for feature
    matching, 2 for phase correlation and 0 when the reference was not found at all
    (displacement 1.0).
    """
    w, h = base.width, base.height
    if len(base.descriptors) >= 8:
        pts, des = features(grey)
        if len(des) >= 8:
            matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
            pairs = matcher.knnMatch(des, base.descriptors, k=2)
            good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
            if len(good) >= 10:
                src = base.keypoints[[m.trainIdx for m in good]]
                dst = pts[[m.queryIdx for m in good]]
                matrix, mask = cv2.estimateAffinePartial2D(
                    src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0
                )
                inliers = int(mask.sum()) if mask is not None else 0
                if matrix is not None and inliers >= 10:
                    corners = np.array(
                        [[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1], [w / 2, h / 2, 1]], np.float64
                    )
                    src_c = corners[:, :2]
                    moved = corners @ matrix.T
                    disp = float(np.linalg.norm(moved - src_c, axis=1).max()) / w
                    return disp, inliers, 1.0
    # Too few features (soft or noisy picture): fall back to phase correlation, which
    # sees a shift but not a rotation.
    ref = base.reference.astype(np.float32)
    cur = grey.astype(np.float32)
    if cur.shape != ref.shape:
        cur = np.asarray(cv2.resize(cur, (w, h), interpolation=cv2.INTER_AREA), np.float32)
    window = _hanning(h, w)
    (dx, dy), response = cv2.phaseCorrelate(ref, cur, window)
    # A matching view peaks near 0.5; a black or covered one still gives spurious peaks
    # around 0.1, which must not pass for a measured move.
    if response >= 0.25:
        return math.hypot(dx, dy) / w, 0, 2.0
    return 1.0, 0, 0.0


def _hanning(h: int, w: int) -> NDArray[np.float32]:
    key = (h, w)
    cache: dict[tuple[int, int], NDArray[np.float32]] = getattr(_local, "hanning", {})
    if key not in cache:
        cache[key] = np.asarray(cv2.createHanningWindow((w, h), cv2.CV_32F), np.float32)
        _local.hanning = cache
    return cache[key]


def _mask(findings: list[Finding]) -> list[Finding]:
    by_name = {f.check: f for f in findings}
    causes: list[str] = []
    out: list[Finding] = []
    for name in CHECKS:
        f = by_name[name]
        # A move measured from matched features is real whatever else is wrong; only
        # "reference not found" can be a side effect of a poor picture.
        measured_move = name == "moved" and f.details.get("method", 0.0) != 0.0
        if not f.ok:
            cause = None
            if not measured_move:
                cause = next((c for c in causes if name in _CONSEQUENCES[c]), None)
            if cause is not None:
                f = replace(f, masked_by=cause)
            else:
                causes.append(name)
        out.append(f)
    return out


def _no_signal() -> list[Finding]:
    out = [_finding("signal_loss", 1.0, 0.5, "max", details={"frames": 0.0})]
    for name in CHECKS[1:]:
        out.append(_finding(name, 0.0, 0.0, "max", evaluated=False))
    return out


def _run(
    p: Prepared, earlier: Sequence[NDArray[np.uint8]], base: Baseline, th: Thresholds
) -> list[Finding]:
    """Every check on ``p``; ``earlier`` are the grey pictures of the frames before it."""
    findings = [
        _check_signal_loss(p, base, th),
        _check_black(p, base, th),
        _check_covered(p, base, th),
        _check_frozen([*earlier, p.grey], base, th),
        _check_dark(p, base, th),
        _check_bright(p, base, th),
        _check_blur(p, base, th),
        _check_noise(p, base, th),
        _check_colour_cast(p, base, th),
        _check_moved(p, base, th),
    ]
    return _mask(findings)


def check_frame(
    frame: Frame | None,
    baseline: Baseline,
    previous_frames: Sequence[Frame] = (),
    thresholds: Thresholds | None = None,
) -> list[Finding]:
    """Run every check on ``frame`` and return one finding per check, in ``CHECKS`` order.

    ``previous_frames`` (oldest first) lets the frozen check compare; without them it is
    reported as not evaluated. ``frame=None`` means no frame could be read at all.
    """
    th = thresholds or Thresholds()
    if frame is None:
        return _no_signal()
    size = (baseline.width, baseline.height)
    earlier = [grey_picture(f, size) for f in previous_frames]
    return _run(prepare(frame, size), earlier, baseline, th)


@dataclass(frozen=True, slots=True)
class VideoReport:
    """Findings for the latest frame of a series, with the measured frame rate."""

    findings: list[Finding]
    frames: int
    fps: float | None

    @property
    def faults(self) -> list[Finding]:
        return faults(self.findings)


class VideoChecker:
    """Checks a camera's frames as they arrive, keeping a short window for frozen detection.

    Not thread-safe: give each camera its own checker and feed it from one thread at a time.
    """

    def __init__(
        self,
        baseline: Baseline,
        *,
        window: int = 5,
        thresholds: Thresholds | None = None,
    ) -> None:
        if window < 2:
            raise ValueError("window must hold at least two frames")
        self.baseline = baseline
        self.thresholds = thresholds or Thresholds()
        # Only the grey pictures of earlier frames are kept: the frozen check needs no more.
        self._greys: deque[NDArray[np.uint8]] = deque(maxlen=window)
        self._times: deque[float] = deque(maxlen=window)

    def reset(self) -> None:
        """Forget the window, e.g. after a reconnect."""
        self._greys.clear()
        self._times.clear()

    def add(self, frame: Frame | None, timestamp: float | None = None) -> VideoReport:
        """Check one frame (``None`` if none could be read) and return the report."""
        if frame is None:
            self.reset()
            return VideoReport(findings=_no_signal(), frames=0, fps=None)
        size = (self.baseline.width, self.baseline.height)
        p = prepare(frame, size)
        earlier = list(self._greys)
        if len(earlier) == self._greys.maxlen:
            del earlier[0]  # the oldest leaves the window with this frame
        self._greys.append(p.grey)
        if timestamp is not None:
            self._times.append(timestamp)
        findings = _run(p, earlier, self.baseline, self.thresholds)
        return VideoReport(findings=findings, frames=len(self._greys), fps=self._fps())

    def check_series(
        self, frames: Sequence[Frame], timestamps: Sequence[float] | None = None
    ) -> VideoReport:
        """Check a burst of frames (oldest first); the report is for the last one."""
        if timestamps is not None and len(timestamps) != len(frames):
            raise ValueError("need one timestamp per frame")
        self.reset()
        if not frames:
            return self.add(None)
        report: VideoReport | None = None
        size = (self.baseline.width, self.baseline.height)
        for i, frame in enumerate(frames):
            if i < len(frames) - 1:
                self._greys.append(grey_picture(frame, size))
                if timestamps is not None:
                    self._times.append(timestamps[i])
            else:
                report = self.add(frame, None if timestamps is None else timestamps[i])
        assert report is not None
        return report

    def _fps(self) -> float | None:
        if len(self._times) < 2:
            return None
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else None
