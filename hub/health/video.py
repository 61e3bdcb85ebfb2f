"""Video checks for the health system: read the camera's streams, judge the picture, learn a
baseline.

One check does two jobs, each with the least decoding it needs:

- *measure* the main stream (the one recorded, the one the frame-rate and resolution rules
  are about): codec, picture size and frame rate from the stream itself, over a few seconds of
  packets, with nothing decoded; compared with what ONVIF's encoder configuration claims;
- *look at* the picture: from the sub-stream where the camera has one (a second, smaller
  profile, as video-quality diagnosis products do), key frames only, a GOP apart, shrunk to
  the checks' working width as they are decoded; else from the main stream (the same read as
  the measurement), else HTTP MJPEG, else a few snapshots spaced far enough apart to tell a
  frozen picture from a live one.

A picture source that fails is tried last for the next ``SOURCE_RETRY_CHECKS`` checks, then
first again. A camera without a baseline is first *screened* with absolute limits; only a
picture that passes becomes its baseline. A stream that cannot be opened is never a passing
check: the outcome carries the reason, the rules say ``unknown`` and an authentication refusal
is reported as such, naming the stream.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from adapters.errors import AdapterError, AuthFailed
from adapters.onvif.driver import OnvifCamera, ProfileSummary
from adapters.onvif.grab import grab_snapshot
from adapters.onvif.stream import Decode, StreamSample, sample_stream
from adapters.onvif.video import WORK_WIDTH, Baseline, Finding, VideoChecker, learn_baseline
from hub.health.results import Problem

log = logging.getLogger(__name__)

Frame = NDArray[np.uint8]

MEASURE_S: Final = 3.0
"""Seconds of the main stream's packets the frame rate is measured over (after the burst)."""
KEY_FRAMES: Final = 3
"""Key frames decoded for a check: two GOPs of a running picture for the frozen check."""
LEARN_FRAMES: Final = 8
LEARN_SPACING_S: Final = 0.4
SNAPSHOTS: Final = 3
SNAPSHOT_SPACING_S: Final = 1.0
"""Snapshots closer than this cannot tell a frozen picture from a slowly changing one."""
SOURCES: Final = ("rtsp_sub", "rtsp_main", "http", "snapshot")
"""Picture sources, best first."""
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
    "stream_stalled": (
        "视频流中断（已建立连接但无数据）",
        "Video stream stalls (opened, then no data)",
        "Restart the camera's encoder channel; check its load and the network.",
    ),
    "no_key_frame": (
        "视频流长时间无关键帧",
        "No key frame in the video stream",
        "Set the encoder's I-frame interval (GOP) to about 2 s (50 frames at 25 fps).",
    ),
    "codec_mismatch": (
        "码流编码格式与 ONVIF 配置不符",
        "Stream codec differs from the ONVIF encoder setting",
        "Check the encoder settings on the camera (smart codec, profile); update its firmware.",
    ),
    "resolution_mismatch": (
        "码流分辨率与 ONVIF 配置不符",
        "Stream resolution differs from the ONVIF encoder setting",
        "Check the encoder settings on the camera; update its firmware.",
    ),
}

_CODECS: Final = {"h264": "H264", "hevc": "H265", "mjpeg": "JPEG", "mpeg4": "MPEG4"}
"""FFmpeg's codec names → ONVIF's ``Encoding`` values."""


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


def _item(check: str, score: float, threshold: float, ok: bool) -> dict[str, Any]:
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
        _item("signal_loss", st.card, SCREEN_CARD, st.card <= SCREEN_CARD),
        _item("black", st.p_high, SCREEN_BLACK, st.p_high >= SCREEN_BLACK),
    ]
    root = not all(i["ok"] for i in items)
    covered = _item("covered", flat, SCREEN_FLAT, flat <= SCREEN_FLAT)
    if root and not covered["ok"]:
        covered["masked_by"] = next(i["check"] for i in items if not i["ok"])
    items.append(covered)
    if baseline.frames >= 3 and not np.isnan(baseline.activity):
        frozen = _item(
            "frozen", baseline.activity, SCREEN_FROZEN, baseline.activity >= SCREEN_FROZEN
        )
        if not frozen["ok"] and not all(i["ok"] for i in items):
            frozen["masked_by"] = next(i["check"] for i in items if not i["ok"])
        items.append(frozen)
    return items


