"""GB/T 28181 20-digit codes and the rule that gives each of the mall's devices its channel ID.

A code is centre code (8: province 2, city 2, district 2, unit 2) + industry (2) + type (3) +
serial (7). The police give the mall a *site code* — the first 10 digits (centre + industry) —
and the hub's own ID (type 200). Channel IDs are derived from the site code:

    channel ID = site code (10) + type (3: 132 camera, 134 alarm input) + serial (7)

where the serial is the device's position among the devices of that type in the configuration,
counted from 1 (the first camera is ``…1320000001``). Adding devices at the end keeps every
existing ID; any device may pin its own ID instead (the police often hand out IDs), and pinned
IDs are checked for clashes with derived ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

TYPE_PLATFORM: Final = 200
TYPE_CAMERA: Final = 132
TYPE_ALARM_INPUT: Final = 134
TYPE_NVR: Final = 118
TYPE_BUSINESS_GROUP: Final = 215
TYPE_VIRTUAL_ORGANISATION: Final = 216
MAX_SERIAL: Final = 9_999_999


class GbIdError(ValueError):
    """A code that does not follow the GB/T 28181 rule."""


@dataclass(frozen=True, slots=True)
class GbId:
    """A parsed 20-digit code."""

    text: str

    @property
    def centre(self) -> str:
        return self.text[:8]

    @property
    def industry(self) -> str:
        return self.text[8:10]

    @property
    def site_code(self) -> str:
        """Centre and industry: the first 10 digits, also the usual SIP domain."""
        return self.text[:10]

    @property
    def type_code(self) -> int:
        return int(self.text[10:13])

    @property
    def serial(self) -> int:
        return int(self.text[13:])

    @property
    def civil_code(self) -> str:
        """Province, city and district: the administrative division code (6 digits)."""
        return self.text[:6]


def parse_id(text: str, *, what: str = "ID") -> GbId:
    """Check ``text`` is 20 ASCII digits and return it parsed."""
    if len(text) != 20 or not text.isascii() or not text.isdigit():
        raise GbIdError(f"{what} {text!r} is not 20 digits")
    return GbId(text)


def check_site_code(text: str) -> str:
    """A site code is 10 ASCII digits (centre code 8 + industry 2)."""
    if len(text) != 10 or not text.isascii() or not text.isdigit():
        raise GbIdError(f"site code {text!r} is not 10 digits")
    return text


def make_id(site_code: str, type_code: int, serial: int) -> str:
    """``site_code`` + 3-digit type + 7-digit serial."""
    check_site_code(site_code)
    if not 0 <= type_code <= 999:
        raise GbIdError(f"type {type_code} is not 3 digits")
    if not 1 <= serial <= MAX_SERIAL:
        raise GbIdError(f"serial {serial} is outside 1..{MAX_SERIAL}")
    return f"{site_code}{type_code:03d}{serial:07d}"


def assign_channel_ids(
    site_code: str,
    cameras: Sequence[str],
    alarm_inputs: Sequence[str],
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Device id → channel ID for every camera and alarm input, by the rule above.

    ``overrides`` maps a device id to a pinned 20-digit ID. Raises ``GbIdError`` naming the
    devices when two end up with the same ID or an override is not a valid code.
    """
    overrides = overrides or {}
    result: dict[str, str] = {}
    for type_code, devices in ((TYPE_CAMERA, cameras), (TYPE_ALARM_INPUT, alarm_inputs)):
        for index, device in enumerate(devices, start=1):
            pinned = overrides.get(device)
            if pinned is not None:
                result[device] = parse_id(pinned, what=f"channel ID of {device}").text
            else:
                result[device] = make_id(site_code, type_code, index)
    unknown = sorted(set(overrides) - set(result))
    if unknown:
        raise GbIdError(f"channel ID given for unknown devices: {', '.join(unknown)}")
    _check_unique(result.items())
    return result


def _check_unique(pairs: Iterable[tuple[str, str]]) -> None:
    seen: dict[str, str] = {}
    for device, code in pairs:
        if code in seen:
            raise GbIdError(f"devices {seen[code]} and {device} would both be {code}")
        seen[code] = device
