"""``mallhub check``: probe every selected device once, for technicians commissioning a site.

Cameras get the full probe (reachability, clock, encoder settings) and a video check (against
the baseline the hub learned, if its store is at hand, else the absolute screen). Broadcast
controllers are asked for their status. Alarm panels can only be heard by a running receiver:
their state is read from the hub's store when there is one. The police broker is checked for
reachability. Nothing is written anywhere.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TextIO

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from adapters.onvif.video import Baseline
from hub.config import AlarmPanel, BroadcastController, Camera, Location, SiteConfig
from hub.drivers import broadcast_driver, camera_driver
from hub.health.commissioning import commissioning_problems
from hub.health.probes import (
    add_problems,
    camera_result,
    probe_broadcast,
    probe_camera_once,
)
from hub.health.results import ProbeResult
from hub.health.video import VideoProbe
from hub.store import create_engine
from hub.store.models import DeviceState
from hub.store.writer import iso, now_utc

STATE_OF_LEVEL: Final = {
    "ok": "online",
    "degraded": "degraded",
    "failed": "offline",
    None: "unknown",
}
FAILING: Final = frozenset({"offline", "degraded"})

Progress = Callable[[int, int, str], None]


class CheckError(Exception):
    """The selection or the environment does not allow a check (exit code 2)."""


@dataclass(slots=True)
class Row:
    device_id: str
    name: str
    type: str
    floor: str
    zone: str
    role: str | None
    required: bool
    state: str
    latency_ms: float | None = None
    clock_offset_s: float | None = None
    resolution: list[int] | None = None
    fps_limit: float | None = None
    fps_measured: float | None = None
    encoding: str | None = None
    """The codec ONVIF's encoder configuration claims."""
    stream: dict[str, Any] | None = None
    """The main stream as measured: codec, width, height, fps by timestamps and arrival."""
    video_source: str | None = None
    """Where the picture was judged from: rtsp_sub, rtsp_main, http or snapshot."""
    video_error: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    """Failing checks: {check, message_zh, message_en, fix, warning}."""
    reason: str = ""
    fix: str = ""

    @property
    def failing(self) -> bool:
        return self.required and self.state in FAILING


