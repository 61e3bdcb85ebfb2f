"""``mallhub user …`` and ``mallhub token …``: no default account, passwords asked for,
tokens printed once and stored hashed, no tracebacks for mistakes."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.cli import main
from hub.store import create_engine
from hub.store.models import ApiToken, AuditLog, User
from hub.web.auth import token_hash, verify_password
from tests.support.sites import write_site


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_site(tmp_path / "site.yaml", broker_url="mqtt://127.0.0.1:1", data_dir=tmp_path)


def run(monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(args)


def rows(config: Path, query: object) -> list[object]:
    async def go() -> list[object]:
        engine = create_engine(f"sqlite+aiosqlite:///{config.parent / 'mallhub.db'}")
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(query)).all())  # type: ignore[call-overload]
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_user_add_list_disable_and_token(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ["--config", str(config)]
    assert run(monkeypatch, ["user", "list", *cfg]) == 0
    assert "no users" in capsys.readouterr().out  # there is no default account
    pw = "a long password 1"
    assert (
        run(
            monkeypatch,
            ["user", "add", "zhang", "--role", "admin", "--password-stdin", *cfg],
            stdin=pw + "\n",
        )
        == 0
    )
    assert (
        run(
            monkeypatch,
            ["user", "add", "zhang", "--role", "admin", "--password-stdin", *cfg],
            stdin=pw + "\n",
        )
        == 1
    )
    assert "already exists" in capsys.readouterr().err
    (user,) = rows(config, select(User))
    assert user.role == "admin" and verify_password(pw, user.password_hash)  # type: ignore[attr-defined]
    assert pw not in user.password_hash  # type: ignore[attr-defined]

    assert run(monkeypatch, ["token", "create", "nvr", "--user", "zhang", *cfg]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("mh_") and "shown only now" in out.err
    (stored,) = rows(config, select(ApiToken))
    assert stored.token_hash == token_hash(token)  # type: ignore[attr-defined]

    assert run(monkeypatch, ["user", "disable", "zhang", *cfg]) == 0
    assert run(monkeypatch, ["user", "list", *cfg]) == 0
    assert "disabled" in capsys.readouterr().out
    actions = [r.action for r in rows(config, select(AuditLog))]  # type: ignore[attr-defined]
    assert actions == ["user.created", "token.created", "user.updated"]


def test_mistakes_are_reported_without_tracebacks(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ["--config", str(config)]
    assert (
        run(
            monkeypatch,
            ["user", "add", "li", "--role", "admin", "--password-stdin", *cfg],
            stdin="short\n",
        )
        == 2
    )
    assert "at least 10" in capsys.readouterr().err
    assert (
        run(
            monkeypatch,
            ["user", "add", "bad name!", "--role", "viewer", "--password-stdin", *cfg],
            stdin="a long password 1\n",
        )
        == 2
    )
    assert run(monkeypatch, ["user", "disable", "nobody", *cfg]) == 1
    assert run(monkeypatch, ["token", "create", "x", "--user", "nobody", *cfg]) == 1
    assert run(monkeypatch, ["token", "revoke", "99", *cfg]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nobody" in err
    with pytest.raises(SystemExit) as exc:
        run(monkeypatch, ["user", "add", "li", "--role", "root", *cfg])
    assert exc.value.code == 2


def test_interactive_password_is_asked_twice(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["first password 1", "other password 2"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert (
        run(monkeypatch, ["user", "add", "wang", "--role", "operator", "--config", str(config)])
        == 2
    )
    assert "do not match" in capsys.readouterr().err
    answers = iter(["same password 12", "same password 12"])
    assert (
        run(monkeypatch, ["user", "add", "wang", "--role", "operator", "--config", str(config)])
        == 0
    )
