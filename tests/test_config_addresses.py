"""Hosts and URLs of every device kind are checked at load; errors name devices by id,
and a missing environment variable is one line however often it is used."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings

from hub.addresses import check_host, check_sip_uri, check_url
from hub.cli import main
from hub.config import ConfigError, parse_config
from tests.support.hostile import hostile_text
from tests.support.sites import site_dict

ROOT = Path(__file__).resolve().parent.parent
BAD_HOSTS = ["10.20.1.999:80/x", "http://cam 1", "-bad host!", "cam_1..local", "cam.local:80"]


def _site(tmp_path: Path) -> dict[str, Any]:
    data = site_dict(broker_url="mqtt://127.0.0.1:1883", data_dir=tmp_path)
    data["devices"]["broadcast"] = [
        {
            "id": "pa-main",
            "name": "广播",
            "location": {"floor": "1F", "zone": "gate"},
            "url": "http://10.20.6.10",
            "zones": [{"id": "z1", "name": "1F"}],
        }
    ]
    return data


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_config_validate_refuses_a_bad_camera_host_naming_the_camera(
    tmp_path: Path, host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _site(tmp_path)
    camera = data["devices"]["cameras"][0]
    camera["host"] = host
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"devices.cameras[{camera['id']}].host:" in err and "Traceback" not in err


def test_every_bad_address_of_every_kind_is_named_in_one_run(tmp_path: Path) -> None:
    data = _site(tmp_path)
    data["devices"]["cameras"][0]["host"] = "cam_1..local"
    data["devices"]["broadcast"][0]["url"] = "http://pa 1/x"
    data["http"]["host"] = "-bad host!"
    data["http"]["public_url"] = "https://hub..local:8443"
    data["alarm_receiver"]["host"] = "10.20.1.999"
    data["police"]["url"] = "mqtt://broker_1:1883"
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    paths = {p for p, _ in info.value.errors}
    cam, pa = data["devices"]["cameras"][0]["id"], data["devices"]["broadcast"][0]["id"]
    assert {
        f"devices.cameras[{cam}].host",
        f"devices.broadcast[{pa}].url",
        "http.host",
        "http.public_url",
        "alarm_receiver.host",
        "police.url",
    } <= paths


def test_sip_controllers_take_sip_uris(tmp_path: Path) -> None:
    data = _site(tmp_path)
    data["devices"]["broadcast"][0].update(driver="sip", url="sip:paging@10.20.6.10:5060")
    parse_config(data, env={})
    data["devices"]["broadcast"][0]["url"] = "sip:pa_1:5060"
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    assert info.value.errors[0][0] == "devices.broadcast[pa-main].url"


@pytest.mark.parametrize(
    "good", ["10.20.1.9", "cam-1.mall.local", "localhost", "::1", "[fe80::1]", "0.0.0.0"]
)
def test_good_hosts_pass(good: str) -> None:
    assert check_host(good) == good


@settings(max_examples=300, deadline=None)
@given(hostile_text())
def test_hostile_hosts_and_urls_are_refused_with_a_message_or_pass(value: str) -> None:
    for check in (check_host, lambda v: check_url(v, ("http", "https")), check_sip_uri):
        try:
            check(value)
        except ValueError as exc:
            assert str(exc)
        else:
            assert value.isascii() and " " not in value and "\x00" not in value


def test_a_missing_variable_is_one_line_naming_devices_by_id(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("MALLHUB_"):
            monkeypatch.delenv(name)
    assert main(["config", "validate", str(ROOT / "config" / "example-mall.yaml")]) == 2
    lines = capsys.readouterr().err.splitlines()[1:]
    assert len(lines) == 4, lines
    camera = next(line for line in lines if "MALLHUB_CAMERA_PASSWORD" in line)
    assert "devices.cameras[cam-" in camera and "64 more" in camera
    assert not any(re.search(r"\.\d+\.", line) for line in lines)  # no positions


def test_the_example_configs_own_advice_works(tmp_path: Path) -> None:
    text = (ROOT / "config" / "example-mall.yaml").read_text(encoding="utf-8")
    start = text.index("# Check it with")
    lines = []
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("#   "):
            break
        lines.append(line[4:])
    command = "\n".join(lines).replace("mallhub ", f"{sys.executable} -m hub.cli ")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLHUB_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout
