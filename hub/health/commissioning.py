"""What ``mallhub check`` tests beyond the health probe, because the configuration relies on
it: the camera's Events service when ``events`` is on, the configured PTZ presets and relay
outputs. Nothing is moved or switched: presets and relays are listed, not used.
"""

from __future__ import annotations

import asyncio

from adapters.errors import AdapterError
from adapters.onvif.driver import NS_EVENTS, NS_PTZ, CameraProbe, OnvifCamera
from hub.config import Camera
from hub.health.probes import events_unsupported
from hub.health.results import Problem


async def commissioning_problems(
    driver: OnvifCamera, cfg: Camera, probe: CameraProbe, *, within: float
) -> list[Problem]:
    """Test what the configuration relies on: the Events service when ``events`` is on, the
    configured PTZ presets, the configured relay outputs. Nothing is moved or switched."""
    out: list[Problem] = []
    if cfg.events:
        out += await _events_problems(driver, within)
    if cfg.ptz_presets:
        out += await _ptz_problems(driver, cfg, probe, within)
    if cfg.relays:
        out += await _relay_problems(driver, cfg, within)
    return out


async def _events_problems(driver: OnvifCamera, within: float) -> list[Problem]:
    fix = (
        "Enable the camera's ONVIF event service (Profile S/T events), or set events: false "
        "for this camera if it really has none."
    )
    if not driver.has_service(NS_EVENTS):
        return [events_unsupported("")]
    try:
        await driver.call("events", "GetEventProperties", timeout_s=within)
    except AdapterError as exc:
        return [
            Problem(
                "events",
                f"摄像机事件服务不可用：{exc.message}",
                f"the camera's Events service does not work: {exc.message}",
                fix,
            )
        ]
    return []


async def _ptz_problems(
    driver: OnvifCamera, cfg: Camera, probe: CameraProbe, within: float
) -> list[Problem]:
    fix = "Create the presets on the camera, or correct the preset tokens in the config."
    if not driver.has_service(NS_PTZ) or not probe.profiles:
        return [
            Problem(
                "ptz",
                "配置了云台预置位，但摄像机没有 PTZ 服务",
                "PTZ presets are configured, but the camera offers no PTZ service",
                "Remove ptz_presets for a fixed camera, or enable PTZ on the camera.",
            )
        ]
    try:
        async with asyncio.timeout(within):
            presets = await driver.get_presets(probe.profiles[0].token)
    except (AdapterError, TimeoutError) as exc:
        why = exc.message if isinstance(exc, AdapterError) else f"no answer in {within:g} s"
        return [Problem("ptz", f"读取预置位失败：{why}", f"presets cannot be read: {why}", fix)]
    have = {p.token for p in presets}
    missing = sorted(
        f"{name} ({token})" for name, token in cfg.ptz_presets.items() if token not in have
    )
    if not missing:
        return []
    names = ", ".join(missing)
    return [Problem("ptz", f"摄像机没有预置位 {names}", f"the camera has no preset {names}", fix)]


async def _relay_problems(driver: OnvifCamera, cfg: Camera, within: float) -> list[Problem]:
    fix = "Correct the relay output tokens in the config (the camera's GetRelayOutputs lists them)."
    try:
        async with asyncio.timeout(within):
            relays = await driver.get_relay_outputs()
    except (AdapterError, TimeoutError) as exc:
        why = exc.message if isinstance(exc, AdapterError) else f"no answer in {within:g} s"
        return [
            Problem(
                "relays", f"读取继电器输出失败：{why}", f"relay outputs cannot be read: {why}", fix
            )
        ]
    have = {r.token for r in relays}
    missing = sorted(t for t in cfg.relays if t not in have)
    if not missing:
        return []
    names = ", ".join(missing)
    return [
        Problem(
            "relays",
            f"摄像机没有继电器输出 {names}",
            f"the camera has no relay output {names}",
            fix,
        )
    ]
