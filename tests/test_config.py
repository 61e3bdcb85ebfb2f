"""Site configuration: validation messages by path, environment substitution, CLI exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.cli import main
from hub.config import ConfigError, load_config, parse_config, substitute_env
from tests.support.sites import site_dict


def base(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    return site_dict(broker_url="mqtt://127.0.0.1:1883", data_dir=tmp_path)


def test_valid_config_loads(tmp_path: Path) -> None:
    cfg = parse_config(base(tmp_path), env={})
    assert cfg.site.id == "test-mall"
    assert cfg.topic_prefix == "mallhub/v1/test-mall"
    assert [d for d, _ in cfg.iter_device_ids()][:3] == ["panel-1", "btn-gate-1", "btn-duty-1"]


def test_every_bad_field_is_named_by_its_path(tmp_path: Path) -> None:
    data = base(tmp_path)
    data["site"]["floor_area_m2"] = -5
    data["police"]["url"] = "http://broker"
    data["devices"]["alarm_panels"][0]["zones"][1]["location"]["role"] = "kitchen"
    data["devices"]["cameras"][0]["port"] = 70000
    data["surprise"] = 1
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    paths = {p for p, _ in info.value.errors}
    assert {
        "site.floor_area_m2",
        "police.url",
        "devices.alarm_panels[panel-1].zones[btn-duty-1].location.role",
        "devices.cameras[cam-gate-1].port",
        "surprise",
    } <= paths


def test_cross_field_problems_are_reported(tmp_path: Path) -> None:
    data = base(tmp_path)
    data["devices"]["cameras"][0]["id"] = "btn-gate-1"  # duplicate id
    data["linkage"] = [
        {"name": "r1", "actions": [{"type": "ptz_preset", "camera": "nope", "preset": "1"}]}
    ]
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    text = str(info.value)
    assert "'btn-gate-1' is used twice" in text
    assert "unknown camera 'nope'" in text


def test_env_substitution_with_defaults_and_missing_variables(tmp_path: Path) -> None:
    data = base(tmp_path)
    data["police"]["password"] = "${MQTT_PASSWORD}"
    data["police"]["username"] = "${MQTT_USER:-mall}"
    cfg = parse_config(data, env={"MQTT_PASSWORD": "s3cret"})
    assert cfg.police.username == "mall"
    assert cfg.police.password is not None
    assert cfg.police.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg)  # secrets never show in reprs or logs
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    assert info.value.errors == [
        ("police.password", "environment variable MQTT_PASSWORD is not set")
    ]


def test_keys_with_control_characters_are_shown_escaped_on_one_line(tmp_path: Path) -> None:
    data = base(tmp_path)
    data["police"]["password"] = "${MQTT_PASSWORD}"
    data["police"]["x\ny"] = "${MQTT_PASSWORD}"
    data["devices"]["alarm_panels"][0]["id"] = "panel\r1"
    data["devices"]["alarm_panels"][0]["key"] = "tooshort"
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    assert info.value.errors == [
        (
            "police.password",
            "environment variable MQTT_PASSWORD is not set (also needed by 1 more: police.x\\ny)",
        )
    ]
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={"MQTT_PASSWORD": "p"})
    for path, message in info.value.errors:
        assert "\n" not in path + message and "\r" not in path + message, (path, message)
    assert any(path.startswith("devices.alarm_panels[panel\\r1]") for path, _ in info.value.errors)


def test_keys_are_checked_for_their_format(tmp_path: Path) -> None:
    data = base(tmp_path)
    data["devices"]["alarm_panels"][0]["key"] = "tooshort"
    data["devices"]["alarm_panels"][0]["key_format"] = "ascii"
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    assert info.value.errors[0][0] == "devices.alarm_panels[panel-1]"
    assert "16, 24 or 32" in info.value.errors[0][1]


def test_cli_validate_exit_codes_and_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(base(tmp_path), allow_unicode=True), encoding="utf-8")
    assert main(["config", "validate", str(good)]) == 0
    assert "valid" in capsys.readouterr().out

    data = base(tmp_path)
    data["police"]["receipts"] = "sometimes"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert main(["config", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "police.receipts:" in err and "Traceback" not in err

    broken = tmp_path / "broken.yaml"
    broken.write_text("site: [unclosed\n", encoding="utf-8")
    assert main(["config", "validate", str(broken)]) == 2
    assert "invalid YAML at line" in capsys.readouterr().err

    assert main(["config", "validate", str(tmp_path / "missing.yaml")]) == 2


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "SiteConfig"
    assert "police" in schema["properties"]


def test_shipped_configs_are_valid() -> None:
    root = Path(__file__).resolve().parent.parent / "config"
    env = {
        "MALLHUB_POLICE_PASSWORD": "x",
        "MALLHUB_CAMERA_PASSWORD": "x",
        "MALLHUB_PA_PASSWORD": "x",
        "MALLHUB_FINANCE_PANEL_KEY": "00" * 32,
        "DEMO_CAMERA_PASSWORD": "x",
    }
    example = load_config(root / "example-mall.yaml", env=env)
    roles = [c.location.role for c in example.devices.cameras]
    assert len(roles) >= 60
    for role in ("perimeter", "gate", "entrance", "passage", "parking", "finance_room"):
        assert role in roles
    buttons = [b for p in example.devices.alarm_panels for b in p.zones if b.type == "alarm_button"]
    assert len(buttons) >= 8 and len(example.devices.alarm_panels) >= 2
    button_roles = {b.location.role for b in buttons}
    assert {"gate", "monitoring_room", "duty_room", "finance_room"} <= button_roles
    floors = {c.location.floor for c in example.devices.cameras}
    pa_floors = {z.floor for b in example.devices.broadcast for z in b.zones}
    assert floors <= pa_floors  # a broadcast zone on every floor
    assert example.site.floor_area_m2 >= 45000
    demo = load_config(root / "demo.yaml", env=env)
    assert demo.site.id == "demo-mall"


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=20,
    )
)
def test_any_yaml_tree_gives_a_clear_error_or_a_config(tree: object) -> None:
    try:
        parse_config(tree, env={})
    except ConfigError as exc:
        assert exc.errors and all(isinstance(p, str) and m for p, m in exc.errors)


def test_substitution_leaves_non_strings_alone() -> None:
    assert substitute_env({"a": [1, True, None, "${X:-y}"]}, {}) == {"a": [1, True, None, "y"]}


def test_yaml_alias_bomb_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    levels = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        levels.append(f"a{i}: &a{i} [{refs}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(levels) + "\nsite: *a8\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(bomb, env={})
    assert any("nested YAML aliases" in m for _, m in info.value.errors)
    # The error names the key whose expansion ran over, one of the file's own keys.
    [(where, _)] = info.value.errors
    assert where in {f"a{i}" for i in range(9)} | {"site"}


@pytest.mark.parametrize(
    ("text", "where", "code"),
    [
        ("site:\n  id: a\x1f\n", "line 2, column 8", "#x001f"),
        ("\x1f", "line 1, column 1", "#x001f"),
        ("site:\n  name: \ufffe\n", "line 2, column 9", "#xfffe"),
    ],
)
def test_a_character_yaml_refuses_is_one_line_with_its_position(
    tmp_path: Path, text: str, where: str, code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    [(_, message)] = info.value.errors
    assert message == f"invalid YAML at {where}: unacceptable character {code}: " + (
        "special characters are not allowed"
    )
    assert main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "invalid YAML" in line]) == 1
    assert "<unicode string>" not in err and where in err
