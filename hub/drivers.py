"""Starts the device drivers the config asks for; what they report goes to ``ingest``.

:func:`start_drivers` returns the running drivers as :class:`Drivers`, which the composition
root (``hub.app``) hands to the services that use them (health probes, metrics).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from adapters.alarm_panels import AccountConfig, ReceiverLimits, SiaReceiver, parse_key
from adapters.broadcast import BroadcastDriver, ControllerConfig, ZoneConfig, make_driver
from adapters.device_event import IngestFn
from adapters.errors import AdapterError
from adapters.onvif.driver import OnvifCamera
from adapters.onvif.events import PullPointSubscriber
from hub.config import BroadcastController, Camera, SiteConfig

log = logging.getLogger(__name__)

SIA_RECEIVER_ID = "sia-receiver"


def sia_accounts(config: SiteConfig) -> list[AccountConfig]:
    """The receiver's view of the configured panels (keys decoded, zones → devices)."""
    accounts = []
    for p in config.devices.alarm_panels:
        key = parse_key(p.key.get_secret_value(), p.key_format) if p.key is not None else None
        accounts.append(
            AccountConfig(
                account=p.account,
                panel_device_id=p.id,
                key=key,
                zones={b.zone: b.id for b in p.zones},
                supervision_interval=p.supervision_interval_s,
                supervision_grace=p.supervision_grace_s,
            )
        )
    return accounts


def camera_driver(
    cfg: Camera, timeout_s: float, connect_timeout_s: float | None = None
) -> OnvifCamera:
    """The ONVIF driver for a configured camera (connects on first use)."""
    return OnvifCamera(
        cfg.id,
        cfg.host,
        cfg.port,
        cfg.username or "",
        cfg.password.get_secret_value() if cfg.password else "",
        timeout_s=timeout_s,
        connect_timeout_s=connect_timeout_s if connect_timeout_s is not None else timeout_s,
        lazy=True,
        max_answer_bytes=cfg.max_answer_bytes,
    )


def broadcast_driver(cfg: BroadcastController) -> BroadcastDriver:
    """The public-address driver for a configured controller."""
    return make_driver(
        cfg.driver,
        ControllerConfig(
            device_id=cfg.id,
            url=cfg.url,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            zones=[ZoneConfig(z.id, z.name, z.target) for z in cfg.zones],
            options=dict(cfg.options),
        ),
    )


@dataclass(frozen=True, slots=True)
class Drivers:
    """The running drivers, for the services that look at them."""

    sia: SiaReceiver | None = None
    """The SIA DC-09 receiver (None without alarm panels)."""
    cameras: Mapping[str, OnvifCamera] = field(default_factory=dict)
    """Camera id → its driver, shared with the health probes."""
    camera_events: Mapping[str, PullPointSubscriber] = field(default_factory=dict)
    """Camera id → its event subscription, once it runs."""


async def start_drivers(config: SiteConfig, ingest: IngestFn, stack: AsyncExitStack) -> Drivers:
    """Enter every configured driver on ``stack`` (stopped in reverse order)."""
    cfg = config
    receiver: SiaReceiver | None = None
    if cfg.devices.alarm_panels:
        rc = cfg.alarm_receiver
        receiver = SiaReceiver(
            sia_accounts(cfg),
            ingest,
            receiver_device_id=SIA_RECEIVER_ID,
            host=rc.host,
            tcp_port=rc.tcp_port,
            udp_port=rc.udp_port,
            limits=ReceiverLimits(
                max_connections=rc.max_connections,
                idle_timeout=rc.idle_timeout_s,
                unknown_account_period=rc.unknown_account_fault_every_s,
            ),
        )
        await stack.enter_async_context(receiver)
        log.info(
            "SIA DC-09 receiver on %s tcp/%d%s for %d panel(s)",
            rc.host,
            receiver.tcp_port,
            f" udp/{receiver.udp_port}" if receiver.udp_port else "",
            len(cfg.devices.alarm_panels),
        )
    if not cfg.devices.cameras:
        return Drivers(receiver)
    cams = await stack.enter_async_context(CameraDrivers(cfg, ingest))
    log.info(
        "%d camera(s), %d with event subscriptions",
        len(cams.cameras),
        sum(1 for c in cfg.devices.cameras if c.events),
    )
    return Drivers(receiver, cams.cameras, cams.subscribers)


# --- cameras ---------------------------------------------------------------------------------


class CameraDrivers:
    """The configured ONVIF cameras, connected lazily, and their event subscriptions.

    A camera that is down at start must not hold up the hub: each connects on first use (the
    health probe, a snapshot) and, when ``events`` is on, a supervisor task connects it with
    jittered backoff and only then starts its PullPoint subscription (subscribing last, as
    some cameras slow down once a subscription exists).
    """

    def __init__(
        self, config: SiteConfig, ingest: IngestFn, *, backoff_max_s: float = 120.0
    ) -> None:
        self.ingest = ingest
        timeout = config.health.probe_timeout_s
        self.configs = {c.id: c for c in config.devices.cameras}
        self.cameras: dict[str, OnvifCamera] = {
            c.id: camera_driver(c, timeout) for c in config.devices.cameras
        }
        self.subscribers: dict[str, PullPointSubscriber] = {}
        self.backoff_max_s = backoff_max_s
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        stack = self._stack
        try:
            for cam in self.cameras.values():
                stack.push_async_callback(cam.close)
            tg = await stack.enter_async_context(asyncio.TaskGroup())
            self._tasks = [
                tg.create_task(self._events(cam), name=f"camera-events:{cid}")
                for cid, cam in self.cameras.items()
                if self.configs[cid].events
            ]
        except BaseException:
            await stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        await self._stack.aclose()

    async def _events(self, cam: OnvifCamera) -> None:
        delay = 1.0
        while True:
            try:
                await cam.connect()
                break
            except AdapterError as exc:
                log.debug("%s: not connected yet (%s)", cam.device_id, exc.message)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.backoff_max_s)
        async with PullPointSubscriber(cam, self.ingest) as sub:
            self.subscribers[cam.device_id] = sub
            await asyncio.Event().wait()  # until the hub stops
