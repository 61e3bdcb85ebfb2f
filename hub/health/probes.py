"""One probe per device type; each returns a :class:`ProbeResult` and never raises for a
device problem. Every device call runs under the caller's ``within`` budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Any, Final, Protocol

from adapters.broadcast import BroadcastDriver
from adapters.onvif.driver import CameraProbe, OnvifCamera
from hub.config import AlarmPanel, BroadcastController, Camera, Compliance
from hub.health.results import ProbeResult, Problem, summarise
from hub.health.state import Level
from hub.health.video import (
    VideoOutcome,
    VideoProbe,
    stream_problem,
    unavailable_problem,
    video_problems,
)
from hub.memory import give_back

KEY_ROLES: Final = frozenset({"gate", "entrance", "finance_room"})
"""Roles whose cameras must identify faces: the higher minimum resolution applies."""

_CAMERA_FIX: Final = {
    "DeviceUnreachable": "Check the camera's power, network cable, IP address and port.",
    "AuthFailed": "Check the ONVIF user name and password in the config and on the camera.",
    "ClockRefused": "Set the camera's clock (enable NTP, point it at the hub's time server); "
    "ONVIF logins carry a timestamp the camera checks against its own clock.",
    "NotSupported": "Enable ONVIF (Profile S) on the camera or update its firmware.",
    "ProtocolViolation": "Update the camera firmware; check that the port is its ONVIF port.",
    "OnvifFault": "Check the camera's ONVIF settings and media profiles.",
}

_PORT_FIX: Final = (
    "Check that the port in the config is the camera's ONVIF port (not a web page or another "
    "service), and update the camera firmware."
)
_ANSWER_PROBLEM: Final[dict[str, tuple[str, str, str]]] = {
    "too_large": (
        "ONVIF 应答过大",
        "ONVIF answer too large",
        _PORT_FIX + " If the camera really sends answers this large (many channels), raise "
        "max_answer_bytes for it in the config.",
    ),
    "not_xml": (
        "ONVIF 应答不是格式正确的 XML",
        "ONVIF answer is not well-formed XML",
        "Update the camera firmware; check that nothing between the hub and the camera (a "
        "proxy, a faulty link) cuts its answers short.",
    ),
    "wrong_namespace": (
        "ONVIF 应答的 XML 命名空间错误",
        "ONVIF answer in the wrong XML namespace",
        _PORT_FIX,
    ),
    "not_soap": ("ONVIF 应答不是 SOAP 消息", "ONVIF answer is not a SOAP message", _PORT_FIX),
    "invalid": (
        "ONVIF 应答不符合协议",
        "ONVIF answer does not follow the protocol",
        _CAMERA_FIX["ProtocolViolation"],
    ),
}
"""(zh, en, fix) per ``ProtocolViolation.violation``."""


class SupervisionSource(Protocol):
    def supervision_state(self, account: str) -> Any: ...


def _elapsed(started: float) -> float:
    return time.monotonic() - started


# --- cameras ---------------------------------------------------------------------------------


def camera_problems(p: CameraProbe, cfg: Camera, th: Compliance) -> list[Problem]:
    """Problems with a camera that answered: clock, stream settings."""
    out: list[Problem] = []
    if p.clock_offset_s is not None and abs(p.clock_offset_s) > th.max_clock_offset_s:
        out.append(
            Problem(
                "clock",
                f"时钟偏差 {p.clock_offset_s:+.1f} 秒（允许 {th.max_clock_offset_s:g} 秒）",
                f"clock off by {p.clock_offset_s:+.1f} s (limit {th.max_clock_offset_s:g} s)",
                "Enable NTP on the camera and point it at the hub's time server.",
                "fault.clock",
            )
        )
    if not p.profiles:
        out.append(
            Problem(
                "profiles",
                "没有媒体配置（无视频流）",
                "no media profile (no video stream)",
                "Create a media profile with an H.264/H.265 encoder on the camera.",
            )
        )
        return out
    main = p.profiles[0]
    need = th.min_resolution_key if cfg.location.role in KEY_ROLES else th.min_resolution_other
    w, h = main.width, main.height
    if w is not None and h is not None and (w < need[0] or h < need[1]):
        out.append(
            Problem(
                "resolution",
                f"分辨率 {w}x{h} 低于 {need[0]}x{need[1]}",
                f"resolution {w}x{h} below {need[0]}x{need[1]}",
                "Raise the main stream's resolution in the camera's encoder settings.",
            )
        )
    if main.fps_limit is not None and main.fps_limit < th.min_fps:
        out.append(
            Problem(
                "fps_limit",
                f"编码帧率 {main.fps_limit:g} 低于 {th.min_fps:g}",
                f"encoder frame rate {main.fps_limit:g} below {th.min_fps:g}",
                "Set the main stream's frame rate limit to at least "
                f"{th.min_fps:g} fps in the encoder settings.",
            )
        )
    return out


def camera_result(
    p: CameraProbe,
    cfg: Camera,
    th: Compliance,
    at: datetime,
    video: VideoOutcome | None,
) -> ProbeResult:
    """Judge one camera probe (and its latest video check, if any).

    A camera whose answers break the protocol is degraded, not offline: it is there and
    answers, and the finding says what is wrong with the answers.
    """
    if p.error is not None and p.error_type == "ProtocolViolation":
        return _answer_problem(p, cfg, at)
    if p.error is not None:
        kind = p.error_type or "DeviceUnreachable"
        return ProbeResult(
            cfg.id,
            "camera",
            at,
            "failed",
            latency_s=p.latency_s,
            reason=f"{_plain(kind)}: {p.error}",
            fix=_CAMERA_FIX.get(kind, _CAMERA_FIX["DeviceUnreachable"]),
            detail={"error_type": kind}
            | ({"clock_offset_s": p.clock_offset_s} if p.clock_offset_s is not None else {}),
        )
    detail: dict[str, Any] = {"clock_offset_s": p.clock_offset_s}
    if p.profiles:
        main = p.profiles[0]
        if main.width is not None and main.height is not None:
            detail["resolution"] = [main.width, main.height]
        if main.fps_limit is not None:
            detail["fps_limit"] = main.fps_limit
        if main.encoding:
            detail["encoding"] = main.encoding
    for key in ("manufacturer", "model", "firmware", "stream_uri"):
        value = getattr(p, key)
        if value:
            detail[key] = value
    problems = camera_problems(p, cfg, th)
    stream = stream_problem(p.stream_error, p.stream_error_type)
    if stream is not None:
        detail["stream_error"] = p.stream_error
        problems.append(stream)
    if video is not None:
        seen = {x.check for x in problems}
        problems = [x for x in _video_facts(video, detail, th) if x.check not in seen] + problems
    reason, fix = summarise(problems)
    level: Level = "degraded" if any(not x.warning for x in problems) else "ok"
    return ProbeResult(
        cfg.id,
        "camera",
        at,
        level,
        latency_s=p.latency_s,
        reason=reason if level == "degraded" else "",
        fix=fix if problems else "",
        detail=detail,
        problems=problems,
    )


def _video_facts(video: VideoOutcome, detail: dict[str, Any], th: Compliance) -> list[Problem]:
    """Store what the video check found in ``detail``; return its problems."""
    detail["findings"] = video.findings
    if video.fps_measured is not None:
        detail["fps_measured"] = round(video.fps_measured, 2)
    if video.source:
        detail["video_source"] = video.source
    if video.stream:
        detail["stream"] = video.stream
    if video.error is not None:
        detail["video_error"] = video.error
    if video.stream_error is not None:
        detail["stream_error"] = video.stream_error
    problems = video_problems(video.findings)
    unavailable = unavailable_problem(video)
    if unavailable is not None:
        problems.append(unavailable)
    limit = th.min_fps * 0.9
    measured = video.fps_measured
    if measured is not None and measured < limit:
        problems.append(
            Problem(
                "fps_measured",
                f"实测帧率 {measured:.1f} 低于 {limit:g}",
                f"measured frame rate {measured:.1f} below {limit:g}",
                "Check the encoder's frame rate, the camera's load and the network bandwidth.",
                "fault.video_quality",
            )
        )
    return problems


def add_problems(result: ProbeResult, problems: list[Problem]) -> None:
    """Add ``problems`` to a camera's result: a non-warning degrades a camera that was ok."""
    if not problems:
        return
    result.problems.extend(problems)
    if result.level == "ok" and any(not p.warning for p in problems):
        result.level = "degraded"
    reason, fix = summarise(result.problems)
    if result.level == "degraded":
        result.reason = reason
    result.fix = fix


