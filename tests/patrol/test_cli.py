"""``mallhub patrol``: the demo as one command, config errors, officers' accounts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from hub.cli import main
from patrol.accounts import authorization

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_prints_its_address_and_a_one_run_password() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "patrol",
            "demo",
            "--malls",
            "4",
            "--duration",
            "12",
            "--http-port",
            "0",
            "--press-every",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    m = re.search(
        r"overview: (http://127\.0\.0\.1:\d+)  user: demo  password \(this run only\): (\S+)", out
    )
    assert m is not None, out
    assert len(m.group(2)) >= 12
    stored = re.search(r"stopping \((\d+) events stored", out)
    assert stored is not None and int(stored.group(1)) > 0, out
    assert "Traceback" not in out
    with pytest.raises(OSError):  # everything stopped with the demo
        urllib.request.urlopen(m.group(1), timeout=2)


def test_bad_config_exits_2_with_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "patrol.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "nats": {"servers": ["http://x"]},
                "database_url": "mysql://x",
                "malls": [{"site_id": "a.b"}],
            }
        )
    )
    assert main(["patrol", "check", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "nats.servers" in err and "database_url" in err and "malls.0.site_id" in err
    assert "no '.'" in err


def test_user_add_refuses_weak_passwords_and_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "patrol.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "nats": {"servers": ["nats://127.0.0.1:1"]},
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
            }
        )
    )
    import io

    args = [
        "patrol",
        "user",
        "add",
        "chen",
        "--role",
        "supervisor",
        "--config",
        str(cfg),
        "--password-stdin",
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(args) == 2
    assert "at least 10" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password\n"))
    assert main(args) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password\n"))
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    # An officer's supervisor must be a supervisor's account (overdue notices go there).
    officer = [*args[:3], "wu", "--role", "officer", *args[6:]]
    for boss, code in (("nobody", 2), ("chen", 0)):
        monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password\n"))
        assert main([*officer, "--supervisor", boss]) == code
    err = capsys.readouterr().err
    assert "'nobody' is not a supervisor" in err and "Traceback" not in err


def test_nats_accounts_confine_each_mall_to_its_prefix() -> None:
    text = authorization(["zz-a-1", "zz-b-2"])
    assert "$PATROL_NATS_PASSWORD" in text and "$MALLHUB_NATS_PW_ZZ_A_1" in text
    assert 'allow: ["mallhub.v1.zz-a-1.>"], deny: ["mallhub.v1.zz-a-1.commands.>"' in text
    with pytest.raises(ValueError):
        authorization(["bad.site"])


def test_the_compose_profiles_mall_user_is_what_the_generator_writes() -> None:
    conf = (ROOT / "config" / "nats" / "auth.conf").read_text()
    [line] = [x for x in authorization(["zz-jinshui-001"]).splitlines() if "zz-jinshui-001" in x]
    assert line.strip() in conf
