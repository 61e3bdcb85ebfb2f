"""Plain typed settings for the DC-09 receiver (the hub builds them from its validated config)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .crypto import check_key

_ACCOUNT = re.compile(r"[0-9A-Fa-f]{3,16}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountConfig:
    """One panel account the receiver accepts messages from.

    ``key`` is the AES key (16/24/32 bytes; use ``crypto.parse_key`` to read the configured
    ASCII or hex text). When set, the account's messages must be encrypted.
    """

    account: str
    """Account number, 3–16 hex digits; matched case-insensitively."""
    panel_device_id: str
    """Device id of the panel itself: system events, unknown zones and supervision faults."""
    key: bytes | None = None
    zones: Mapping[int, str] = field(default_factory=dict)
    """Zone (Contact ID CCC / SIA address) → device id of the button or detector."""
    supervision_interval: float | None = None
    """Seconds between expected messages (NULL or events); None disables supervision."""
    supervision_grace: float = 10.0
    """Extra seconds of silence tolerated before the supervision fault."""

    def __post_init__(self) -> None:
        if not _ACCOUNT.fullmatch(self.account):
            raise ValueError(f"account {self.account!r} must be 3-16 hex digits")
        object.__setattr__(self, "account", self.account.upper())
        if self.key is not None:
            check_key(self.key)
        if self.supervision_interval is not None and self.supervision_interval <= 0:
            raise ValueError("supervision_interval must be positive")
        if self.supervision_grace < 0:
            raise ValueError("supervision_grace must not be negative")

    def device_for(self, zone: int | None) -> str:
        """The device a zone belongs to; the panel itself for no zone or an unmapped zone."""
        if zone is None:
            return self.panel_device_id
        return self.zones.get(zone, self.panel_device_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverLimits:
    """Resource limits that keep one misbehaving peer from hurting the others."""

    max_frame_bytes: int = 2048
    """Longer frames are discarded (counted as ``oversize``)."""
    idle_timeout: float = 300.0
    """A TCP connection that delivers no complete frame for this long is closed."""
    frame_timeout: float = 30.0
    """A frame whose first byte arrived must be complete within this (slow-drip defence)."""
    max_connections: int = 512
    """Further TCP connections are closed at once (counted as ``connection_limit``)."""
    max_udp_in_flight: int = 256
    """UDP datagrams being processed at once; more are dropped (counted as ``overload``)."""
    ingest_timeout: float = 10.0
    """Each ``ingest`` call must finish within this, else the frame is not acknowledged."""
    write_timeout: float = 10.0
    """A reply must be written (drained) within this, else the connection is closed."""
    unknown_account_period: float = 300.0
    """At most one ``fault.unknown_account`` event per account per this many seconds."""

    def __post_init__(self) -> None:
        for name in ("max_frame_bytes", "max_connections", "max_udp_in_flight"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("idle_timeout", "frame_timeout", "ingest_timeout", "write_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.unknown_account_period < 0:
            raise ValueError("unknown_account_period must not be negative")
