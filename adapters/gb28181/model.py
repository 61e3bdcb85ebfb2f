"""The typed values the hub and the GB/T 28181 platform hand each other.

The adapter never imports the hub: the hub gives it a ``PlatformConfig``, a function listing
the channels as they are now (names, places, ON/OFF from the health system), a function that
finds a camera's stream, and callbacks for what the upper platform asks of the mall.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from adapters.gb28181.manscdp import Charset, PtzCommand
from adapters.gb28181.transport import TransportName

ChannelKind = Literal["camera", "alarm_input"]


@dataclass(frozen=True, slots=True)
class PlatformConfig:
    """Everything the lower-level platform needs to reach its upper platform."""

    device_id: str
    """The hub's own 20-digit ID (type 200), given by the police."""
    server_id: str
    """The upper platform's 20-digit ID, as the police gave it."""
    server_domain: str
    """The upper platform's SIP domain (usually its ID's first 10 digits)."""
    server_host: str
    server_port: int = 5060
    transport: TransportName = "UDP"
    password: str | None = field(default=None, repr=False)
    local_host: str = "0.0.0.0"
    local_port: int = 0
    contact_host: str | None = None
    """Address the upper platform reaches us at (Via, Contact, SDP); default: the bound one."""
    charset: Charset = "GB2312"
    register_expires_s: int = 3600
    keepalive_interval_s: float = 60.0
    keepalive_max_missed: int = 3
    max_streams: int = 4
    catalog_per_message: int = 4
    t1_s: float = 0.5
    retry_min_s: float = 2.0
    retry_max_s: float = 60.0
    name: str = "mallhub"
    manufacturer: str = "mallhub"
    model: str = "mallhub"
    firmware: str = "1"
    civil_code: str | None = None
    """Administrative division code for the catalog; default the hub ID's first 6 digits."""

    @property
    def domain(self) -> str:
        """Our own SIP domain: the first 10 digits of our ID."""
        return self.device_id[:10]


@dataclass(frozen=True, slots=True)
class Channel:
    """A camera (video channel) or an alarm button (alarm input channel) as the police see it."""

    channel_id: str
    device_ref: str
    """The hub's id of the device."""
    kind: ChannelKind
    name: str
    address: str = ""
    online: bool = True
    alarming: bool = False
    longitude: float | None = None
    latitude: float | None = None


@dataclass(frozen=True, slots=True)
class StreamSource:
    """Where a camera's live stream is pulled from (credentials inside the URL or options)."""

    url: str = field(repr=False)
    options: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True, slots=True)
class LinkState:
    """The link to the upper platform as a device state."""

    online: bool
    reason: str
    """``registered`` or why not: refused with the IDs used, keepalives missed, stopped…"""
    since: datetime
    server_id_seen: str | None = None
    """An ID the upper platform itself used (its challenge realm, Contact or From)."""
    expires_s: int | None = None


ChannelsFn = Callable[[], Sequence[Channel]]
StreamSourceFn = Callable[[Channel], Awaitable[StreamSource | None]]
ResetAlarmFn = Callable[[Channel | None], Awaitable[None]]
PtzFn = Callable[[Channel, PtzCommand], Awaitable[None]]
LinkStateFn = Callable[[LinkState], None]


@dataclass(frozen=True, slots=True)
class PlatformHooks:
    """The hub's side: what the platform asks when the police ask."""

    channels: ChannelsFn
    stream_source: StreamSourceFn | None = None
    on_reset_alarm: ResetAlarmFn | None = None
    on_ptz: PtzFn | None = None
    on_link_state: LinkStateFn | None = None