def stream_findings(sample: StreamSample, profile: ProfileSummary | None) -> list[dict[str, Any]]:
    """What the main stream itself shows: stalls, missing key frames, and a codec or size
    other than the one ONVIF's encoder configuration claims."""
    out: list[dict[str, Any]] = []
    if sample.stalled is not None:
        # A live stream that stops delivering within seconds of PLAY is broken, whatever
        # arrived before it stopped.
        item = _item("stream_stalled", float(sample.packets), 0.0, False)
        item["detail"] = f"{sample.url}: {sample.stalled} after {sample.packets} packets"
        out.append(item)
        if sample.rate is None:
            return out
    if sample.packets and sample.rate is not None and sample.key_frames == 0:
        item = _item("no_key_frame", 0.0, 1.0, False)
        item["detail"] = f"{sample.url}: no key frame in {sample.read_s:.1f} s"
        out.append(item)
    if profile is None:
        return out
    if sample.codec and profile.encoding:
        claimed = profile.encoding.upper().replace(".", "")
        measured = _CODECS.get(sample.codec, sample.codec.upper())
        item = _item("codec_mismatch", 0.0, 0.0, claimed == measured)
        item["detail"] = f"stream {measured}, ONVIF {claimed}"
        out.append(item)
    if sample.width and sample.height and profile.width and profile.height:
        same = (sample.width, sample.height) == (profile.width, profile.height)
        item = _item("resolution_mismatch", 0.0, 0.0, same)
        item["detail"] = (
            f"stream {sample.width}x{sample.height}, ONVIF {profile.width}x{profile.height}"
        )
        out.append(item)
    return out


def video_problems(findings: Sequence[dict[str, Any]]) -> list[Problem]:
    """The root-cause failures among ``findings``, as problems that degrade the camera."""
    out = []
    for f in findings:
        if f.get("ok") is False and not f.get("masked_by"):
            loss = f["check"] in ("signal_loss", "stream_stalled")
            detail = f.get("detail")
            out.append(
                Problem(
                    f"video.{f['check']}",
                    str(f["message_zh"]) + (f"（{detail}）" if detail else ""),
                    str(f["message_en"]) + (f" ({detail})" if detail else ""),
                    str(f.get("fix") or ""),
                    "fault.video_loss" if loss else "fault.video_quality",
                )
            )
    return out


def unavailable_problem(outcome: VideoOutcome) -> Problem | None:
    """Why the picture could not be looked at, or the main stream not measured, as a
    problem (None when both were)."""
    error, error_type = outcome.error, outcome.error_type
    if error is None:
        error, error_type = outcome.stream_error, outcome.stream_error_type
    return stream_problem(error, error_type)


def stream_problem(error: str | None, error_type: str | None) -> Problem | None:
    """A stream that cannot be opened (``error``), as a problem: a refused login names the
    stream and asks for its credentials; anything else asks for the RTSP service."""
    if error is None:
        return None
    if error_type == "AuthFailed":
        return Problem(
            "video.stream_auth",
            f"视频流拒绝登录：{error}",
            f"video stream refused the credentials: {error}",
            "Check the camera's user name and password, and that this user may view the "
            "stream (some cameras keep separate RTSP users).",
            "fault.video_loss",
        )
    return Problem(
        "video.unavailable",
        f"无法读取视频：{error}",
        f"video cannot be read: {error}",
        "Check that the camera's RTSP service is enabled and its port reachable from the hub.",
        "fault.video_loss",
    )


@dataclass(slots=True)
class VideoOutcome:
    findings: list[dict[str, Any]]
    fps_measured: float | None = None
    """The main stream's frame rate as delivered (None when it could not be measured)."""
    frames: int = 0
    source: str | None = None
    """Where the picture was judged from: rtsp_sub, rtsp_main, http or snapshot."""
    learned: Baseline | None = None
    """A baseline learned from this check, to be stored."""
    error: str | None = None
    """Why no picture could be judged (then ``findings`` holds only stream findings)."""
    error_type: str | None = None
    stream: dict[str, Any] = field(default_factory=dict)
    """The main stream as measured: codec, width, height, fps by timestamps and arrival."""
    stream_error: str | None = None
    """Why the main stream could not be measured, when it could not."""
    stream_error_type: str | None = None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _stream_detail(sample: StreamSample) -> dict[str, Any]:
    rate = sample.rate
    return {
        "url": sample.url,
        "transport": sample.transport,
        "codec": _CODECS.get(sample.codec or "", sample.codec),
        "width": sample.width,
        "height": sample.height,
        "fps_timestamps": _rounded(rate.by_timestamps) if rate else None,
        "fps_arrival": _rounded(rate.by_arrival) if rate else None,
        "window_s": None if rate is None else round(rate.window_s, 2),
    }


@dataclass(slots=True)
class _Picture:
    frames: list[Frame]
    times: list[float]
    spacing_ok: bool = True
    """False when the frames are too close together to judge a frozen picture."""