def events_unsupported(why: str) -> Problem:
    """The config relies on the camera's events and the camera has no Events service."""
    return Problem(
        "events",
        "配置要求摄像机事件（events: true），但摄像机没有 ONVIF 事件服务",
        "events: true in the config, but the camera offers no ONVIF Events service"
        + (f" ({why})" if why else ""),
        "Enable the camera's ONVIF event service (Profile S/T events), or set events: false "
        "for this camera if it really has none.",
    )


def subscription_findings(result: ProbeResult, status: Any) -> None:
    """Add what the camera's event subscription (its ``status``, or None) tells to ``result``:
    a service the camera never had is a problem (once, not retried as "lost"); a lost one a
    warning while the hub retries."""
    health = str(getattr(status, "health", ""))
    if result.level is None:
        return
    if health == "unsupported":
        why = getattr(status, "last_error", "") or ""
        add_problems(result, [events_unsupported(why)])
    if health in ("lost", "retrying"):
        result.problems.append(
            Problem(
                "events",
                "事件订阅中断",
                f"event subscription lost: {getattr(status, 'last_error', '') or ''}",
                "Check the camera's event service; the hub keeps retrying.",
                warning=True,
            )
        )


def _answer_problem(p: CameraProbe, cfg: Camera, at: datetime) -> ProbeResult:
    zh, en, fix = _ANSWER_PROBLEM.get(p.violation or "invalid", _ANSWER_PROBLEM["invalid"])
    problem = Problem("onvif_answer", f"{zh}：{p.error}", f"{en}: {p.error}", fix)
    return ProbeResult(
        cfg.id,
        "camera",
        at,
        "degraded",
        latency_s=p.latency_s,
        reason=problem.message_en,
        fix=fix,
        detail={"error_type": p.error_type, "violation": p.violation or "invalid"},
        problems=[problem],
    )


