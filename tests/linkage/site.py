"""A mall for the linkage tests: the gate button, two gate cameras (one PTZ with a relay),
a broadcast controller with three zones, and rules built per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.config import SiteConfig, parse_config
from simulators.broadcast import BroadcastSimulator
from simulators.camera import SimCamera
from tests.support.sites import site_dict

CAMERA_USER = "linkage"
GATE_CAMERAS = ("cam-gate-1", "cam-gate-2")


def gate_rule(**overrides: Any) -> dict[str, Any]:
    """Panic at the main gate: snapshots, PTZ to the gate, siren, evacuation broadcast."""
    rule: dict[str, Any] = {
        "name": "gate-panic",
        "match": {
            "kinds": ["alarm.panic", "alarm.duress"],
            "max_priority": 1,
            "zones": ["main-gate"],
        },
        "actions": [
            {"type": "snapshot", "cameras": "linked"},
            {"type": "ptz_preset", "camera": "cam-gate-2", "preset": "gate"},
            {
                "type": "relay_pulse",
                "camera": "cam-gate-2",
                "relay": "RelayOutput_1",
                "seconds": 0.2,
            },
            {
                "type": "broadcast",
                "controller": "pa-1",
                "zones": ["pa-1f-hall", "pa-1f-gate"],
                "message": "evacuation",
            },
        ],
        "timeout_s": 4,
        "retries": 1,
    }
    rule.update(overrides)
    return rule


def linkage_site(
    *,
    broker_url: str,
    data_dir: Path,
    cameras: list[SimCamera],
    camera_password: str,
    pa: BroadcastSimulator | None = None,
    pa_url: str | None = None,
    rules: list[dict[str, Any]] | None = None,
    alarms: dict[str, Any] | None = None,
    **police: Any,
) -> SiteConfig:
    """The test site with its devices pointed at the simulators."""
    d = site_dict(broker_url=broker_url, data_dir=data_dir, **police)
    d["devices"]["cameras"] = [
        {
            "id": cam_id,
            "name": f"正门摄像机{i + 1}",
            "host": "127.0.0.1",
            "port": cam.port,
            "username": CAMERA_USER,
            "password": camera_password,
            "location": {"floor": "1F", "zone": "main-gate", "role": "gate"},
            **({"ptz_presets": {"gate": "1"}, "relays": ["RelayOutput_1"]} if i == 1 else {}),
        }
        for i, (cam_id, cam) in enumerate(zip(GATE_CAMERAS, cameras, strict=True))
    ]
    d["devices"]["broadcast"] = [
        {
            "id": "pa-1",
            "name": "应急广播主机",
            "location": {"floor": "1F", "zone": "control-room", "role": "monitoring_room"},
            "driver": "http",
            "url": pa_url or (pa.http_url if pa is not None else "http://127.0.0.1:9"),
            "zones": [
                {"id": "pa-1f-hall", "name": "一层大厅", "floor": "1F", "target": "1"},
                {"id": "pa-1f-gate", "name": "一层正门", "floor": "1F", "target": "2"},
                {"id": "pa-2f", "name": "二层", "floor": "2F", "target": "3"},
            ],
            "options": {"timeout_s": 2},
        }
    ]
    d["linkage"] = rules if rules is not None else [gate_rule()]
    if alarms is not None:
        d["alarms"] = alarms
    return parse_config(d, env={})