@dataclass(slots=True)
class VideoProbe:
    """Video checks of one camera; keeps its baseline and which picture sources failed."""

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
    sub_uri: tuple[str, str] | None = None
    """(sub-profile token, its RTSP URI): asked once, not on every check."""

    async def run(
        self,
        camera: OnvifCamera,
        profile_token: str | None,
        rtsp_uri: str | None,
        snapshot_uri: str | None,
        *,
        within: float,
        executor: Executor | None = None,
        profiles: Sequence[ProfileSummary] = (),
    ) -> VideoOutcome:
        """Measure the main stream and judge the picture; never raises ``AdapterError``.

        ``profiles`` (main first) lets the picture come from a sub-stream and the stream be
        compared with its encoder settings. Blocking work runs in ``executor``.
        """
        deadline = time.monotonic() + within
        main = profiles[0] if profiles else None
        sub_token = _sub_profile(profiles)
        sub_uri: str | None = None
        if rtsp_uri and sub_token is not None:
            try:
                sub_uri = await self._sub_uri(camera, sub_token)
            except AdapterError as exc:
                log.debug("%s: no sub-stream URI: %s", self.device_id, exc.message)
        order = self._order(
            {
                "rtsp_sub": bool(sub_uri),
                "rtsp_main": bool(rtsp_uri),
                "http": profile_token is not None,
                "snapshot": bool(snapshot_uri),
            }
        )
        self.failed = {n: left - 1 for n, left in self.failed.items() if left > 1}
        measure: asyncio.Task[StreamSample | AdapterError] | None = None
        async with asyncio.TaskGroup() as tg:
            if rtsp_uri and sub_uri:
                # The main stream is only measured (no decoding) while the picture comes
                # from the sub-stream: two short reads side by side.
                measure = tg.create_task(self._try_read(rtsp_uri, deadline, executor))
            picture, source, errors, sample = await self._picture(
                order, camera, profile_token, rtsp_uri, sub_uri, snapshot_uri, deadline, executor
            )
        measured = sample if source == "rtsp_main" else None
        stream_error: AdapterError | None = errors.get("rtsp_main")
        if measure is not None:
            got = measure.result()
            if isinstance(got, AdapterError):
                stream_error = got
            else:
                measured, stream_error = got, None
        outcome = VideoOutcome([], source=source)
        if measured is not None:
            outcome.stream = _stream_detail(measured)
            outcome.fps_measured = measured.fps
            outcome.findings.extend(stream_findings(measured, main))
        elif stream_error is not None:
            outcome.stream_error = stream_error.message
            outcome.stream_error_type = type(stream_error).__name__
        if not rtsp_uri and source == "http" and sample is not None:
            # A camera with an HTTP stream and no RTSP one: its rate is the only one there is.
            outcome.fps_measured = sample.fps
        if picture is None:
            reasons = "; ".join(f"{n}: {e.message}" for n, e in errors.items())
            auth = next((e for e in errors.values() if isinstance(e, AuthFailed)), None)
            first = auth or stream_error or next(iter(errors.values()), None)
            outcome.error = (first.message if first else None) or reasons or "no picture source"
            outcome.error_type = type(first).__name__ if first else None
            if reasons:
                log.info("%s: picture not judged: %s", self.device_id, reasons)
            return outcome
        judge = functools.partial(self._judge, picture, outcome)
        return await asyncio.get_running_loop().run_in_executor(executor, judge)

    async def _try_read(
        self, uri: str, deadline: float, executor: Executor | None
    ) -> StreamSample | AdapterError:
        try:
            return await self._read(uri, "none", deadline, executor)
        except AdapterError as exc:
            return exc

    async def _sub_uri(self, camera: OnvifCamera, token: str) -> str:
        if self.sub_uri is None or self.sub_uri[0] != token:
            self.sub_uri = (token, await camera.get_stream_uri(token))
        return self.sub_uri[1]

    def _order(self, offered: dict[str, bool]) -> list[str]:
        names = [n for n in SOURCES if offered.get(n)]
        # Sources that failed lately go last: still tried when every other one fails.
        return [n for n in names if n not in self.failed] + [n for n in names if n in self.failed]

    def _failed(self, name: str) -> None:
        self.failed[name] = SOURCE_RETRY_CHECKS
        if name == "http":
            self.http_uri = None  # ask again: the camera may have changed it
        if name == "rtsp_sub":
            self.sub_uri = None

    async def _read(
        self,
        uri: str,
        decode: Decode,
        deadline: float,
        executor: Executor | None,
        *,
        learning: bool = False,
    ) -> StreamSample:
        left = deadline - time.monotonic()
        open_timeout = max(0.5, min(5.0, left / 4))
        return await sample_stream(
            uri,
            device_id=self.device_id,
            username=self.username,
            password=self.password,
            window_s=MEASURE_S,
            decode="all" if learning else decode,
            max_frames=LEARN_FRAMES if learning else KEY_FRAMES,
            spacing=LEARN_SPACING_S if learning else 0.0,
            # The checks look at WORK_WIDTH-wide pictures; shrinking as frames are decoded
            # keeps a sample to a few hundred kB.
            max_width=WORK_WIDTH,
            open_timeout=open_timeout,
            read_timeout=open_timeout,
            executor=executor,
        )

    async def _picture(
        self,
        order: list[str],
        camera: OnvifCamera,
        profile_token: str | None,
        rtsp_uri: str | None,
        sub_uri: str | None,
        snapshot_uri: str | None,
        deadline: float,
        executor: Executor | None,
    ) -> tuple[_Picture | None, str | None, dict[str, AdapterError], StreamSample | None]:
        errors: dict[str, AdapterError] = {}
        learning = self.baseline is None
        for name in order:
            if deadline - time.monotonic() <= 1.0:
                break
            try:
                if name == "snapshot":
                    assert snapshot_uri is not None
                    picture = await self._snapshots(snapshot_uri, deadline, executor)
                else:
                    uri: str | None = sub_uri if name == "rtsp_sub" else rtsp_uri
                    if name == "http":
                        assert profile_token is not None
                        uri = await self._http_uri(camera, profile_token, rtsp_uri)
                    assert uri is not None
                    sample = await self._read(uri, "key", deadline, executor, learning=learning)
                    picture = _Picture(sample.frames, sample.frame_times)
            except AdapterError as exc:
                log.debug("%s: picture source %s failed: %s", self.device_id, name, exc.message)
                errors[name] = exc
                self._failed(name)
                continue
            if picture.frames:
                self.failed.pop(name, None)
                return picture, name, errors, None if name == "snapshot" else sample
            self._failed(name)
        return None, None, errors, None

    async def _http_uri(self, camera: OnvifCamera, token: str, rtsp_uri: str | None) -> str:
        key = (token, rtsp_uri)
        if self.http_uri is None or self.http_uri[0] != key:
            self.http_uri = (key, await camera.get_stream_uri(token, protocol="HTTP"))
        return self.http_uri[1]

    async def _snapshots(
        self, snapshot_uri: str, deadline: float, executor: Executor | None
    ) -> _Picture:
        frames: list[Frame] = []
        times: list[float] = []
        for i in range(SNAPSHOTS):
            if i:
                # Back-to-back snapshots of a live picture can be identical (the camera
                # serves the same encoded JPEG for a while): space them out.
                wait = times[-1] + SNAPSHOT_SPACING_S - time.monotonic()
                if time.monotonic() + wait + 1.0 > deadline:
                    break
                await asyncio.sleep(max(0.0, wait))
            left = deadline - time.monotonic()
            frame = await grab_snapshot(
                snapshot_uri,
                device_id=self.device_id,
                username=self.username,
                password=self.password,
                timeout=max(0.5, min(5.0, left / 2)),
                max_width=WORK_WIDTH,
                executor=executor,
            )
            frames.append(frame)
            times.append(time.monotonic())
        gaps = [b - a for a, b in itertools.pairwise(times)]
        spaced = bool(gaps) and min(gaps) >= 0.9 * SNAPSHOT_SPACING_S
        return _Picture(frames, times, spacing_ok=spaced)

    def _judge(self, picture: _Picture, outcome: VideoOutcome) -> VideoOutcome:
        # Runs in a worker thread: OpenCV work must not block the event loop.
        frames = picture.frames
        outcome.frames = len(frames)
        if self.baseline is None:
            candidate = learn_baseline(frames)
            items = screen(candidate)
            if not picture.spacing_ok:
                items = [i for i in items if i["check"] != "frozen"]
            if self.learn and all(f["ok"] for f in items):
                outcome.learned = candidate
                self.baseline = candidate
            outcome.findings = items + outcome.findings
            return outcome
        checker = VideoChecker(self.baseline, window=max(2, len(frames)))
        report = checker.check_series(frames, picture.times)
        items = [finding_dict(f) for f in report.findings]
        if not picture.spacing_ok:
            items = [i for i in items if i["check"] != "frozen"]
        outcome.findings = items + outcome.findings
        return outcome


def _sub_profile(profiles: Sequence[ProfileSummary]) -> str | None:
    """The token of the smallest profile below the main one's size (the sub-stream)."""
    if len(profiles) < 2:
        return None
    main = profiles[0]
    main_area = (main.width or 0) * (main.height or 0)
    smaller = [
        p
        for p in profiles[1:]
        if p.width and p.height and (not main_area or p.width * p.height < main_area)
    ]
    if not smaller:
        return None
    return min(smaller, key=lambda p: (p.width or 0) * (p.height or 0)).token
