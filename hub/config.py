"""Site configuration: one pydantic model tree, loaded from YAML and validated once at start.

``${VAR}`` and ``${VAR:-default}`` in any string value are replaced from the environment
before validation, so secrets live in the environment, never in the file.

Long because it is the one model tree the site's YAML file maps to: a class per section, in
the file's order, each named after its key, with the rules that span sections (ids unique,
references that exist) on :class:`SiteConfig`; loading, environment substitution and error
reporting follow at the end.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from adapters.gb28181.ids import GbIdError, assign_channel_ids
from hub.addresses import check_host, check_sip_uri, check_url
from hub.police.gb28181_config import Gb28181Uplink

Role = Literal[
    "gate",
    "monitoring_room",
    "duty_room",
    "finance_room",
    "perimeter",
    "entrance",
    "passage",
    "parking",
    "shop",
    "corridor",
    "other",
]
ROLES: tuple[str, ...] = Role.__args__  # type: ignore[attr-defined]

Identifier = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Letters, digits, '-', '_' and '.'; safe in MQTT topics and URLs.",
    ),
]
HostName = Annotated[
    str,
    AfterValidator(check_host),
    Field(description="A host name (letters, digits, '-', dots) or an IPv4/IPv6 address."),
]
HttpUrl = Annotated[
    str,
    AfterValidator(lambda v: check_url(v, ("http", "https"))),
    Field(description="An http:// or https:// URL."),
]
EventKindPattern = Annotated[
    str,
    Field(
        pattern=r"^(alarm|fault|info)(\.[a-z0-9_*]+)*$",
        description="An event kind such as 'alarm.panic'; '*' matches any kind ('alarm.*').",
    ),
]


class ConfigError(Exception):
    """The configuration could not be loaded. ``errors`` lists ``(path, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{p}: {m}" for p, m in errors))
        self.errors = errors


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- site and infrastructure -----------------------------------------------------------


class Coordinates(Model):
    lat: float = Field(ge=-90, le=90, title="Latitude", description="WGS-84 degrees.")
    lon: float = Field(ge=-180, le=180, title="Longitude", description="WGS-84 degrees.")


class Site(Model):
    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        title="Site id",
        description=(
            "Unique id of this mall: letters, digits, '-' and '_' (no '.': the id is one MQTT "
            "topic level and one NATS subject token)."
        ),
    )
    name: str = Field(min_length=1, title="Name", description="The mall's name, e.g. 郑州某广场.")
    address: str = Field(default="", title="Address", description="Postal address.")
    coordinates: Coordinates | None = Field(default=None, title="Coordinates")
    floor_area_m2: float = Field(
        default=0, ge=0, title="Floor area", description="Business floor area in m²."
    )
    guards: int = Field(
        default=0, ge=0, title="Full-time guards", description="Full-time security guards."
    )
    timezone: str = Field(default="Asia/Shanghai", title="Time zone", description="IANA zone.")
    language: Literal["zh-CN", "en"] = Field(
        default="zh-CN", title="Language", description="Default language of UI and reports."
    )


class Storage(Model):
    data_dir: Path = Field(
        default=Path("data"),
        title="Data directory",
        description="Where the SQLite database, snapshots and baselines are kept.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        title="Database URL",
        description="SQLAlchemy URL, e.g. postgresql+asyncpg://…; default SQLite in data_dir.",
    )
    dedupe_window_s: float = Field(
        default=3600,
        gt=0,
        title="Dedupe window",
        description="A resent device message within this many seconds is the same event.",
    )

    @field_validator("database_url", mode="before")
    @classmethod
    def _empty_is_default(cls, v: Any) -> Any:
        # "${DATABASE_URL:-}" in a config means "the default SQLite file" when unset.
        return None if v == "" else v

    def url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{(self.data_dir / 'mallhub.db').as_posix()}"


class Tls(Model):
    ca_file: Path | None = Field(default=None, description="CA bundle; system CAs if unset.")
    cert_file: Path | None = Field(default=None, description="Client certificate (PEM).")
    key_file: Path | None = Field(default=None, description="Client private key (PEM).")
    verify_hostname: bool = Field(default=True, description="Check the server's host name.")

    @model_validator(mode="after")
    def _cert_and_key(self) -> Tls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


