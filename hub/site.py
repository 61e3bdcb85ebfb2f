"""Read-only views of the site config: devices by id, cameras linked to a zone."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from hub.config import Location, SiteConfig


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: str
    type: str
    """alarm_panel, alarm_button, detector, fire_detector, camera, broadcast, receiver, hub."""
    name: str
    location: Location | None
    required: bool = True
    parent: str | None = None
    """For buttons and detectors: the panel they report through."""


def strip_credentials(uri: str) -> str:
    """Remove user:password@ from a URI: credentials never leave the hub."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class SiteIndex:
    """Lookups over a validated SiteConfig."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.devices: dict[str, DeviceInfo] = {}
        self.cameras_by_zone: dict[str, list[str]] = defaultdict(list)
        for p in config.devices.alarm_panels:
            self.devices[p.id] = DeviceInfo(p.id, "alarm_panel", p.name, p.location)
            for b in p.zones:
                self.devices[b.id] = DeviceInfo(
                    b.id, b.type, b.name, b.location, b.required, parent=p.id
                )
        for c in config.devices.cameras:
            self.devices[c.id] = DeviceInfo(c.id, "camera", c.name, c.location, c.required)
            self.cameras_by_zone[c.location.zone].append(c.id)
        for bc in config.devices.broadcast:
            self.devices[bc.id] = DeviceInfo(bc.id, "broadcast", bc.name, bc.location)
        self.stream_uris: dict[str, str] = {}

    def device(self, device_id: str) -> DeviceInfo:
        """The device, or a plain description for ids the config does not list."""
        found = self.devices.get(device_id)
        if found is not None:
            return found
        kind = "hub" if device_id == "hub" else "receiver" if device_id.startswith("sia") else "?"
        return DeviceInfo(device_id, kind, device_id, None, required=False)

    def linked_cameras(self, device_id: str) -> list[str]:
        """Cameras in the same zone as the device (a camera is linked to itself first)."""
        info = self.devices.get(device_id)
        if info is None or info.location is None:
            return []
        cams = list(self.cameras_by_zone.get(info.location.zone, ()))
        if info.type == "camera" and device_id in cams:
            cams.remove(device_id)
            cams.insert(0, device_id)
        return cams

    def set_stream_uri(self, camera_id: str, uri: str) -> None:
        self.stream_uris[camera_id] = strip_credentials(uri)
