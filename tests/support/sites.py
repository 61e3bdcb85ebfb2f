"""Small site configs for tests, built as plain dicts and validated like a YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hub.config import SiteConfig, parse_config


def site_dict(
    *,
    broker_url: str,
    data_dir: Path,
    database_url: str | None = None,
    site_id: str = "test-mall",
    receipts: str = "optional",
    receipt_timeout_s: float = 30,
    http_port: int = 0,
    sia_port: int = 0,
    supervision_interval_s: float | None = None,
    supervision_grace_s: float = 30,
    panel_key: str | None = None,
    panel_key_format: str = "hex",
    cameras: list[dict[str, Any]] | None = None,
    broadcast: list[dict[str, Any]] | None = None,
    health: dict[str, Any] | None = None,
    **police: Any,
) -> dict[str, Any]:
    storage: dict[str, Any] = {"data_dir": str(data_dir)}
    if database_url:
        storage["database_url"] = database_url
    default_cameras: list[dict[str, Any]] = [
        {
            "id": "cam-gate-1",
            "name": "正门摄像机",
            "host": "127.0.0.1",
            "port": 1,
            "location": {"floor": "1F", "zone": "main-gate", "role": "gate"},
        }
    ]
    extra: dict[str, Any] = {}
    if health is not None:
        extra["health"] = health
    return {
        **extra,
        "site": {
            "id": site_id,
            "name": "测试商场",
            "address": "郑州市金水区测试路1号",
            "floor_area_m2": 45000,
            "guards": 45,
        },
        "storage": storage,
        "police": {
            "url": broker_url,
            "receipts": receipts,
            "receipt_timeout_s": receipt_timeout_s,
            "heartbeat_s": 60,
            "reconnect_max_s": 1,
            **police,
        },
        "http": {"port": http_port},
        "alarm_receiver": {"host": "127.0.0.1", "tcp_port": sia_port, "udp_port": None},
        "devices": {
            "alarm_panels": [
                {
                    "id": "panel-1",
                    "name": "一号报警主机",
                    "account": "1234",
                    "supervision_interval_s": supervision_interval_s,
                    "supervision_grace_s": supervision_grace_s,
                    **({"key": panel_key, "key_format": panel_key_format} if panel_key else {}),
                    "location": {"floor": "1F", "zone": "security-office", "role": "duty_room"},
                    "zones": [
                        {
                            "zone": 15,
                            "id": "btn-gate-1",
                            "name": "正门一键报警",
                            "location": {"floor": "1F", "zone": "main-gate", "role": "gate"},
                        },
                        {
                            "zone": 16,
                            "id": "btn-duty-1",
                            "name": "值班室一键报警",
                            "location": {"floor": "1F", "zone": "duty", "role": "duty_room"},
                        },
                    ],
                }
            ],
            "cameras": default_cameras if cameras is None else cameras,
            "broadcast": broadcast or [],
        },
    }


def make_site(**kwargs: Any) -> SiteConfig:
    return parse_config(site_dict(**kwargs), env={})


def write_site(path: Path, **kwargs: Any) -> Path:
    path.write_text(yaml.safe_dump(site_dict(**kwargs), allow_unicode=True), encoding="utf-8")
    return path
