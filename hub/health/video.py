"""Video checks for the health system: grab frames, judge them, learn a baseline.

A camera's frames come from its RTSP stream, else its HTTP (MJPEG) stream, else a few
snapshots. A source that fails is tried last for the next ``SOURCE_RETRY_CHECKS`` checks,
then first again, so a camera whose RTSP port is closed does not pay an RTSP open timeout on
every check, and one that went to snapshots after a passing stream fault comes back to the
stream (only a stream measures the frame rate). Frames are shrunk to the checks' working
width as they are read, in the caller's bounded executor. The picture is judged against
the camera's stored baseline. A camera without one is first *screened* with absolute limits
(no signal, black, covered, frozen); only a picture that passes the screen becomes its
baseline, so a camera installed with its lens cap on does not learn the cap as normal.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from adapters.errors import AdapterError
from adapters.onvif.driver import OnvifCamera
from adapters.onvif.grab import grab_snapshot, grab_stream_frames
from adapters.onvif.video import WORK_WIDTH, Baseline, Finding, VideoChecker, learn_baseline
from hub.health.results import Problem

log = logging.getLogger(__name__)

Frame = NDArray[np.uint8]

FRAMES: Final = 8
GRAB_SECONDS: Final = 2.0
SNAPSHOTS: Final = 3
SOURCES: Final = ("rtsp", "http", "snapshot")
"""Frame sources, best first: a stream shows the frame rate, snapshots do not."""
SOURCE_RETRY_CHECKS: Final = 12
"""A source that failed is tried last for this many checks (an hour at the default video
interval), then first again."""

# Absolute limits for a picture with no baseline yet (measured on working-size grey frames).
SCREEN_CARD: Final = 0.5  # a uniform coloured "no video" card covers more than this
SCREEN_BLACK: Final = 30.0  # the brightest 3 % stay below this grey level
SCREEN_FLAT: Final = 0.6  # this fraction of 20x20 blocks has no texture at all
SCREEN_FROZEN: Final = 0.0015  # less than this fraction of the view changes between frames

_TEXT: Final[dict[str, tuple[str, str, str]]] = {
    "signal_loss": (
        "无视频信号",
        "No video signal",
        "Check the camera's power, cable and encoder.",
    ),
    "black": ("黑屏", "Black picture", "Check the lens cap, iris and video output."),
    "covered": ("画面遮挡", "View covered or blocked", "Remove what covers the lens."),
    "frozen": ("画面冻结", "Picture frozen", "Restart the camera or its encoder channel."),
}


def finding_dict(f: Finding) -> dict[str, Any]:
    """A finding as stored in ``device_state.detail.findings`` (the compliance contract)."""
    return {
        "check": f.check,
        "ok": f.ok,
        "score": round(float(f.score), 4),
        "threshold": round(float(f.threshold), 4),
        "message_zh": f.message_zh,
        "message_en": f.message_en,
        "fix": f.fix,
        "masked_by": f.masked_by,
    }


def _screen_item(check: str, score: float, threshold: float, ok: bool) -> dict[str, Any]:
    zh, en, fix = _TEXT[check]
    return {
        "check": check,
        "ok": ok,
        "score": round(score, 4),
        "threshold": threshold,
        "message_zh": zh,
        "message_en": en,
        "fix": None if ok else fix,
        "masked_by": None,
    }


def screen(baseline: Baseline) -> list[dict[str, Any]]:
    """Absolute checks on a candidate baseline (learned from the frames just grabbed)."""
    st = baseline.stats
    flat = float(np.count_nonzero(baseline.block_std < 2.5)) / max(baseline.block_std.size, 1)
    items = [
        _screen_item("signal_loss", st.card, SCREEN_CARD, st.card <= SCREEN_CARD),
        _screen_item("black", st.p_high, SCREEN_BLACK, st.p_high >= SCREEN_BLACK),
    ]
    root = not all(i["ok"] for i in items)
    covered = _screen_item("covered", flat, SCREEN_FLAT, flat <= SCREEN_FLAT)
    if root and not covered["ok"]:
        covered["masked_by"] = next(i["check"] for i in items if not i["ok"])
    items.append(covered)
    if baseline.frames >= 3 and not np.isnan(baseline.activity):
        frozen = _screen_item(
            "frozen", baseline.activity, SCREEN_FROZEN, baseline.activity >= SCREEN_FROZEN
        )
        if not frozen["ok"] and not all(i["ok"] for i in items):
            frozen["masked_by"] = next(i["check"] for i in items if not i["ok"])
        items.append(frozen)
    return items


def no_signal_findings(reason: str) -> list[dict[str, Any]]:
    item = _screen_item("signal_loss", 1.0, SCREEN_CARD, False)
    item["detail"] = reason
    return [item]


def video_problems(findings: Sequence[dict[str, Any]]) -> list[Problem]:
    """The root-cause failures among ``findings``, as problems that degrade the camera."""
    out = []
    for f in findings:
        if f.get("ok") is False and not f.get("masked_by"):
            kind = "fault.video_loss" if f["check"] == "signal_loss" else "fault.video_quality"
            out.append(
                Problem(
                    f"video.{f['check']}",
                    str(f["message_zh"]),
                    str(f["message_en"]),
                    str(f.get("fix") or ""),
                    kind,
                )
            )
    return out


@dataclass(slots=True)
class VideoOutcome:
    findings: list[dict[str, Any]]
    fps_measured: float | None = None
    frames: int = 0
    source: str | None = None
    learned: Baseline | None = None
    """A baseline learned from this check, to be stored."""
    error: str | None = None


@dataclass(slots=True)
class VideoProbe:
    """Video checks of one camera; keeps its baseline and which frame sources failed."""

    device_id: str
    username: str | None
    password: str | None = field(repr=False)
    baseline: Baseline | None = None
    learn: bool = True
    """Learn a baseline from a picture that passes the screen (the service does, check not)."""
    failed: dict[str, int] = field(default_factory=dict)
    """Source → checks left during which it is tried only after the others."""
    http_uri: tuple[tuple[str, str | None], str] | None = None
    """((profile token, RTSP URI), HTTP stream URI): asked once, not on every check."""

    async def run(
        self,
        camera: OnvifCamera,
        profile_token: str | None,
        rtsp_uri: str | None,
        snapshot_uri: str | None,
        *,
        within: float,
        executor: Executor | None = None,
    ) -> VideoOutcome:
        """Grab frames and judge them; never raises ``AdapterError`` (it is in ``error``).

        Blocking work (stream reads, decoding, the checks) runs in ``executor`` (the event
        loop's default one if None).
        """
        deadline = time.monotonic() + within
        frames: list[Frame] = []
        times: list[float] = []
        fps: float | None = None
        errors: list[str] = []
        source: str | None = None
        order = self._order(rtsp_uri, snapshot_uri)
        self.failed = {n: left - 1 for n, left in self.failed.items() if left > 1}
        for name in order:
            left = deadline - time.monotonic()
            if left <= 0.5:
                errors.append(f"{name}: no time left")
                break
            try:
                frames, times, fps = await self._grab(
                    name, camera, profile_token, rtsp_uri, snapshot_uri, left, executor
                )
            except AdapterError as exc:
                errors.append(f"{name}: {exc.message}")
                self._failed(name)
                continue
            if frames:
                source = name
                self.failed.pop(name, None)
                break
            self._failed(name)
        if not frames:
            reason = "; ".join(errors) or "no frame source"
            return VideoOutcome(no_signal_findings(reason), error=reason)
        judge = functools.partial(self._judge, frames, times, fps, source)
        return await asyncio.get_running_loop().run_in_executor(executor, judge)

    def _order(self, rtsp_uri: str | None, snapshot_uri: str | None) -> list[str]:
        offered = {"rtsp": bool(rtsp_uri), "http": True, "snapshot": bool(snapshot_uri)}
        names = [n for n in SOURCES if offered[n]]
        # Sources that failed lately go last: still tried when every other one fails.
        return [n for n in names if n not in self.failed] + [n for n in names if n in self.failed]

    def _failed(self, name: str) -> None:
        self.failed[name] = SOURCE_RETRY_CHECKS
        if name == "http":
            self.http_uri = None  # ask again: the camera may have changed it

    async def _stream_uri(
        self, camera: OnvifCamera, profile_token: str, rtsp_uri: str | None
    ) -> str:
        key = (profile_token, rtsp_uri)
        if self.http_uri is None or self.http_uri[0] != key:
            self.http_uri = (key, await camera.get_stream_uri(profile_token, protocol="HTTP"))
        return self.http_uri[1]

    async def _grab(
        self,
        name: str,
        camera: OnvifCamera,
        profile_token: str | None,
        rtsp_uri: str | None,
        snapshot_uri: str | None,
        left: float,
        executor: Executor | None,
    ) -> tuple[list[Frame], list[float], float | None]:
        open_timeout = max(0.5, min(5.0, left / 3))
        if name == "snapshot":
            assert snapshot_uri is not None
            frames, times = [], []
            for _ in range(SNAPSHOTS):
                frame = await grab_snapshot(
                    snapshot_uri,
                    device_id=self.device_id,
                    username=self.username,
                    password=self.password,
                    timeout=open_timeout,
                    max_width=WORK_WIDTH,
                    executor=executor,
                )
                frames.append(frame)
                times.append(time.monotonic())
            return frames, times, None
        if name == "rtsp":
            assert rtsp_uri is not None
            uri = rtsp_uri
        else:
            if profile_token is None:
                return [], [], None
            uri = await self._stream_uri(camera, profile_token, rtsp_uri)
        duration = max(0.2, min(GRAB_SECONDS, left - open_timeout - 1.0))
        result = await grab_stream_frames(
            uri,
            device_id=self.device_id,
            n_frames=FRAMES,
            duration=duration,
            open_timeout=open_timeout,
            read_timeout=open_timeout,
            username=self.username,
            password=self.password,
            # The checks look at WORK_WIDTH-wide pictures; shrinking as frames are read
            # keeps a burst to a few hundred kB instead of 2.7 MB per 1280 x 720 frame.
            max_width=WORK_WIDTH,
            executor=executor,
        )
        return result.frames, result.timestamps, result.fps

    def _judge(
        self, frames: list[Frame], times: list[float], fps: float | None, source: str | None
    ) -> VideoOutcome:
        # Runs in a worker thread: OpenCV work must not block the event loop.
        if self.baseline is None:
            candidate = learn_baseline(frames)
            findings = screen(candidate)
            learned = None
            if self.learn and all(f["ok"] for f in findings):
                learned = candidate
                self.baseline = candidate
            return VideoOutcome(findings, fps, len(frames), source, learned)
        checker = VideoChecker(self.baseline, window=max(2, len(frames)))
        report = checker.check_series(frames, times)
        return VideoOutcome(
            [finding_dict(f) for f in report.findings], fps, len(frames), source, None
        )