def _check_broker_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError("must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError("has no host")
    check_host(parts.hostname)
    if parts.username or parts.password:
        raise ValueError("put credentials in username/password, not in the URL")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from exc


class PoliceLink(Model):
    url: str | list[str] = Field(
        title="Broker URL(s)",
        description=(
            "mqtt://host:port or mqtts://host:port of the police platform's broker; a list "
            "(or a comma-separated string) names the nodes of a broker cluster, tried in turn."
        ),
    )
    username: str | None = Field(default=None, description="MQTT user name.")
    password: SecretStr | None = Field(default=None, description="MQTT password (use ${VAR}).")
    tls: Tls = Field(default_factory=Tls, description="TLS settings for mqtts://.")
    topic_prefix: str | None = Field(
        default=None, description="Topic prefix; default mallhub/v1/<site id>."
    )
    protocol: Literal["auto", "5", "3.1.1"] = Field(
        default="auto", description="MQTT version; auto tries 5 and falls back to 3.1.1."
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keep-alive.")
    session_expiry_s: int = Field(
        default=7 * 86400, ge=86400, description="Persistent session lifetime (MQTT 5)."
    )
    heartbeat_s: float = Field(default=60, gt=0, description="Status republish interval.")
    receipts: Literal["off", "optional", "required"] = Field(
        default="optional",
        description="required: alarms without a receipt are published again after the timeout.",
    )
    receipt_timeout_s: float = Field(default=30, gt=0, description="See receipts.")
    inline_snapshot_max_bytes: int = Field(
        default=256 * 1024, ge=0, description="Snapshots up to this size travel inline (base64)."
    )
    snapshot_url_ttl_s: int = Field(
        default=30 * 86400,
        ge=60,
        title="Snapshot URL lifetime",
        description="Signed snapshot URLs (for snapshots too big to inline) expire after this.",
    )
    publish_window: int = Field(
        default=64, ge=1, le=1000, description="QoS 1 messages in flight at once."
    )
    reconnect_max_s: float = Field(default=30, gt=0, description="Longest reconnect backoff.")
    gb28181: Gb28181Uplink | None = Field(
        default=None,
        title="GB/T 28181 uplink",
        description="Join the police video network as a lower-level platform (docs/gb28181.md).",
    )

    @field_validator("url", mode="before")
    @classmethod
    def _split_url(cls, v: Any) -> Any:
        if isinstance(v, str) and "," in v:
            return [part.strip() for part in v.split(",")]
        return v

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str | list[str]) -> str | list[str]:
        urls = [v] if isinstance(v, str) else v
        if not urls:
            raise ValueError("needs at least one broker URL")
        for url in urls:
            if not url:
                raise ValueError("an empty entry in the list of broker URLs")
            _check_broker_url(url)
        if len({urlsplit(u).scheme for u in urls}) > 1:
            raise ValueError("all broker URLs use the same scheme (mqtt:// or mqtts://)")
        return v

    @field_validator("topic_prefix")
    @classmethod
    def _check_prefix(cls, v: str | None) -> str | None:
        if v is not None and (
            not v or any(c in v for c in "+#") or v.startswith("/") or v.endswith("/")
        ):
            raise ValueError("must be non-empty, without '+', '#' or a leading/trailing '/'")
        return v

    @property
    def urls(self) -> list[str]:
        """Every broker address, in the order they are tried."""
        return [self.url] if isinstance(self.url, str) else list(self.url)

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """``(host, port)`` of each broker in ``urls``."""
        out = []
        for url in self.urls:
            parts = urlsplit(url)
            out.append((parts.hostname or "", parts.port or (8883 if self.use_tls else 1883)))
        return out

    @property
    def host(self) -> str:
        return self.endpoints[0][0]

    @property
    def port(self) -> int:
        return self.endpoints[0][1]

    @property
    def use_tls(self) -> bool:
        return urlsplit(self.urls[0]).scheme == "mqtts"


class Http(Model):
    host: HostName = Field(default="127.0.0.1", description="Address the web console listens on.")
    port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port.")
    tls_cert_file: Path | None = Field(default=None, description="Serve HTTPS with this cert.")
    tls_key_file: Path | None = Field(default=None, description="Key for tls_cert_file.")
    public_url: HttpUrl | None = Field(
        default=None, description="How others reach the hub (used in snapshot URLs)."
    )
    secure_cookies: bool = Field(
        default=False,
        title="Secure cookies",
        description="Mark the console's cookies Secure (sent over HTTPS only) although the hub "
        "itself serves plain HTTP: set it when a TLS reverse proxy sits in front of the hub. "
        "With tls_cert_file the cookies are Secure anyway.",
    )
    console_share: float = Field(
        default=0.1,
        gt=0,
        le=1,
        title="Console share during alarms",
        description="Alarms first: while alarms are coming in, the console's reads (pages, "
        "/api/v1, /metrics) are answered one at a time and take at most this share of the "
        "hub's time; operators' pages wait (see console_max_wait_s). 1 turns it off. "
        "Actions (acknowledge, close, log in), /healthz, /readyz and the live stream never wait.",
    )
    console_max_wait_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        title="Longest console wait during alarms",
        description="During alarms a console read waits at most this long for the console's "
        "share, then only for the reads ahead of it (one at a time); a read served longer than "
        "this no longer holds the others back.",
    )


class AlarmReceiver(Model):
    host: HostName = Field(default="0.0.0.0", description="Address the SIA DC-09 receiver binds.")
    tcp_port: int = Field(default=10001, ge=0, le=65535, description="TCP port (0 = free).")
    udp_port: int | None = Field(
        default=10001, ge=0, le=65535, description="UDP port (0 = free, null = off)."
    )
    max_connections: int = Field(default=512, ge=1, description="Concurrent TCP connections.")
    idle_timeout_s: float = Field(default=120, gt=0, description="Close silent connections.")
    unknown_account_fault_every_s: float = Field(
        default=300, gt=0, description="At most one unknown-account fault per account per period."
    )


# --- devices -----------------------------------------------------------------------------


class Location(Model):
    floor: str = Field(min_length=1, description="Floor label, e.g. 'B1', '1F'.")
    zone: str = Field(min_length=1, description="Zone id; devices in one zone are linked.")
    role: Role | None = Field(default=None, description="What the location is, for compliance.")
    description: str = Field(default="", description="Free text, e.g. 北门入口.")


class Button(Model):
    zone: int = Field(ge=0, le=9999, description="The panel's zone number for this device.")
    id: Identifier
    name: str = Field(min_length=1)
    type: Literal["alarm_button", "detector", "fire_detector"] = "alarm_button"
    location: Location
    required: bool = Field(default=True, description="Counts for compliance when true.")


class AlarmPanel(Model):
    id: Identifier
    name: str = Field(min_length=1)
    location: Location
    account: str = Field(pattern=r"^[0-9A-Fa-f]{3,16}$", description="SIA DC-09 account (hex).")
    key: SecretStr | None = Field(default=None, description="AES key for encrypted messages.")
    key_format: Literal["ascii", "hex"] = Field(
        default="hex", description="Key given as ASCII text (16/24/32) or hex (32/48/64)."
    )
    supervision_interval_s: float | None = Field(
        default=None, gt=0, description="Panel's periodic message interval; null = unsupervised."
    )
    supervision_grace_s: float = Field(
        default=30, ge=0, description="Silence beyond interval + grace is a fault."
    )
    zones: list[Button] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> AlarmPanel:
        seen: set[int] = set()
        for b in self.zones:
            if b.zone in seen:
                raise ValueError(f"zone {b.zone} appears twice")
            seen.add(b.zone)
        if self.key is not None:
            k = self.key.get_secret_value()
            if self.key_format == "ascii" and len(k) not in (16, 24, 32):
                raise ValueError("an ASCII key has 16, 24 or 32 characters")
            if self.key_format == "hex" and (
                len(k) not in (32, 48, 64) or re.fullmatch(r"[0-9A-Fa-f]+", k) is None
            ):
                raise ValueError("a hex key has 32, 48 or 64 hex digits")
        return self