@dataclass(slots=True)
class Report:
    site_id: str
    checked_at: datetime
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(r.failing for r in self.rows)

    def as_json(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in self.rows:
            counts[r.state] = counts.get(r.state, 0) + 1
        return {
            "site_id": self.site_id,
            "checked_at": iso(self.checked_at),
            "ok": self.ok,
            "counts": counts,
            "failing": [r.device_id for r in self.rows if r.failing],
            "notes": self.notes,
            "devices": [asdict(r) for r in self.rows],
        }


def _row(
    device_id: str,
    name: str,
    dtype: str,
    loc: Location | None,
    required: bool,
    result: ProbeResult | None,
    state: str | None = None,
) -> Row:
    row = Row(
        device_id,
        name,
        dtype,
        loc.floor if loc else "-",
        loc.zone if loc else "-",
        loc.role if loc else None,
        required,
        state or (STATE_OF_LEVEL[result.level] if result else "unknown"),
    )
    if result is None:
        return row
    d = result.detail
    row.latency_ms = None if result.latency_s is None else round(result.latency_s * 1000.0, 1)
    row.clock_offset_s = d.get("clock_offset_s")
    row.resolution = d.get("resolution")
    row.fps_limit = d.get("fps_limit")
    row.fps_measured = d.get("fps_measured")
    row.encoding = d.get("encoding")
    row.stream = d.get("stream")
    row.video_source = d.get("video_source")
    row.video_error = d.get("video_error") or d.get("stream_error")
    row.manufacturer = d.get("manufacturer")
    row.model = d.get("model")
    row.firmware = d.get("firmware")
    row.findings = [p.as_dict() for p in result.problems]
    row.reason = result.reason
    row.fix = result.fix
    return row


# --- the check -------------------------------------------------------------------------------


def select_devices(
    config: SiteConfig, device: str | None, floor: str | None
) -> tuple[list[Camera], list[AlarmPanel], list[BroadcastController]]:
    """The devices to check; raises CheckError when the selection matches nothing."""

    def wanted(dev_id: str, loc: Location, children: list[str] | None = None) -> bool:
        if device is not None and dev_id != device and device not in (children or []):
            return False
        return floor is None or loc.floor == floor

    d = config.devices
    cams = [c for c in d.cameras if wanted(c.id, c.location)]
    panels = [
        p
        for p in d.alarm_panels
        if wanted(p.id, p.location, [b.id for b in p.zones])
        or (
            device is None and floor is not None and any(b.location.floor == floor for b in p.zones)
        )
    ]
    ctrls = [b for b in d.broadcast if wanted(b.id, b.location)]
    if not (cams or panels or ctrls):
        what = f"device {device!r}" if device else f"floor {floor!r}"
        floors = sorted({loc.floor for loc in _locations(config)})
        hint = f" (floors: {', '.join(floors)})" if floor and not device else ""
        raise CheckError(f"no configured device matches {what}{hint}")
    return cams, panels, ctrls


def _locations(config: SiteConfig) -> list[Location]:
    d = config.devices
    locs = [c.location for c in d.cameras] + [b.location for b in d.broadcast]
    for p in d.alarm_panels:
        locs.append(p.location)
        locs += [b.location for b in p.zones]
    return locs


async def _stored_facts(config: SiteConfig) -> tuple[dict[str, DeviceState], dict[str, bytes], str]:
    """Device states and video baselines from the hub's store, if there is one."""
    from hub.health.store import load_baselines, load_states

    url = config.storage.url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not parsed.database or not await asyncio.to_thread(path.exists):
            return {}, {}, "no hub store found: panels unknown, video checked without baselines"
    engine = create_engine(url)
    try:
        states = await load_states(engine)
        baselines = await load_baselines(engine)
    except (SQLAlchemyError, OSError) as exc:
        return {}, {}, f"hub store not readable ({type(exc).__name__}): panels unknown"
    finally:
        await engine.dispose()
    return states, baselines, ""


async def _check_camera(
    config: SiteConfig, cfg: Camera, baseline: Baseline | None, video: bool
) -> ProbeResult:
    h = config.health
    driver = camera_driver(cfg, h.probe_timeout_s)
    try:
        at = now_utc()
        probe = await probe_camera_once(driver, within=h.probe_timeout_s)
        outcome = None
        if video and probe.error is None:
            vp = VideoProbe(
                cfg.id,
                cfg.username,
                cfg.password.get_secret_value() if cfg.password else None,
                baseline=baseline,
                learn=False,
            )
            outcome = await vp.run(
                driver,
                probe.profiles[0].token if probe.profiles else None,
                probe.stream_uri,
                probe.snapshot_uri,
                within=3 * h.probe_timeout_s,
                profiles=probe.profiles,
            )
        result = camera_result(probe, cfg, config.compliance, at, outcome)
        if probe.error is None:
            extra = await commissioning_problems(driver, cfg, probe, within=h.probe_timeout_s)
            add_problems(result, extra)
        return result
    finally:
        await driver.close()


async def _check_broadcast(config: SiteConfig, cfg: BroadcastController) -> ProbeResult:
    within = config.health.probe_timeout_s
    try:
        driver = broadcast_driver(cfg)
    except ValueError as exc:
        return ProbeResult(
            cfg.id, "broadcast", now_utc(), "failed", reason=str(exc), fix="Fix the options."
        )
    async with driver:
        return await probe_broadcast(driver, cfg, now_utc(), within=within)


async def _check_police(config: SiteConfig) -> ProbeResult:
    p = config.police
    started = asyncio.get_running_loop().time()
    within = config.health.probe_timeout_s
    try:
        async with asyncio.timeout(within):
            _, writer = await asyncio.open_connection(p.host, p.port)
        writer.close()
    except (OSError, TimeoutError) as exc:
        reason = f"broker {p.host}:{p.port} unreachable: {type(exc).__name__}: {exc}"
        return ProbeResult(
            "police-link",
            "police_link",
            now_utc(),
            "failed",
            reason=reason,
            fix="Check the police broker URL, the network route and the firewall.",
            detail={"connected": False},
        )
    latency = asyncio.get_running_loop().time() - started
    return ProbeResult(
        "police-link", "police_link", now_utc(), "ok", latency, detail={"connected": True}
    )


def _panel_row(panel: AlarmPanel, stored: DeviceState | None) -> Row:
    if stored is None:
        row = _row(panel.id, panel.name, "alarm_panel", panel.location, True, None)
        row.reason = "not heard: panels are supervised by the running hub's receiver"
        row.fix = "Run the hub, make the panel report (test or periodic), then check again."
        return row
    level = {"online": "ok", "degraded": "degraded", "offline": "failed"}.get(stored.state)
    result = ProbeResult(panel.id, "alarm_panel", now_utc(), level)  # type: ignore[arg-type]
    row = _row(panel.id, panel.name, "alarm_panel", panel.location, True, result, stored.state)
    since = iso(stored.since) if stored.since else "?"
    row.reason = f"as recorded by the hub since {since}" + (
        f": {stored.reason}" if stored.reason else ""
    )
    if stored.state == "offline":
        row.fix = "Check the panel's power, network and its receiver address, port and account."
    return row


def _gb28181_row(config: SiteConfig, stored: DeviceState | None) -> Row:
    """The GB/T 28181 registration as the running hub recorded it (a check cannot register:
    a second registration with the hub's ID would take over the hub's own)."""
    gb = config.police.gb28181
    assert gb is not None
    name = f"GB/T 28181 upper platform {gb.server_id} ({gb.host}:{gb.port}/{gb.transport})"
    row = _row("police-gb28181", name, "gb28181_link", None, gb.enabled, None)
    if stored is None:
        row.reason = "registration state not recorded: the hub has not run with this uplink"
        row.fix = "Run the hub, then check again."
        return row
    row.state = stored.state
    since = iso(stored.since) if stored.since else "?"
    row.reason = f"as recorded by the hub since {since}: {stored.reason or stored.state}"
    if stored.state == "online":
        return row
    reason = stored.reason or ""
    if " 403" in reason or " 404" in reason:
        row.fix = (
            "Compare police.gb28181.server_id and device_id with the IDs the police gave "
            "(the upper platform's answer names its own ID)."
        )
    elif "password" in reason:
        row.fix = "Check police.gb28181.password with the police."
    else:
        row.fix = "Check police.gb28181 host, port and transport, the route and the firewall."
    return row


async def run_check(
    config: SiteConfig,
    *,
    device: str | None = None,
    floor: str | None = None,
    video: bool = True,
    progress: Progress | None = None,
) -> Report:
    """Probe the selected devices once each, at most ``health.concurrency`` at a time."""
    cams, panels, ctrls = select_devices(config, device, floor)
    states, blobs, note = await _stored_facts(config)
    baselines: dict[str, Baseline] = {}
    for cid, data in blobs.items():
        try:
            baselines[cid] = Baseline.from_bytes(data)
        except ValueError:
            continue
    report = Report(config.site.id, now_utc(), [], [note] if note else [])
    sem = asyncio.Semaphore(config.health.concurrency)
    total = len(cams) + len(ctrls) + (1 if device is None and floor is None else 0)
    done = 0

    def tick(name: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, name)

    async def one_camera(c: Camera) -> Row:
        async with sem:
            result = await _check_camera(config, c, baselines.get(c.id), video)
        tick(c.id)
        return _row(c.id, c.name, "camera", c.location, c.required, result)

    async def one_ctrl(b: BroadcastController) -> Row:
        async with sem:
            result = await _check_broadcast(config, b)
        tick(b.id)
        return _row(b.id, b.name, "broadcast", b.location, True, result)

    async def police() -> Row:
        result = await _check_police(config)
        tick("police-link")
        return _row("police-link", "police platform broker", "police_link", None, True, result)

    if progress is not None:
        progress(0, total, "")
    jobs = [one_camera(c) for c in cams] + [one_ctrl(b) for b in ctrls]
    if device is None and floor is None:
        jobs.append(police())
    report.rows = list(await asyncio.gather(*jobs))
    for p in panels:
        panel_row = _panel_row(p, states.get(p.id))
        report.rows.append(panel_row)
        for b in p.zones:
            if device not in (None, b.id, p.id) or (
                floor is not None and b.location.floor != floor
            ):
                continue
            row = _row(b.id, b.name, b.type, b.location, False, None, panel_row.state)
            row.reason = f"reports through {p.id}"
            report.rows.append(row)
    if config.police.gb28181 is not None and device is None and floor is None:
        report.rows.append(_gb28181_row(config, states.get("police-gb28181")))
    report.rows.sort(key=lambda r: (r.floor, r.zone, r.type, r.device_id))
    return report


# --- output ----------------------------------------------------------------------------------

COLUMNS: Final = ("DEVICE", "TYPE", "ROLE", "STATE", "LATENCY", "CLOCK", "VIDEO", "FINDINGS")


def _cells(r: Row) -> list[str]:
    latency = f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "-"
    clock = f"{r.clock_offset_s:+.1f} s" if r.clock_offset_s is not None else "-"
    video = "-"
    if r.resolution:
        video = f"{r.resolution[0]}x{r.resolution[1]}"
        if r.fps_limit is not None:
            video += f"@{r.fps_limit:g}"
        if r.fps_measured is not None:
            video += f" ({r.fps_measured:.0f} measured)"
    findings = ", ".join(
        str(f["check"]) + ("?" if f.get("warning") else "") for f in r.findings
    ) or ("-" if r.state in ("online",) else r.reason or "-")
    state = r.state.upper() if r.failing else r.state
    return [r.device_id, r.type, r.role or "-", state, latency, clock, video, findings]


def camera_lines(r: Row) -> list[str]:
    """What a technician commissioning a camera wants under its row: what it is, and its
    video as configured and as measured from the stream, and where the picture came from."""
    if r.type != "camera" or r.state == "offline":
        return []
    out = []
    ident = " ".join(x for x in (r.manufacturer, r.model) if x)
    if ident or r.firmware:
        out.append(f"device / 设备: {ident or '?'}, firmware / 固件 {r.firmware or '?'}")
    configured = "-"
    if r.resolution:
        configured = f"{r.encoding or '?'} {r.resolution[0]}x{r.resolution[1]}"
        if r.fps_limit is not None:
            configured += f" @ {r.fps_limit:g} fps"
    measured = "-"
    s = r.stream
    if s:
        measured = f"{s.get('codec') or '?'} {s.get('width')}x{s.get('height')}"
        if r.fps_measured is not None:
            measured += f" @ {r.fps_measured:.1f} fps"
            ts, arrival = s.get("fps_timestamps"), s.get("fps_arrival")
            if ts is not None and arrival is not None:
                measured += f" (timestamps {ts:g}, arrivals {arrival:g})"
        measured += f" over {s.get('transport')}"
    elif r.video_error:
        measured = f"not measured: {r.video_error}"
    out.append(f"video / 视频: configured / 配置 {configured}; measured / 实测 {measured}")
    if r.video_source:
        out.append(f"picture judged from / 画面来源: {r.video_source}")
    return out


def render_table(report: Report, out: TextIO) -> None:
    """The report as a text table grouped by floor and zone, each problem with its fix."""
    rows = report.rows
    cells = [_cells(r) for r in rows]
    widths = [len(c) for c in COLUMNS]
    for line in cells:
        widths = [max(w, min(len(c), 60)) for w, c in zip(widths, line, strict=True)]

    def fmt(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    print(f"mallhub check — site {report.site_id} at {iso(report.checked_at)}", file=out)
    for note in report.notes:
        print(f"note: {note}", file=out)
    group: tuple[str, str] | None = None
    for r, line in zip(rows, cells, strict=True):
        if (r.floor, r.zone) != group:
            group = (r.floor, r.zone)
            print(f"\n[{r.floor} / {r.zone}]", file=out)
            print(fmt(list(COLUMNS)), file=out)
        print(fmt(line), file=out)
        for extra in camera_lines(r):
            print(f"    {extra}", file=out)
        if r.state in FAILING or r.findings:
            for f in r.findings:
                mark = "warning" if f.get("warning") else "problem"
                print(f"    {mark}: {f['message_en']} / {f['message_zh']}", file=out)
            if r.state == "offline" and r.reason:
                print(f"    problem: {r.reason}", file=out)
            if r.fix:
                print(f"    fix: {r.fix}", file=out)
    failing = [r.device_id for r in rows if r.failing]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"\n{len(rows)} devices: {summary}", file=out)
    if failing:
        print(f"FAILED: required device(s) not working: {', '.join(failing)}", file=out)
    else:
        print("OK: every required device works", file=out)


class ProgressBar:
    """A one-line progress bar on a terminal (silent when ``out`` is not a terminal)."""

    def __init__(self, out: TextIO = sys.stderr, width: int = 30) -> None:
        self.out = out
        self.width = width
        self.live = out.isatty()

    def __call__(self, done: int, total: int, name: str) -> None:
        if not self.live or total <= 0:
            return
        filled = self.width * done // total
        bar = "#" * filled + "-" * (self.width - filled)
        self.out.write(f"\rchecking [{bar}] {done}/{total} {name[:30]:<30}")
        if done >= total:
            self.out.write("\r" + " " * (self.width + 50) + "\r")
        self.out.flush()


def dumps(report: Report) -> str:
    return json.dumps(report.as_json(), ensure_ascii=False, indent=2, default=str)
