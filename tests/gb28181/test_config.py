"""``police.gb28181``: validation with every bad field named, the password from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.config import ConfigError, json_schema, parse_config
from hub.police.gb28181 import platform_config
from tests.support.sites import site_dict

GOOD = {
    "server_id": "41010000002000000001",
    "host": "10.0.0.5",
    "device_id": "41010500002000000001",
    "password": "${GB_PASSWORD}",
}


def site(tmp_path: Path, **gb: Any) -> dict[str, Any]:
    return site_dict(broker_url="mqtt://127.0.0.1:1", data_dir=tmp_path, gb28181={**GOOD, **gb})


def test_a_good_section_and_the_derived_ids(tmp_path: Path) -> None:
    cfg = parse_config(site(tmp_path), env={"GB_PASSWORD": "s3cret"})
    gb = cfg.police.gb28181
    assert gb is not None and gb.domain == "4101000000" and gb.charset == "GB2312"
    assert cfg.gb28181_channel_ids() == {
        "cam-gate-1": "41010500001320000001",
        "btn-gate-1": "41010500001340000001",
        "btn-duty-1": "41010500001340000002",
    }
    adapter = platform_config(cfg, gb)
    assert adapter.password == "s3cret" and adapter.transport == "UDP"
    assert "s3cret" not in repr(gb) and "s3cret" not in repr(adapter)


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"server_id": "4101000000200000000"}, "police.gb28181.server_id", "not 20 digits"),
        ({"device_id": "4101050000200000000x"}, "police.gb28181.device_id", "not 20 digits"),
        ({"site_code": "41010"}, "police.gb28181.site_code", "not 10 digits"),
        ({"civil_code": "4101a"}, "police.gb28181.civil_code", "digits"),
        ({"transport": "sctp"}, "police.gb28181.transport", ""),
        ({"charset": "BIG5"}, "police.gb28181.charset", ""),
        ({"port": 70000}, "police.gb28181.port", ""),
        ({"max_streams": -1}, "police.gb28181.max_streams", ""),
        ({"keepalive_interval_s": 0}, "police.gb28181.keepalive_interval_s", ""),
        ({"server_domain": "a b"}, "police.gb28181.server_domain", "SIP domain"),
        ({"surprise": 1}, "police.gb28181.surprise", ""),
        ({"channel_ids": {"cam-gate-1": "12"}}, "police.gb28181.channel_ids", "not 20 digits"),
        ({"device_id": GOOD["server_id"]}, "police.gb28181", "must differ"),
        ({"host": "10.0.0.999"}, "police.gb28181.host", "not a valid IPv4"),
        ({"host": "sip://10.0.0.5"}, "police.gb28181.host", "not a host"),
        ({"host": "platform 1"}, "police.gb28181.host", "space"),
        ({"local_host": "0.0.0.0:5060"}, "police.gb28181.local_host", "port"),
        ({"contact_host": "hub..local"}, "police.gb28181.contact_host", "empty label"),
    ],
)
def test_bad_fields_are_named(
    tmp_path: Path, change: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(site(tmp_path, **change), env={"GB_PASSWORD": "x"})
    assert any(where.startswith(path) and words in msg for where, msg in caught.value.errors), (
        caught.value.errors
    )


def test_channel_id_clashes_and_unknown_devices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cam-gate-1 and btn-gate-1 would both be"):
        parse_config(
            site(tmp_path, channel_ids={"cam-gate-1": "41010500001340000001"}),
            env={"GB_PASSWORD": "x"},
        )
    with pytest.raises(ConfigError, match="unknown devices: ghost"):
        parse_config(
            site(tmp_path, channel_ids={"ghost": "41010500001340000009"}), env={"GB_PASSWORD": "x"}
        )


def test_schema_documents_the_section() -> None:
    schema = json.loads(json_schema())
    uplink = schema["$defs"]["Gb28181Uplink"]
    assert uplink["additionalProperties"] is False
    assert all(
        "title" in field and "description" in field for field in uplink["properties"].values()
    )


def test_validate_cli_exits_2_naming_the_missing_secret(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site(tmp_path), allow_unicode=True), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "GB_PASSWORD"}
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "config", "validate", str(path)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "police.gb28181.password" in done.stderr and "GB_PASSWORD" in done.stderr
    assert "Traceback" not in done.stderr
