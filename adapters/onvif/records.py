"""Plain values read from ONVIF answers, and the pure readers that make them.

The driver (:mod:`adapters.onvif.driver`) hands these dataclasses to the hub; nothing here
talks to a camera, so each reader can be tested on captured answers.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from adapters.errors import Violation

_URI_SECRET_PARAMS: Final = frozenset({"user", "username", "pass", "password", "pwd", "passwd"})


# --- plain result types


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    manufacturer: str | None
    model: str | None
    firmware: str | None
    serial: str | None
    hardware_id: str | None


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    token: str
    encoding: str | None
    width: int | None
    height: int | None
    fps_limit: float | None
    bitrate_kbps: int | None
    quality: float | None


@dataclass(frozen=True, slots=True)
class VideoProfile:
    token: str
    name: str | None
    video_source_token: str | None
    encoder: EncoderSettings | None
    has_ptz: bool


@dataclass(frozen=True, slots=True)
class PtzPreset:
    token: str
    name: str | None


@dataclass(frozen=True, slots=True)
class RelayOutput:
    token: str
    mode: str | None
    idle_state: str | None
    delay_s: float | None


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    """What the health system needs to know about one media profile."""

    token: str
    name: str | None
    encoding: str | None
    width: int | None
    height: int | None
    fps_limit: float | None


@dataclass(frozen=True, slots=True)
class CameraProbe:
    """Result of one health probe. ``error`` is set (and the rest partly empty) on failure."""

    device_id: str
    reachable: bool
    latency_s: float | None = None
    clock_offset_s: float | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    profiles: tuple[ProfileSummary, ...] = ()
    stream_uri: str | None = None
    snapshot_uri: str | None = None
    stream_error: str | None = None
    """Why the RTSP stream's DESCRIBE failed (the camera answers ONVIF all the same)."""
    stream_error_type: str | None = None
    error: str | None = None
    error_type: str | None = None
    """Name of the ``AdapterError`` subclass: ``DeviceUnreachable``, ``AuthFailed``, ...; or
    ``ClockRefused``: a refused login from a camera whose clock is far off."""
    violation: Violation | None = None
    """For a ``ProtocolViolation``: what was wrong with the camera's answer."""


# --- helpers --------------------------------------------------------------------------------


def strip_uri_credentials(uri: str | None) -> str | None:
    """Remove ``user:password@`` and credential query parameters some cameras put in URIs."""
    if not uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if k.lower() not in _URI_SECRET_PARAMS]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def refusal_clock_offset(date_header: str | None) -> float | None:
    """Camera clock minus hub clock (seconds) from the HTTP ``Date`` of a refusal, if any."""
    if not date_header:
        return None
    try:
        when = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    return (as_utc(when) - datetime.now(UTC)).total_seconds()


def local_name(qname: Any) -> str:
    text = str(getattr(qname, "localname", None) or qname or "")
    return text.rpartition("}")[2].rpartition(":")[2]


def as_utc(value: datetime) -> datetime:
    # Some firmware sends xs:dateTime without a zone; ONVIF times are UTC unless stated.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def camera_datetime(system_date_and_time: Any) -> datetime:
    """The camera's UTC clock from a GetSystemDateAndTime answer."""
    stamp = getattr(system_date_and_time, "UTCDateTime", None)
    if stamp is None:
        # A few cameras fill only LocalDateTime; with no zone rules to apply, take it as UTC
        # (the resulting offset then shows the misconfiguration instead of hiding it).
        stamp = getattr(system_date_and_time, "LocalDateTime", None)
    if stamp is None:
        raise ValueError("GetSystemDateAndTime has neither UTCDateTime nor LocalDateTime")
    date, time = stamp.Date, stamp.Time
    return datetime(
        int(date.Year),
        int(date.Month),
        int(date.Day),
        int(time.Hour),
        int(time.Minute),
        int(time.Second),
        tzinfo=UTC,
    )


def deviceio_xaddr(extension: Any) -> str | None:
    """DeviceIO XAddr from the Extension of a GetCapabilities answer."""
    if not isinstance(extension, Mapping):
        return None
    deviceio = extension.get("DeviceIO")
    if isinstance(deviceio, Mapping) and deviceio.get("XAddr"):
        return str(deviceio["XAddr"])
    # The schema puts a wildcard before DeviceIO in the extension, so the parser usually
    # swallows DeviceIO into the wildcard as a raw XML element: read its XAddr from there.
    for element in extension.get("_value_1") or []:
        if str(getattr(element, "tag", "")).endswith("}DeviceIO"):
            for child in element:
                if str(child.tag).endswith("}XAddr") and child.text:
                    return str(child.text).strip()
    return None


def brief(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def encoder_settings(config: Any) -> EncoderSettings:
    resolution = getattr(config, "Resolution", None)
    rate = getattr(config, "RateControl", None)
    return EncoderSettings(
        token=str(getattr(config, "token", "") or ""),
        encoding=opt_str(getattr(config, "Encoding", None)),
        width=opt_int(getattr(resolution, "Width", None)),
        height=opt_int(getattr(resolution, "Height", None)),
        fps_limit=opt_float(getattr(rate, "FrameRateLimit", None)),
        bitrate_kbps=opt_int(getattr(rate, "BitrateLimit", None)),
        quality=opt_float(getattr(config, "Quality", None)),
    )


def duration_s(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else None
