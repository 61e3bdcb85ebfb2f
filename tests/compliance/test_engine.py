"""The engine and the service: acceptance cases, snapshots, since, the retained summary,
and reports for past dates from stored history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from sqlalchemy import func, select

from hub.compliance.engine import ComplianceResult, ComplianceService, evaluate
from hub.compliance.facts import DETAIL_KEYS, Facts, LinkFacts
from hub.compliance.rules import RULES, required_guards
from hub.store.models import ComplianceSnapshot, Outbox, Retained
from tests.compliance.world import COVERED, GOOD_CAMERA, world
from tests.support.wait import wait_until

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "compliance.schema.json"
VALIDATOR = Draft202012Validator(
    json.loads(SCHEMA.read_text(encoding="utf-8")),
    format_checker=Draft202012Validator.FORMAT_CHECKER,
)


def failing_subjects(result: ComplianceResult, rule: str) -> set[str]:
    return {e.subject for e in result.rule(rule).outcome.evidence if e.ok is False}


def assert_valid_summary(message: dict[str, Any]) -> None:
    errors = sorted(VALIDATOR.iter_errors(message), key=str)
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


# --- acceptance cases ------------------------------------------------------------------------


async def test_gate_camera_offline_fails_coverage_and_online_then_recovers(
    database_url: str, tmp_path: Path
) -> None:
    async with world(tmp_path, database_url) as w:
        async with ComplianceService(w.config, w.engine, w.writer, lambda: w.link) as svc:
            await wait_until(lambda: svc.latest is not None, what="first evaluation")
            assert svc.latest is not None and svc.latest.overall == "compliant"

            went_down = datetime.now(UTC).replace(microsecond=0)
            await w.state("cam-gate-1", "offline", at=went_down)
            svc.poke()
            await wait_until(
                lambda: svc.latest is not None and svc.latest.overall == "non_compliant",
                what="the offline camera to be noticed",
            )
            result = svc.latest
            assert result is not None
            for rule in ("VID-COVERAGE", "VID-ONLINE"):
                assert result.rule(rule).status == "fail"
                assert failing_subjects(result, rule) == {"cam-gate-1"}
                assert result.rule(rule).since == went_down
                assert "cam-gate-1" in result.rule(rule).outcome.explanation.zh
            summary = result.summary()
            assert_valid_summary(summary)
            assert {f["rule"] for f in summary["failing"]} == {"VID-COVERAGE", "VID-ONLINE"}

            await w.state("cam-gate-1", "online", at=datetime.now(UTC))
            result = await svc.evaluate_now()
            assert result.rule("VID-COVERAGE").status == "pass"
            assert result.rule("VID-ONLINE").status == "pass"
            assert result.overall == "compliant"

        # A snapshot per change of outcome, and the retained summary follows the last one.
        async with w.engine.connect() as c:
            overalls = (
                (
                    await c.execute(
                        select(ComplianceSnapshot.overall).order_by(ComplianceSnapshot.id)
                    )
                )
                .scalars()
                .all()
            )
            retained = (
                await c.execute(select(Retained.payload).where(Retained.topic.like("%/compliance")))
            ).scalar_one()
            queued = (await c.execute(select(Outbox).where(Outbox.kind == "compliance"))).all()
        assert overalls == ["compliant", "non_compliant", "compliant"]
        assert json.loads(retained)["overall"] == "compliant"
        # Unpublished summaries coalesce: only the latest waits in the outbox.
        assert len(queued) == 1
        assert queued[0].retain and queued[0].priority == 5
        assert queued[0].topic == f"mallhub/v1/{w.config.site.id}/compliance"
        assert json.loads(queued[0].payload)["overall"] == "compliant"


async def test_clock_drift_beyond_5_s_fails_vid_clock(database_url: str, tmp_path: Path) -> None:
    async with world(tmp_path, database_url) as w:
        await w.detail("cam-park-1", clock_offset_s=5.0)
        assert (await w.evaluate()).rule("VID-CLOCK").status == "pass"  # the limit itself is ok
        await w.detail("cam-park-1", clock_offset_s=5.6)
        result = await w.evaluate()
    assert result.rule("VID-CLOCK").status == "fail"
    assert failing_subjects(result, "VID-CLOCK") == {"cam-park-1"}
    ev = [e for e in result.rule("VID-CLOCK").outcome.evidence if e.ok is False]
    assert ev[0].value == 5.6 and ev[0].limit == 5


async def test_covered_camera_fails_vid_quality(database_url: str, tmp_path: Path) -> None:
    async with world(tmp_path, database_url) as w:
        await w.detail("cam-gate-1", findings=[COVERED])
        result = await w.evaluate()
    r = result.rule("VID-QUALITY")
    assert r.status == "fail"
    assert failing_subjects(result, "VID-QUALITY") == {"cam-gate-1"}
    assert "画面遮挡" in r.outcome.explanation.zh
    assert "covered" in r.outcome.explanation.en.lower()


async def test_supervision_lost_fails_alm_supervision(database_url: str, tmp_path: Path) -> None:
    async with world(tmp_path, database_url) as w:
        await w.detail("panel-1", supervision="lost")
        result = await w.evaluate()
    assert result.rule("ALM-SUPERVISION").status == "fail"
    assert failing_subjects(result, "ALM-SUPERVISION") == {"panel-1"}


@pytest.mark.parametrize(("guards", "status"), [(40, "fail"), (44, "fail"), (45, "pass")])
async def test_guards_for_45000_m2(
    guards: int, status: str, database_url: str, tmp_path: Path
) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["site"].update(floor_area_m2=45_000, guards=guards)

    async with world(tmp_path, database_url, edit=edit) as w:
        result = await w.evaluate()
    assert result.rule("STAFF-GUARDS").status == status
    assert "45" in result.rule("STAFF-GUARDS").outcome.explanation.zh


def test_required_guards_bands_and_rounding() -> None:
    assert required_guards(9_999) is None
    assert required_guards(10_000) == 20
    assert required_guards(19_999) == 20
    assert required_guards(20_000) == 30
    assert required_guards(30_000) == 30
    assert required_guards(30_001) == 31  # a started 1000 m² counts
    assert required_guards(45_000) == 45
    assert required_guards(45_500) == 46


@given(st.floats(min_value=10_000, max_value=500_000), st.floats(min_value=0, max_value=10_000))
def test_required_guards_never_decreases_with_area(area: float, more: float) -> None:
    a, b = required_guards(area), required_guards(area + more)
    assert a is not None and b is not None and b >= a


async def test_missing_evidence_is_unknown_never_pass(database_url: str, tmp_path: Path) -> None:
    # An empty store: no device states, no events, no records, no link.
    async with world(tmp_path, database_url, populated=False) as w:
        w.link = None
        result = await w.evaluate()
    config_only = {"ALM-LOCATIONS", "BRD-LINKED", "STAFF-GUARDS", "VID-COVERAGE"}
    # Every notice the police sent is in the store: none stored is a fact, not a gap.
    assert result.rule("POL-NOTICE").status == "pass"
    config_only.add("POL-NOTICE")
    for r in result.rules:
        if r.rule_id in config_only:
            continue
        assert r.status in ("unknown", "fail"), (r.rule_id, r.status)
    # Records missing are a fact (nothing was recorded): those fail; measurements are unknown.
    for rule in ("VID-ONLINE", "VID-CLOCK", "VID-QUALITY", "ALM-SUPERVISION", "POL-LINK"):
        assert result.rule(rule).status == "unknown"
    assert result.rule("VID-COVERAGE").status == "unknown"  # cameras exist, state unknown
    assert result.overall == "non_compliant"  # no drill, training or register recorded
    assert_valid_summary(result.summary())


@given(st.sets(st.sampled_from(DETAIL_KEYS), min_size=1))
def test_a_missing_probe_value_never_passes(missing: set[str]) -> None:
    facts = _pure_facts({k: v for k, v in GOOD_CAMERA.items() if k not in missing})
    result = evaluate(facts)
    needs = {
        "VID-FRAMERATE": {"fps_limit", "fps_measured"},
        "VID-RESOLUTION": {"resolution"},
        "VID-CLOCK": {"clock_offset_s"},
        "VID-QUALITY": {"findings"},
    }
    for rule, keys in needs.items():
        status = result.rule(rule).status
        assert status == ("unknown" if keys & missing else "pass"), (rule, missing, status)


def _pure_facts(camera_detail: dict[str, Any]) -> Facts:
    """Facts without a store, for property tests of the pure rule functions."""
    from hub.compliance.facts import DeviceFacts
    from hub.config import parse_config
    from tests.compliance.world import CAMERAS, full_site_dict

    cfg = parse_config(full_site_dict(Path("/nonexistent"), "sqlite+aiosqlite://"), env={})
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    facts = Facts(config=cfg, at=now, live=True)
    for cam, role in CAMERAS.items():
        facts.devices[cam] = DeviceFacts(
            cam,
            "camera",
            cam,
            role,
            f"z-{role}",
            "1F",
            True,
            None,
            "online",
            now - timedelta(days=2),
            "",
            now,
            camera_detail,
            now,
            1.0,
            86400.0,
            None,
        )
    facts.link = LinkFacts(True, now, 0, None, "optional", now)
    return facts


# --- the summary message ------------------------------------------------------------------------


async def test_summary_validates_against_schema_in_every_state(
    database_url: str, tmp_path: Path
) -> None:
    async with world(tmp_path, database_url) as w:
        good = await w.evaluate()
        await w.state("cam-fin-1", "offline", at=datetime.now(UTC))
        await w.detail("cam-gate-1", clock_offset_s=None, findings=[COVERED])
        w.link = None
        bad = await w.evaluate()
    for result in (good, bad):
        assert_valid_summary(result.summary())
    s = bad.summary()
    assert s["schema"] == "mallhub/compliance/1" and s["overall"] == "non_compliant"
    assert s["counts"]["fail"] == sum(1 for f in s["failing"] if f["status"] == "fail")
    assert s["counts"]["unknown"] == sum(1 for f in s["failing"] if f["status"] == "unknown")
    assert sum(s["counts"].values()) == len(RULES)
    by_rule = {f["rule"]: f for f in s["failing"]}
    assert by_rule["VID-CLOCK"]["status"] == "unknown"
    assert by_rule["POL-LINK"]["status"] == "unknown"
    assert by_rule["VID-QUALITY"]["title"]["zh"] == "视频画面可用"
    assert by_rule["VID-ONLINE"]["evidence"][0]["subject"] == "cam-fin-1"


# --- since, snapshots, the service -------------------------------------------------------------


async def test_since_survives_evaluations_and_restarts(database_url: str, tmp_path: Path) -> None:
    async with world(tmp_path, database_url) as w:
        await w.detail("cam-entr-1", clock_offset_s=30.0)
        async with ComplianceService(w.config, w.engine, w.writer, lambda: w.link) as svc:
            first = await svc.evaluate_now()
            since = first.rule("VID-CLOCK").since
            again = await svc.evaluate_now()
            assert again.rule("VID-CLOCK").since == since
            assert svc.snapshots == 1  # nothing changed: no second snapshot
        async with ComplianceService(w.config, w.engine, w.writer, lambda: w.link) as svc:
            later = await svc.evaluate_now()
        assert later.rule("VID-CLOCK").status == "fail"
        assert later.rule("VID-CLOCK").since == since
        failing = {f["rule"]: f for f in later.summary()["failing"]}
        assert failing["VID-CLOCK"]["since"] is not None


async def test_service_republish_forces_a_snapshot_and_async_link_provider(
    database_url: str, tmp_path: Path
) -> None:
    async with world(tmp_path, database_url) as w:

        async def link() -> LinkFacts | None:
            return w.link

        async with ComplianceService(w.config, w.engine, w.writer, link) as svc:
            await wait_until(lambda: svc.evaluations >= 1, what="first evaluation")
            summary = await svc.republish({"request_id": "r1"})
            assert_valid_summary(summary)
            assert svc.snapshots == 2
        async with w.engine.connect() as c:
            n = (await c.execute(select(func.count()).select_from(ComplianceSnapshot))).scalar()
        assert n == 2


# --- past dates ----------------------------------------------------------------------------------


async def test_report_for_an_earlier_time_reproduces_that_status(
    database_url: str, tmp_path: Path
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    async with world(tmp_path, database_url, base=t0) as w:
        # The hub evaluated at t0 (live) and stored its snapshot.
        svc = ComplianceService(w.config, w.engine, w.writer, lambda: w.link, clock=lambda: t0)
        then = await svc.evaluate_now(force_store=True)
        for rule in ("VID-COVERAGE", "VID-ONLINE", "VID-CLOCK", "VID-QUALITY"):
            assert then.rule(rule).status == "pass"

        # Since then: the gate camera went offline, a clock drifted, a finding failed.
        changed = t0 + timedelta(minutes=10)
        await w.state("cam-gate-1", "offline", at=changed)
        await w.detail("cam-perim-1", clock_offset_s=42.0, findings=[COVERED])
        now = await w.evaluate()
        for rule in ("VID-COVERAGE", "VID-ONLINE", "VID-CLOCK", "VID-QUALITY"):
            assert now.rule(rule).status == "fail"

        past = await w.evaluate(t0 + timedelta(minutes=5))
    assert not past.facts.live and past.facts.snapshot_at == t0
    assert past.overall == then.overall
    assert {r.rule_id: r.status for r in past.rules} == {r.rule_id: r.status for r in then.rules}
    cam = past.facts.devices["cam-gate-1"]
    assert cam.state == "online" and cam.detail is not None
    assert cam.detail["clock_offset_s"] == GOOD_CAMERA["clock_offset_s"]


async def test_past_report_without_a_snapshot_says_unknown(
    database_url: str, tmp_path: Path
) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=5)
    async with world(tmp_path, database_url, base=t0) as w:
        past = await w.evaluate(t0 + timedelta(hours=1))
    # States come from history; what has no history is missing, never assumed good.
    assert past.rule("VID-COVERAGE").status == "pass"
    for rule in ("VID-CLOCK", "VID-QUALITY", "VID-FRAMERATE", "POL-LINK", "ALM-SUPERVISION"):
        assert past.rule(rule).status == "unknown", rule
    # Records entered after that moment do not count for it.
    assert past.rule("DRILL-QUARTERLY").status == "fail"
