"""``mallhub records`` and ``mallhub compliance`` through ``hub.cli.main``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from hub.cli import main
from hub.compliance.engine import ComplianceService
from hub.store.audit import verify_chain
from hub.store.models import AuditLog, Record
from tests.compliance.world import World, world

TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()  # the test site's own calendar


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` points the root logger at the captured stderr; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def days_ago(n: int) -> str:
    return (TODAY - timedelta(days=n)).isoformat()


def run_sync(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The CLI runs its own event loop: give it a thread, as a shell would a process."""
    return await asyncio.to_thread(run_sync, capsys, *argv)


async def test_records_add_list_close_and_attest(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(tmp_path, database_url, populated=False) as w:
        cfg = str(w.path)
        code, out, _ = await run(
            capsys,
            "records",
            "add",
            "drill",
            "--config",
            cfg,
            "--date",
            days_ago(3),
            "--title",
            "抢劫应急演练",
            "--type",
            "robbery",
            "--by",
            "王经理",
        )
        assert code == 0 and "added drill #" in out
        code, out, _ = await run(
            capsys,
            "records",
            "add",
            "training",
            "-c",
            cfg,
            "--date",
            days_ago(1),
            "--title",
            "月度安全培训",
        )
        assert code == 0
        code, out, _ = await run(
            capsys,
            "records",
            "add",
            "hazard",
            "-c",
            cfg,
            "--title",
            "消防通道堆物",
            "--owner",
            "李四",
            "--due",
            (TODAY + timedelta(days=7)).isoformat(),
        )
        assert code == 0
        hazard_id = int(out.split("#")[1].split(":")[0])
        code, out, _ = await run(capsys, "records", "add", "review", "-c", cfg)
        assert code == 0
        code, out, _ = await run(
            capsys,
            "records",
            "attest",
            "staff-team",
            "-c",
            cfg,
            "--by",
            "王经理",
            "--evidence",
            "内部防范组织名单（8人）",
            "--expires",
            (TODAY + timedelta(days=180)).isoformat(),
        )
        assert code == 0 and "added attestation" in out
        code, out, _ = await run(capsys, "records", "close", "hazard", str(hazard_id), "-c", cfg)
        assert code == 0 and f"closed hazard #{hazard_id}" in out

        code, out, _ = await run(capsys, "records", "list", "-c", cfg, "--json")
        assert code == 0
        rows = json.loads(out)
        assert [r["kind"] for r in rows].count("drill") == 1
        by_kind = {r["kind"]: r for r in rows}
        assert by_kind["drill"]["detail"]["type"] == "robbery"
        assert by_kind["drill"]["created_by"] == "王经理"
        assert by_kind["hazard"]["owner"] == "李四" and by_kind["hazard"]["closed_at"]
        assert by_kind["attestation"]["rule_id"] == "STAFF-TEAM"
        code, out, _ = await run(capsys, "records", "list", "-c", cfg, "--kind", "hazard")
        assert code == 0 and "消防通道堆物" in out and "抢劫" not in out

        # Every change is in the audit log, whose chain is intact.
        async with w.engine.connect() as c:
            actions = (await c.execute(select(AuditLog.action).order_by(AuditLog.id))).all()
            kinds = {r.kind for r in (await c.execute(select(Record.kind))).all()}
        assert [a for (a,) in actions] == [
            "record.drill",
            "record.training",
            "record.hazard",
            "record.review",
            "record.attestation",
            "record.hazard_closed",
        ]
        assert kinds == {"drill", "training", "hazard", "review", "attestation"}
        assert (await verify_chain(w.engine)).ok

        result = await w.evaluate()
    assert result.rule("DRILL-QUARTERLY").status == "pass"
    assert result.rule("TRAIN-MONTHLY").status == "pass"
    assert result.rule("HAZ-REGISTER").status == "pass"
    assert result.rule("STAFF-TEAM").status == "attested"
    attestation = result.rule("STAFF-TEAM").outcome.attestation
    assert attestation is not None and attestation.by == "王经理"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "drill", "--date", "2026-13-01", "--title", "x"], "is not a date"),
        (["add", "drill", "--date", "2999-01-01", "--title", "x"], "in the future"),
        (["add", "drill", "--date", "2026-11-01", "--title", "  "], "must not be empty"),
        (["add", "training", "--date", "yesterday", "--title", "x"], "is not a date"),
        (["add", "hazard", "--title", "x", "--owner", "y", "--due", "2020-01-01"], "before"),
        (
            ["attest", "VID-CLOCK", "--by", "a", "--evidence", "b", "--expires", "2099-01-01"],
            "cannot be attested",
        ),
        (
            ["attest", "NO-SUCH", "--by", "a", "--evidence", "b", "--expires", "2099-01-01"],
            "no rule",
        ),
        (
            ["attest", "STAFF-TEAM", "--by", "a", "--evidence", "b", "--expires", "2001-01-01"],
            "in the past",
        ),
        (["close", "hazard", "999"], "no record 999"),
    ],
)
async def test_records_bad_input_exits_2_without_traceback(
    argv: list[str],
    message: str,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with world(tmp_path, database_url, populated=False) as w:
        code, _out, err = await run(capsys, "records", *argv, "--config", str(w.path))
    assert code == 2
    assert message in err and "Traceback" not in err


async def test_closing_twice_and_closing_a_drill_are_refused(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(tmp_path, database_url, populated=False) as w:
        cfg = str(w.path)
        await run(
            capsys, "records", "add", "drill", "-c", cfg, "--date", days_ago(1), "--title", "d"
        )
        await run(
            capsys,
            "records",
            "add",
            "hazard",
            "-c",
            cfg,
            "--title",
            "h",
            "--owner",
            "o",
            "--due",
            TODAY.isoformat(),
        )
        assert (await run(capsys, "records", "close", "hazard", "2", "-c", cfg))[0] == 0
        code, _, err = await run(capsys, "records", "close", "hazard", "2", "-c", cfg)
        assert code == 2 and "already closed" in err
        code, _, err = await run(capsys, "records", "close", "hazard", "1", "-c", cfg)
        assert code == 2 and "not a hazard" in err


def test_missing_arguments_and_bad_config_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["records", "add", "hazard", "--config", "x.yaml", "--title", "t"])
    assert exc.value.code == 2
    assert "--owner" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {id: 'x'}\n", encoding="utf-8")
    code, _, err = run_sync(capsys, "records", "list", "--config", str(bad))
    assert code == 2 and "invalid configuration" in err
    code, _, err = run_sync(capsys, "compliance", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read" in err


async def test_compliance_report_json_and_html(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(tmp_path, database_url) as w:
        await w.detail("cam-gate-1", clock_offset_s=9.0)
        cfg = str(w.path)
        code, out, _ = await run(capsys, "compliance", "--config", cfg)
        assert code == 0
        report = json.loads(out)
        assert report["schema"] == "mallhub/compliance-report/1"
        assert report["site"]["name"] == "测试商场"
        rules = {r["rule"]: r for r in report["rules"]}
        assert len(rules) == 25  # the catalogue and POL-NOTICE
        assert rules["VID-CLOCK"]["status"] == "fail"
        assert rules["VID-CLOCK"]["title"]["zh"] == "摄像机时钟同步"
        # Run from the command line the police link's state is not known (the hub's own
        # snapshot would say; there is none yet).
        assert rules["POL-LINK"]["status"] == "unknown"
        assert report["overall"] == "non_compliant"
        roles = {row["role"]: row for row in report["availability"]}
        assert roles["gate"]["online"] == 1 and roles["gate"]["devices"] == 2

        out_file = tmp_path / "report.html"
        code, out, err = await run(
            capsys, "compliance", "-c", cfg, "--format", "html", "--output", str(out_file)
        )
        assert code == 0 and "non_compliant" in err
        html = out_file.read_text(encoding="utf-8")
        assert html.startswith("<!DOCTYPE html>") and 'lang="zh-CN"' in html
        assert "平安商场合规报告" in html and "测试商场" in html and "郑州市金水区测试路1号" in html
        for title in ("视频监控覆盖要害部位", "摄像机时钟同步", "按营业面积配足专职保安"):
            assert title in html
        assert 'class="status fail"' in html and "不合格" in html
        assert "@media print" in html and "@page" in html
        assert "各部位设备在线情况" in html

        code, out, _ = await run(
            capsys, "compliance", "-c", cfg, "--format", "html", "--lang", "en"
        )
        assert code == 0 and 'lang="en"' in out
        assert "Camera clocks synchronised" in out and "Safe Mall compliance report" in out


async def test_compliance_report_for_yesterday_reproduces_yesterday(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yesterday = TODAY - timedelta(days=1)
    # Late yesterday (local time) the hub took its snapshot with everything online.
    from hub.compliance.records import end_of_day

    async with world(tmp_path, database_url, populated=False) as w:
        t0 = end_of_day(w.config, yesterday) - timedelta(minutes=50)
        w.base = t0
        from tests.compliance.world import populate

        await populate(w)
        svc = ComplianceService(w.config, w.engine, w.writer, lambda: w.link, clock=lambda: t0)
        then = await svc.evaluate_now(force_store=True)
        assert then.rule("VID-COVERAGE").status == "pass"
        assert then.rule("POL-LINK").status == "pass"
        # Today the gate camera is offline.
        await _gate_down(w)
        cfg = str(w.path)
        code, out, _ = await run(capsys, "compliance", "-c", cfg, "--at", yesterday.isoformat())
        assert code == 0
        past = json.loads(out)
        code, out, _ = await run(capsys, "compliance", "-c", cfg)
        now = json.loads(out)
    assert past["live"] is False
    assert {r["rule"]: r["status"] for r in past["rules"]} == {
        r.rule_id: r.status for r in then.rules
    }
    assert past["overall"] == then.overall
    now_rules = {r["rule"]: r["status"] for r in now["rules"]}
    assert now_rules["VID-COVERAGE"] == "fail"


async def _gate_down(w: World) -> None:
    await w.state("cam-gate-1", "offline", at=datetime.now(UTC))


async def test_compliance_bad_dates_exit_2(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(tmp_path, database_url, populated=False) as w:
        for value, message in (
            ("2026-02-30", "not a date"),
            ((TODAY + timedelta(days=5)).isoformat(), "in the future"),
            ("2026-11-01T10:00:00", "time zone"),
        ):
            code, _, err = await run(capsys, "compliance", "-c", str(w.path), "--at", value)
            assert code == 2, value
            assert message in err and "Traceback" not in err
