"""`mallhub run` as operators start it: JSON logs on request, an orderly stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from hub import __version__
from hub.broker import LocalMosquitto
from hub.cli import main
from simulators.police import PolicePlatform
from tests.support.sites import write_site


def test_version(capsys: object) -> None:
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert __version__ in capsys.readouterr().out  # type: ignore[attr-defined]


async def test_sigterm_stops_in_order_and_logs_json(broker: LocalMosquitto, tmp_path: Path) -> None:
    config = write_site(tmp_path / "site.yaml", broker_url=broker.url, data_dir=tmp_path / "d")
    async with PolicePlatform(broker.url, site="test-mall") as police:
        view = police.view("test-mall")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub.cli",
            "--log-json",
            "run",
            "--config",
            str(config),
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            await police.wait_for(
                lambda: view.status is not None and view.status["state"] == "online", within=30
            )
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            await police.wait_for(
                lambda: view.status is not None and view.status["state"] == "offline", within=10
            )
            assert view.status is not None and view.status.get("reason") == "hub stopped"
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.stderr is not None
        err = (await proc.stderr.read()).decode()
        lines = [ln for ln in err.splitlines() if ln.strip()]
        records = [json.loads(ln) for ln in lines]  # every line is a JSON object
        assert records and all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
        assert any(r["msg"] == "stopping" for r in records)
