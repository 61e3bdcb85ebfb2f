"""The upper platform's MANSCDP requests in ``MESSAGE``: queries, controls, alarm answers.

Every well-formed MESSAGE is answered 200 at once; what it asks for follows as separate
``Response`` MESSAGEs (a catalog split into several, each with ``SumNum`` and its own
``DeviceList Num``). A body we cannot read is answered 400 with the reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from adapters.gb28181 import manscdp
from adapters.gb28181.manscdp import CatalogItem, Manscdp, ManscdpError, Node
from adapters.gb28181.model import Channel, PlatformConfig, PlatformHooks
from adapters.gb28181.signalling import TransactionTimeout
from adapters.gb28181.transport import Address
from adapters.sip.message import SipRequest, SipResponse

log = logging.getLogger(__name__)


class _Platform(Protocol):
    config: PlatformConfig
    hooks: PlatformHooks

    @property
    def alarms(self) -> _Alarms: ...

    async def respond(
        self, request: SipRequest, addr: Address, status: int, reason: str, body: bytes = b""
    ) -> None: ...

    async def send_message(self, body: bytes, *, timeout_s: float | None = None) -> SipResponse: ...


class _Alarms(Protocol):
    def answered(self, sn: int) -> None: ...

    def reset(self, channel_id: str | None) -> None: ...

    def alarming(self, channel_id: str) -> bool: ...


class QueryHandler:
    def __init__(self, platform: _Platform) -> None:
        self.platform = platform
        self.counters: Counter[str] = Counter()
        """Handled commands by CmdType, rejected bodies by reason."""

    @property
    def config(self) -> PlatformConfig:
        return self.platform.config

    def _channels(self) -> Sequence[Channel]:
        return self.platform.hooks.channels()

    async def handle_message(self, request: SipRequest, addr: Address) -> None:
        try:
            parsed = manscdp.parse(request.body)
        except ManscdpError as exc:
            self.counters["rejected"] += 1
            log.info("%s: unreadable MANSCDP from %s:%d: %s", self.config.device_id, *addr, exc)
            await self.platform.respond(request, addr, 400, f"Bad Request ({exc})")
            return
        channels = {c.channel_id: c for c in self._channels()}
        if parsed.device_id != self.config.device_id and parsed.device_id not in channels:
            self.counters["unknown_device"] += 1
            await self.platform.respond(request, addr, 404, "Not Found")
            return
        await self.platform.respond(request, addr, 200, "OK")
        self.counters[f"{parsed.root}/{parsed.cmd_type}"] += 1
        replies = await self._answer(parsed, channels.get(parsed.device_id))
        for node in replies:
            await self._send(node)

    async def _send(self, node: Node) -> None:
        body = manscdp.encode(node, self.config.charset)
        try:
            response = await self.platform.send_message(body)
        except (TransactionTimeout, OSError) as exc:
            self.counters["reply_unanswered"] += 1
            log.info("%s: reply not answered: %s", self.config.device_id, exc)
            return
        if response.status >= 300:
            self.counters["reply_refused"] += 1
        else:
            self.counters["reply_answered"] += 1

    async def _answer(self, msg: Manscdp, channel: Channel | None) -> list[Node]:
        cfg = self.config
        key = (msg.root, msg.cmd_type)
        if key == ("Query", "Catalog"):
            return manscdp.catalog_responses(
                msg.sn, cfg.device_id, self.catalog_items(), cfg.catalog_per_message
            )
        if key == ("Query", "DeviceInfo"):
            name = channel.name if channel is not None else cfg.name
            return [
                manscdp.device_info(
                    msg.sn,
                    msg.device_id,
                    name,
                    cfg.manufacturer,
                    cfg.model,
                    cfg.firmware,
                    len(self._channels()),
                )
            ]
        if key == ("Query", "DeviceStatus"):
            return [self._status(msg, channel)]
        if key == ("Query", "RecordInfo"):
            name = channel.name if channel is not None else cfg.name
            return [manscdp.record_info_empty(msg.sn, msg.device_id, name)]
        if key == ("Control", "DeviceControl"):
            ok = await self._control(msg, channel)
            return [manscdp.result("DeviceControl", msg.sn, msg.device_id, ok)]
        if key == ("Response", "Alarm"):
            self.platform.alarms.answered(msg.sn)
            return []
        self.counters["unsupported"] += 1
        return []

    def catalog_items(self) -> list[CatalogItem]:
        cfg = self.config
        civil = cfg.civil_code or cfg.device_id[:6]
        return [
            CatalogItem(
                device_id=c.channel_id,
                name=c.name,
                parent_id=cfg.device_id,
                civil_code=civil,
                address=c.address,
                status_on=c.online,
                manufacturer=cfg.manufacturer,
                model="camera" if c.kind == "camera" else "alarm input",
                owner=cfg.name,
                longitude=c.longitude,
                latitude=c.latitude,
            )
            for c in self._channels()
        ]

    def _status(self, msg: Manscdp, channel: Channel | None) -> Node:
        now = datetime.now(UTC)
        if channel is not None:
            alarms = (
                [(channel.channel_id, self._alarming(channel))]
                if channel.kind == "alarm_input"
                else []
            )
            return manscdp.device_status(
                msg.sn, msg.device_id, online=channel.online, now=now, alarms=alarms
            )
        inputs = [c for c in self._channels() if c.kind == "alarm_input"]
        return manscdp.device_status(
            msg.sn,
            msg.device_id,
            online=True,
            now=now,
            alarms=[(c.channel_id, self._alarming(c)) for c in inputs],
        )

    def _alarming(self, channel: Channel) -> bool:
        return channel.alarming or self.platform.alarms.alarming(channel.channel_id)

    async def _control(self, msg: Manscdp, channel: Channel | None) -> bool:
        hooks = self.platform.hooks
        ptz = msg.text("PTZCmd")
        if ptz is not None:
            if channel is None or channel.kind != "camera" or hooks.on_ptz is None:
                return False
            try:
                command = manscdp.parse_ptz(ptz)
            except ManscdpError as exc:
                self.counters["bad_ptz"] += 1
                log.info("%s: %s", self.config.device_id, exc)
                return False
            return await self._call("PTZ", hooks.on_ptz(channel, command))
        alarm_cmd = msg.text("AlarmCmd")
        if alarm_cmd is not None:
            if alarm_cmd != "ResetAlarm" or hooks.on_reset_alarm is None:
                return False
            self.platform.alarms.reset(channel.channel_id if channel is not None else None)
            return await self._call("ResetAlarm", hooks.on_reset_alarm(channel))
        self.counters["unsupported_control"] += 1
        return False

    async def _call(self, what: str, action: Awaitable[None]) -> bool:
        """Await a hub callback; its failure is the command's failure, not the adapter's."""
        try:
            await action
        except Exception as exc:  # the hub's action failed: report ERROR upward, keep serving
            self.counters[f"{what}_failed"] += 1
            log.warning("%s: %s failed: %s", self.config.device_id, what, exc)
            return False
        return True