class Camera(Model):
    id: Identifier
    name: str = Field(min_length=1)
    location: Location
    host: HostName = Field(description="Camera address: host name or IP, without port.")
    port: int = Field(default=80, ge=1, le=65535, description="ONVIF HTTP port.")
    username: str | None = None
    password: SecretStr | None = None
    ptz_presets: dict[str, str] = Field(
        default_factory=dict, description="Named PTZ presets → preset tokens."
    )
    relays: list[str] = Field(default_factory=list, description="Relay output tokens.")
    required: bool = Field(default=True, description="Counts for compliance when true.")
    events: bool = Field(default=True, description="Subscribe to the camera's own events.")
    max_answer_bytes: int = Field(
        default=1024 * 1024,
        ge=64 * 1024,
        le=64 * 1024 * 1024,
        title="Largest ONVIF answer",
        description=(
            "An ONVIF answer larger than this many bytes is refused (the camera is then "
            "degraded with a finding) and never read further. Raise it only for a device "
            "whose answers really are this large, such as an encoder with many channels."
        ),
    )


class BroadcastZone(Model):
    id: Identifier
    name: str = Field(min_length=1)
    floor: str | None = None
    target: str = Field(
        default="", description="Controller-specific address: zone number or SIP extension."
    )


class BroadcastController(Model):
    id: Identifier
    name: str = Field(min_length=1)
    location: Location
    driver: Literal["http", "sip"] = "http"
    url: str = Field(description="http(s)://… for http; sip:host:port for sip.")
    username: str | None = None
    password: SecretStr | None = None
    zones: list[BroadcastZone] = Field(min_length=1)
    options: dict[str, Any] = Field(
        default_factory=dict, description="Driver options (endpoint paths, payload templates)."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("driver") == "sip":
            return check_sip_uri(v)
        return check_url(v, ("http", "https"))


class Devices(Model):
    alarm_panels: list[AlarmPanel] = Field(default_factory=list)
    cameras: list[Camera] = Field(default_factory=list)
    broadcast: list[BroadcastController] = Field(default_factory=list)


# --- linkage, health, compliance -------------------------------------------------------


class LinkageMatch(Model):
    kinds: list[EventKindPattern] = Field(default_factory=lambda: ["alarm.*"])
    max_priority: int = Field(default=4, ge=1, le=4, description="Match priority ≤ this.")
    devices: list[Identifier] = Field(default_factory=list, description="Empty = any device.")
    zones: list[str] = Field(default_factory=list, description="Empty = any zone.")
    floors: list[str] = Field(default_factory=list, description="Empty = any floor.")
    schedule: str | None = Field(
        default=None,
        pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$",
        description="Local time window HH:MM-HH:MM; empty = always.",
    )


class SnapshotAction(Model):
    type: Literal["snapshot"]
    cameras: list[Identifier] | Literal["linked"] = "linked"


class PtzAction(Model):
    type: Literal["ptz_preset"]
    camera: Identifier
    preset: str


class RelayAction(Model):
    type: Literal["relay_pulse"]
    camera: Identifier
    relay: str
    seconds: float = Field(default=5, gt=0, le=600)


class BroadcastAction(Model):
    type: Literal["broadcast"]
    controller: Identifier
    zones: list[Identifier] | Literal["all"] = "all"
    message: str = Field(default="evacuation", description="Stored message name or text.")


class RenotifyAction(Model):
    type: Literal["renotify"]
    after_s: float = Field(default=120, gt=0)


Action = Annotated[
    SnapshotAction | PtzAction | RelayAction | BroadcastAction | RenotifyAction,
    Field(discriminator="type"),
]


class LinkageRule(Model):
    name: Identifier
    match: LinkageMatch = Field(default_factory=LinkageMatch)
    actions: list[Action] = Field(min_length=1)
    timeout_s: float = Field(default=4, gt=0, le=120, description="Per action.")
    retries: int = Field(default=1, ge=0, le=10)


class Health(Model):
    camera_interval_s: float = Field(default=60, gt=0)
    video_interval_s: float = Field(default=300, gt=0)
    broadcast_interval_s: float = Field(default=60, gt=0)
    probe_timeout_s: float = Field(default=10, gt=0)
    concurrency: int = Field(default=32, ge=1, le=1024)
    video_concurrency: int = Field(
        default=16,
        ge=1,
        le=64,
        title="Video checks at once",
        description=(
            "Most cameras whose video is checked at the same time, apart from the "
            "`concurrency` camera probes. A check holds two RTSP sessions for about 5 s "
            "(the main stream measured, nothing decoded; key frames of the sub-stream "
            "decoded), mostly waiting on the network. Each camera's check has a slot of its "
            "own in the video interval, the slots evenly spaced, so 500 cameras every 300 s "
            "run about 8 at a time; the limit matters when the hub starts and checks every "
            "camera as soon as it answers: 16 at a time judge 500 cameras in about 3 "
            "minutes. Each check in flight holds a few MB of decoder memory."
        ),
    )
    fail_threshold: int = Field(default=3, ge=1, description="Failures in a row to go offline.")
    recover_threshold: int = Field(default=2, ge=1, description="Successes to come back.")
    jitter: float = Field(default=0.1, ge=0, le=0.5, description="Fraction of the interval.")
    probe_retention_days: int = Field(default=30, ge=1)
    camera_worker: Literal["process", "inline"] = Field(
        default="process",
        title="Where the camera checks run",
        description=(
            "`process` (default): the cameras' ONVIF probes, RTSP checks and video checks run "
            "in a worker process of the hub's own (`hub.health.worker`), on the machine's "
            "other core, so that a health cycle does not slow the alarm path; the hub starts "
            "it again if it dies, and a probe lost that way is not counted against the "
            "camera. `inline`: in the hub's own process, as before (one process fewer, for a "
            "small site on a one-core machine)."
        ),
    )


class Compliance(Model):
    evaluate_every_s: float = Field(default=60, gt=0)
    camera_availability_pct: float = Field(default=99, ge=0, le=100)
    min_fps: float = Field(default=25, gt=0)
    min_resolution_key: tuple[int, int] = Field(default=(1280, 720))
    min_resolution_other: tuple[int, int] = Field(default=(704, 576))
    max_clock_offset_s: float = Field(default=5, ge=0)
    retention_days: int = Field(default=30, ge=1)
    linkage_budget_s: float = Field(default=4, gt=0)
    button_test_days: int = Field(default=30, ge=1)
    alarm_response_s: float = Field(default=2, gt=0)
    receipt_max_age_s: float = Field(default=300, gt=0)
    broadcast_test_days: int = Field(default=30, ge=1)
    ack_within_s: float = Field(default=60, gt=0)
    drill_days: int = Field(default=92, ge=1)
    training_days: int = Field(default=31, ge=1)
    hazard_register_days: int = Field(default=31, ge=1)


class AlarmLifecycle(Model):
    escalate_after_s: float = Field(default=120, gt=0, description="Unacknowledged → escalate.")
    latch_kinds: list[EventKindPattern] = Field(
        default_factory=lambda: ["alarm.panic", "alarm.duress", "alarm.holdup"],
        description="Alarms that stay until a person closes them.",
    )
    max_escalations: int = Field(
        default=3,
        ge=1,
        le=100,
        title="Escalations",
        description="How many times an unacknowledged alarm escalates (every escalate_after_s).",
    )
    test_mode_max_minutes: float = Field(
        default=240,
        gt=0,
        le=24 * 60,
        title="Longest test mode",
        description="A device or zone stays in test mode at most this long, then leaves it.",
    )
    test_mode_poll_s: float = Field(
        default=2,
        gt=0,
        le=60,
        title="Test mode poll interval",
        description="How often the hub re-reads test mode entries made by `mallhub testmode`.",
    )


# --- the whole site ---------------------------------------------------------------------


class SiteConfig(Model):
    """A mall's complete configuration."""

    site: Site
    storage: Storage = Field(default_factory=Storage)
    police: PoliceLink
    http: Http = Field(default_factory=Http)
    alarm_receiver: AlarmReceiver = Field(default_factory=AlarmReceiver)
    devices: Devices = Field(default_factory=Devices)
    linkage: list[LinkageRule] = Field(default_factory=list)
    health: Health = Field(default_factory=Health)
    compliance: Compliance = Field(default_factory=Compliance)
    alarms: AlarmLifecycle = Field(default_factory=AlarmLifecycle)

    @model_validator(mode="after")
    def _cross_check(self) -> SiteConfig:
        problems: list[str] = []
        seen: dict[str, str] = {}
        for dev_id, kind in self.iter_device_ids():
            if dev_id in seen:
                problems.append(f"device id {dev_id!r} is used twice ({seen[dev_id]}, {kind})")
            seen[dev_id] = kind
        accounts: set[str] = set()
        for p in self.devices.alarm_panels:
            acct = p.account.upper()
            if acct in accounts:
                problems.append(f"alarm account {p.account!r} is used by two panels")
            accounts.add(acct)
        cams = {c.id: c for c in self.devices.cameras}
        ctrls = {b.id: b for b in self.devices.broadcast}
        for rule in self.linkage:
            for dev in rule.match.devices:
                if dev not in seen:
                    problems.append(f"linkage rule {rule.name!r} matches unknown device {dev!r}")
            for a in rule.actions:
                if isinstance(a, SnapshotAction) and a.cameras != "linked":
                    problems += [
                        f"linkage rule {rule.name!r}: unknown camera {c!r}"
                        for c in a.cameras
                        if c not in cams
                    ]
                elif isinstance(a, PtzAction | RelayAction) and a.camera not in cams:
                    problems.append(f"linkage rule {rule.name!r}: unknown camera {a.camera!r}")
                elif isinstance(a, BroadcastAction):
                    ctrl = ctrls.get(a.controller)
                    if ctrl is None:
                        problems.append(
                            f"linkage rule {rule.name!r}: unknown broadcast controller "
                            f"{a.controller!r}"
                        )
                    elif a.zones != "all":
                        known = {z.id for z in ctrl.zones}
                        problems += [
                            f"linkage rule {rule.name!r}: controller {ctrl.id!r} has no zone {z!r}"
                            for z in a.zones
                            if z not in known
                        ]
        if self.police.gb28181 is not None:
            try:
                self.gb28181_channel_ids()
            except GbIdError as exc:
                problems.append(f"police.gb28181: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def gb28181_channel_ids(self) -> dict[str, str]:
        """Device id → GB/T 28181 channel ID of every camera and alarm input (docs/gb28181.md)."""
        gb = self.police.gb28181
        if gb is None:
            return {}
        return assign_channel_ids(
            gb.derived_site_code,
            [c.id for c in self.devices.cameras],
            [b.id for p in self.devices.alarm_panels for b in p.zones],
            gb.channel_ids,
        )

    def iter_device_ids(self) -> Iterator[tuple[str, str]]:
        for p in self.devices.alarm_panels:
            yield p.id, "alarm_panel"
            for b in p.zones:
                yield b.id, b.type
        for c in self.devices.cameras:
            yield c.id, "camera"
        for bc in self.devices.broadcast:
            yield bc.id, "broadcast"

    @property
    def topic_prefix(self) -> str:
        return self.police.topic_prefix or f"mallhub/v1/{self.site.id}"


# --- loading -----------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


MAX_CONFIG_VALUES = 200_000
"""A site config is thousands of values; far more means YAML aliases expanding explosively."""


class _TooLarge(Exception):
    pass


def substitute_env(
    tree: Any, env: Mapping[str, str], path: str = "", errors: list[tuple[str, str]] | None = None
) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of ``tree``.

    A variable that is unset and has no default is reported in ``errors`` with its path. A
    tree of more than ``MAX_CONFIG_VALUES`` values (nested YAML aliases multiply quickly) is
    refused with an error instead of being expanded.
    """
    errs = errors if errors is not None else []
    budget = [MAX_CONFIG_VALUES]
    try:
        return _substitute(tree, env, path, errs, budget)
    except _TooLarge as exc:
        # Name the top-level key that was being expanded: that is where to look.
        where = str(exc.args[0])[len(path) :].lstrip(".").split(".")[0]
        errs.append(
            (
                _join(path, where) if where else path or "(root)",
                f"the configuration expands to more than {MAX_CONFIG_VALUES} values "
                "(nested YAML aliases?)",
            )
        )
        return None


def _substitute(
    tree: Any, env: Mapping[str, str], path: str, errs: list[tuple[str, str]], budget: list[int]
) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge(path)
    if isinstance(tree, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            errs.append((path or "(root)", f"environment variable {name} is not set"))
            return ""

        return _VAR.sub(repl, tree)
    if isinstance(tree, dict):
        return {k: _substitute(v, env, _join(path, str(k)), errs, budget) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_substitute(v, env, _join(path, str(i)), errs, budget) for i, v in enumerate(tree)]
    return tree


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _format_errors(exc: ValidationError, raw: Any = None) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        # Drop the names pydantic adds for tagged unions so paths read like the YAML.
        loc = [str(p) for p in err["loc"] if not str(p).endswith("Action")]
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append((named_path(".".join(loc), raw) or "(root)", msg))
    return out


def named_path(path: str, raw: Any) -> str:
    """``devices.cameras.3.host`` → ``devices.cameras[cam-gate-1].host``: list items that
    have an ``id`` are named by it (positions change when the file is edited; ids do not)."""
    out = ""
    node = raw
    for part in path.split(".") if path else []:
        item: Any = None
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            item = node[int(part)]
            ident = item.get("id") if isinstance(item, dict) else None
            if isinstance(ident, str) and ident and "${" not in ident:
                out += f"[{_printable(ident)}]"
                node = item
                continue
        elif isinstance(node, dict):
            item = node.get(part)
        out = f"{out}.{_printable(part)}" if out else _printable(part)
        node = item
    return out


def _printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``), so that a key or id can never
    break an error message over several lines or hide what follows it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _group_missing(errors: list[tuple[str, str]], raw: Any) -> list[tuple[str, str]]:
    """One line per problem: a variable missing in 65 places is one line, naming where."""
    places: dict[str, list[str]] = {}
    for path, msg in errors:
        places.setdefault(msg, []).append(named_path(path, raw) if path != "(root)" else path)
    out = []
    for msg, paths in places.items():
        if len(paths) > 1:
            shown = ", ".join(paths[1:4]) + (", …" if len(paths) > 4 else "")
            msg = f"{msg} (also needed by {len(paths) - 1} more: {shown})"
        out.append((paths[0], msg))
    return out


def parse_config(data: Any, env: Mapping[str, str] | None = None) -> SiteConfig:
    """Validate an already-parsed YAML tree. Raises ConfigError listing every bad field."""
    if not isinstance(data, dict):
        raise ConfigError([("(root)", "the file must contain a mapping (key: value)")])
    errors: list[tuple[str, str]] = []
    raw = data
    data = substitute_env(data, os.environ if env is None else env, errors=errors)
    if errors:
        raise ConfigError(_group_missing(errors, raw))
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, raw)) from exc


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> SiteConfig:
    """Read and validate a YAML config file. Raises ConfigError with readable messages."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([(str(p), f"cannot read: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([(str(p), "is not UTF-8 text")]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([(str(p), f"invalid YAML{_yaml_problem(exc, text)}")]) from exc
    return parse_config(data, env)


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """`` at line L, column C: problem`` on one line, whichever YAML error it is."""
    where = ""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.reader.ReaderError):
        # The reader has no mark, only a character offset into the text (and the character's
        # code point: the text is already decoded).
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        where = f" at line {line}, column {column}"
        char = exc.character
        code = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        problem = f"unacceptable character {code}: {exc.reason}"
    else:
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
    return f"{where}: {' '.join(str(problem).split())}"


def json_schema() -> str:
    """The configuration's JSON Schema, generated from the models."""
    return json.dumps(SiteConfig.model_json_schema(), indent=2, ensure_ascii=False)