def _plain(error_type: str) -> str:
    return {
        "DeviceUnreachable": "unreachable",
        "AuthFailed": "authentication failed",
        "ClockRefused": "login refused: camera clock wrong",
        "NotSupported": "not supported",
        "ProtocolViolation": "protocol error",
        "OnvifFault": "ONVIF fault",
    }.get(error_type, error_type)


async def probe_camera_once(
    camera: OnvifCamera, *, within: float, previous: CameraProbe | None = None
) -> CameraProbe:
    """``camera.probe()`` under a budget, or ``camera.liveness(previous)`` when given the
    camera's last good full probe; a timeout becomes an unreachable probe."""
    try:
        async with asyncio.timeout(within):
            if previous is not None:
                return await camera.liveness(previous)
            return await camera.probe()
    except TimeoutError:
        return CameraProbe(
            camera.device_id,
            reachable=False,
            error=f"no answer within {within:g} s",
            error_type="DeviceUnreachable",
        )


async def check_video(
    video: VideoProbe,
    camera: OnvifCamera,
    probe: CameraProbe,
    *,
    within: float,
    executor: Executor,
) -> tuple[VideoOutcome, bytes | None]:
    """Look at a camera's picture (its first profile's stream, or its snapshot) with the
    latest good ``probe``; the outcome, and the baseline it learned as bytes (to be stored)
    or None. The outcome does not keep the learned baseline object itself."""
    outcome = await video.run(
        camera,
        probe.profiles[0].token if probe.profiles else None,
        probe.stream_uri,
        probe.snapshot_uri,
        within=within,
        executor=executor,
        profiles=probe.profiles,
    )
    loop = asyncio.get_running_loop()
    # The check's decoder and picture buffers were freed: hand them back to the system.
    await loop.run_in_executor(executor, give_back)
    learned = None
    if outcome.learned is not None:
        learned = await loop.run_in_executor(executor, outcome.learned.to_bytes)
        outcome.learned = None
    return outcome, learned


# --- alarm panels ----------------------------------------------------------------------------


