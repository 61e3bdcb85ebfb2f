"""``police.gb28181``: the mall as a GB/T 28181 lower-level platform of the police video network.

Kept apart from ``hub.config`` (which only names it) so the uplink's settings and their checks
live together. The IDs and the password come from the police; the password is a secret, so
it is written ``${VAR}`` and read from the environment.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from adapters.gb28181.ids import GbIdError, check_site_code, parse_id
from hub.addresses import check_host

# A host name or address, checked as every device host is (no scheme, port, path or space).
Host = Annotated[str, AfterValidator(check_host)]


def _gb_id(value: str, what: str) -> str:
    try:
        return parse_id(value, what=what).text
    except GbIdError as exc:
        raise ValueError(str(exc)) from exc


class Gb28181Uplink(BaseModel):
    """The link to the upper-level platform (国标级联)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, title="Enabled", description="Register and serve.")
    server_id: str = Field(
        title="Upper platform ID",
        description="The upper platform's 20-digit SIP ID, as the police give it.",
    )
    server_domain: str | None = Field(
        default=None,
        title="Upper platform domain",
        description="The upper platform's SIP domain; default the first 10 digits of its ID.",
    )
    host: Host = Field(min_length=1, title="Upper platform address", description="Host or IP.")
    port: int = Field(
        default=5060, ge=1, le=65535, title="Upper platform SIP port", description="Usually 5060."
    )
    transport: Literal["udp", "tcp"] = Field(
        default="udp", title="SIP transport", description="udp (the default of most platforms)."
    )
    password: SecretStr | None = Field(
        default=None,
        title="Registration password",
        description="The Digest password for REGISTER, from the police (write ${VAR}).",
    )
    device_id: str = Field(
        title="The hub's own ID",
        description=(
            "The 20-digit ID the police gave this mall's platform (usually type 200; some "
            "networks register lower platforms as NVRs, 118)."
        ),
    )
    site_code: str | None = Field(
        default=None,
        title="Site code",
        description=(
            "10 digits (centre code 8 + industry 2) from which channel IDs are derived; "
            "default the first 10 digits of device_id."
        ),
    )
    civil_code: str | None = Field(
        default=None,
        title="Civil code",
        description="6-digit administrative division code in the catalog; default from device_id.",
    )
    channel_ids: dict[str, str] = Field(
        default_factory=dict,
        title="Channel IDs",
        description="Device id → a 20-digit channel ID given by the police, instead of the rule's.",
    )
    local_host: Host = Field(
        default="0.0.0.0", title="Local address", description="Address the SIP socket binds."
    )
    local_port: int = Field(
        default=5060, ge=0, le=65535, title="Local SIP port", description="0 picks a free port."
    )
    contact_host: Host | None = Field(
        default=None,
        title="Address the platform reaches the hub at",
        description="Put in Via, Contact and SDP; default the address routed to the platform.",
    )
    charset: Literal["GB2312", "GBK", "UTF-8"] = Field(
        default="GB2312",
        title="XML charset",
        description="Charset of MANSCDP bodies, declared in the XML prolog.",
    )
    register_expires_s: int = Field(
        default=3600, ge=10, le=86400, title="Registration expiry", description="Seconds."
    )
    keepalive_interval_s: float = Field(
        default=60, gt=0, le=3600, title="Keepalive interval", description="Seconds."
    )
    keepalive_max_missed: int = Field(
        default=3,
        ge=1,
        le=20,
        title="Keepalives missed before offline",
        description="Unanswered keepalives in a row after which the hub registers again.",
    )
    max_streams: int = Field(
        default=4,
        ge=0,
        le=64,
        title="Concurrent live streams",
        description="More INVITEs than this are refused with 486 Busy Here.",
    )
    catalog_per_message: int = Field(
        default=4,
        ge=1,
        le=100,
        title="Catalog items per message",
        description="A catalog response is split into messages of this many items.",
    )
    sip_t1_s: float = Field(
        default=0.5,
        gt=0,
        le=5,
        title="SIP timer T1",
        description="Retransmission base over UDP (RFC 3261); requests time out after 64·T1.",
    )
    retry_max_s: float = Field(
        default=60,
        gt=0,
        le=3600,
        title="Longest registration back-off",
        description="Seconds between registration attempts at most (jittered, doubling).",
    )

    @field_validator("server_id")
    @classmethod
    def _server_id(cls, v: str) -> str:
        return _gb_id(v, "server_id")

    @field_validator("device_id")
    @classmethod
    def _device_id(cls, v: str) -> str:
        return _gb_id(v, "device_id")

    @field_validator("server_domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        if v is not None and (not v or any(c in v for c in " <>;@\"'\r\n")):
            raise ValueError("must be a SIP domain (usually 10 digits)")
        return v

    @field_validator("site_code")
    @classmethod
    def _site_code(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                check_site_code(v)
            except GbIdError as exc:
                raise ValueError(str(exc)) from exc
        return v

    @field_validator("civil_code")
    @classmethod
    def _civil_code(cls, v: str | None) -> str | None:
        if v is not None and (len(v) not in (2, 4, 6, 8) or not v.isascii() or not v.isdigit()):
            raise ValueError("must be 2, 4, 6 or 8 digits")
        return v

    @field_validator("channel_ids")
    @classmethod
    def _channel_ids(cls, v: dict[str, str]) -> dict[str, str]:
        for device, code in v.items():
            _gb_id(code, f"channel ID of {device}")
        return v

    @model_validator(mode="after")
    def _distinct(self) -> Gb28181Uplink:
        if self.device_id == self.server_id:
            raise ValueError("device_id and server_id must differ")
        return self

    @property
    def domain(self) -> str:
        return self.server_domain or self.server_id[:10]

    @property
    def derived_site_code(self) -> str:
        return self.site_code or self.device_id[:10]
