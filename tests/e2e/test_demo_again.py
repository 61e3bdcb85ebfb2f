"""`mallhub demo` on a data directory from an earlier run, its start and stop order, and
what it does with its data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NOISE = ("Traceback", "already exists", "not ready for linkage", "event subscription failed")


def _demo(*extra: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "demo", "--http-port", "0", "--duration", "3", *extra],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    for noise in NOISE:
        assert noise not in out, [line for line in out.splitlines() if noise in line][:5]
    return out


def test_the_demo_runs_again_on_its_own_data_dir_and_says_where_it_is(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    first = _demo("--data-dir", str(data))
    second = _demo("--data-dir", str(data))
    for out in (first, second):
        assert "user: demo  password (this run only):" in out
        assert f"mallhub demo: data kept in {data}" in out
    assert (data / "mallhub.db").exists()


def test_a_temporary_demo_data_dir_is_removed_and_the_demo_says_so(tmp_path: Path) -> None:
    out = _demo(env={"TMPDIR": str(tmp_path)})
    assert "mallhub demo: removed its data directory" in out
    assert not any(p.name.startswith("mallhub-demo-") for p in tmp_path.iterdir())
