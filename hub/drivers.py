"""Wires the device drivers the config asks for into the hub."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from adapters.alarm_panels import AccountConfig, ReceiverLimits, SiaReceiver, parse_key
from hub.config import SiteConfig

if TYPE_CHECKING:
    from hub.app import Hub

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


async def start_drivers(hub: Hub, stack: AsyncExitStack) -> None:
    """Enter every configured driver on ``stack`` (stopped in reverse order)."""
    cfg = hub.config
    if cfg.devices.alarm_panels:
        rc = cfg.alarm_receiver
        receiver = SiaReceiver(
            sia_accounts(cfg),
            hub.ingest,
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
        hub.parts["sia"] = receiver
        log.info(
            "SIA DC-09 receiver on %s tcp/%d%s for %d panel(s)",
            rc.host,
            receiver.tcp_port,
            f" udp/{receiver.udp_port}" if receiver.udp_port else "",
            len(cfg.devices.alarm_panels),
        )