def panel_result(source: SupervisionSource | None, cfg: AlarmPanel, at: datetime) -> ProbeResult:
    """An alarm panel's health is its supervision state at the receiver."""
    if source is None:
        return ProbeResult(
            cfg.id,
            "alarm_panel",
            at,
            None,
            reason="the alarm receiver is not running",
            fix="Start the hub (mallhub run); panels are only heard by a running receiver.",
            detail={"supervision": "unknown"},
        )
    status = source.supervision_state(cfg.account)
    if status is None:
        return ProbeResult(
            cfg.id, "alarm_panel", at, None, detail={"supervision": "unknown"}, reason="unknown"
        )
    detail: dict[str, Any] = {"supervision": status.state}
    if status.last_heard is not None:
        detail["last_heard"] = status.last_heard.isoformat()
    if status.state == "lost":
        return ProbeResult(
            cfg.id,
            "alarm_panel",
            at,
            "failed",
            reason="supervision lost: the panel has not reported within its interval",
            fix="Check the panel's power, network and its receiver address, port and account.",
            detail=detail,
            seen_at=status.last_heard,
        )
    if status.state == "unknown":
        fix = (
            "Set supervision_interval_s to the panel's periodic report interval."
            if cfg.supervision_interval_s is None
            else "Wait for the panel's periodic report, or check its receiver settings."
        )
        return ProbeResult(
            cfg.id,
            "alarm_panel",
            at,
            None,
            reason="not heard from yet",
            fix=fix,
            detail=detail,
        )
    return ProbeResult(cfg.id, "alarm_panel", at, "ok", detail=detail, seen_at=status.last_heard)


# --- broadcast -------------------------------------------------------------------------------


async def probe_broadcast(
    driver: BroadcastDriver, cfg: BroadcastController, at: datetime, *, within: float
) -> ProbeResult:
    started = time.monotonic()
    try:
        async with asyncio.timeout(within):
            status = await driver.status()
    except TimeoutError:
        return ProbeResult(
            cfg.id,
            "broadcast",
            at,
            "failed",
            latency_s=_elapsed(started),
            reason=f"unreachable: no answer within {within:g} s",
            fix="Check the broadcast controller's power, network and URL.",
            detail={"broadcast_ok": False},
        )
    detail: dict[str, Any] = {"broadcast_ok": status.reachable, "zones": dict(status.zones)}
    if not status.reachable:
        fix = (
            "Check the user name and password for the controller."
            if status.error_type == "AuthFailed"
            else "Check the broadcast controller's power, network and URL."
        )
        return ProbeResult(
            cfg.id,
            "broadcast",
            at,
            "failed",
            latency_s=status.latency_s,
            reason=f"{_plain(status.error_type or 'DeviceUnreachable')}: {status.error or ''}",
            fix=fix,
            detail=detail,
        )
    unknown = sorted(z.id for z in cfg.zones if status.zones and z.id not in status.zones)
    problems = []
    if unknown:
        problems.append(
            Problem(
                "zones",
                f"控制器不认识广播分区 {', '.join(unknown)}",
                f"the controller does not report zones {', '.join(unknown)}",
                "Check the zone targets in the config against the controller's zones.",
                "fault.broadcast",
                warning=True,
            )
        )
    _, fix = summarise(problems)
    return ProbeResult(
        cfg.id,
        "broadcast",
        at,
        "ok",
        latency_s=status.latency_s,
        reason="",
        fix=fix,
        detail=detail,
        problems=problems,
    )


# --- police link -----------------------------------------------------------------------------

OutboxStats = Callable[[], Awaitable[tuple[int, float | None]]]


async def police_detail(
    connected: bool,
    last_receipt_at: datetime | None,
    outbox_stats: OutboxStats,
    at: datetime,
    *,
    within: float,
) -> dict[str, Any]:
    """The police link's health facts: connected, outbox depth and age, last receipt."""
    detail: dict[str, Any] = {"connected": connected}
    try:
        async with asyncio.timeout(within):
            depth, age = await outbox_stats()
        detail["outbox_depth"] = depth
        detail["outbox_oldest_age_s"] = age
    except TimeoutError:
        detail["outbox_error"] = f"outbox query took longer than {within:g} s"
    if last_receipt_at is not None:
        detail["last_receipt_at"] = last_receipt_at.isoformat()
        detail["last_receipt_age_s"] = round((at - last_receipt_at).total_seconds(), 3)
    return detail
