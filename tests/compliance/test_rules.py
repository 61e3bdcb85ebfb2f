"""Every rule's pass / fail / unknown (and attested) cases, with facts built in a real store.

Each case starts from a mall that meets every rule (``world.populate``), breaks one thing
the way the rest of the hub would record it, and checks that rule's outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, update

from hub.compliance.facts import LinkFacts
from hub.store.models import AuditLog, Event, EventUpdate, Notice, NoticeStep, Record
from tests.compliance.world import COVERED, GOOD_CAMERA, World, record, world

Mutate = Callable[[World], Awaitable[None]]
Edit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Case:
    name: str
    rule: str
    expect: str
    mutate: Mutate | None = None
    edit: Edit | None = None
    subject: str | None = None
    """A subject that must appear in the evidence as breaking the rule (ok False)."""


async def _noop(_w: World) -> None:
    return None


def _detail(device: str, **changes: Any) -> Mutate:
    async def go(w: World) -> None:
        await w.detail(device, **changes)

    return go


def _state(device: str, state: str, minutes_ago: float = 10) -> Mutate:
    async def go(w: World) -> None:
        await w.state(device, state, at=w.base - timedelta(minutes=minutes_ago))

    return go


def _forget(device: str) -> Mutate:
    async def go(w: World) -> None:
        await w.forget(device)

    return go


def _all_cams(**changes: Any) -> Mutate:
    async def go(w: World) -> None:
        for cam in w.config.devices.cameras:
            await w.detail(cam.id, **changes)

    return go


def _outage(device: str) -> Mutate:
    async def go(w: World) -> None:
        # Offline for an hour this morning, back since: online now, 24 h availability ~96 %.
        await w.state(device, "offline", at=w.base - timedelta(hours=5))
        await w.state(device, "online", at=w.base - timedelta(hours=4))

    return go


def _unreadable_answers(device: str) -> Mutate:
    """What health stores for a camera whose ONVIF answers break the protocol: degraded, and
    only the error as details (nothing current is known about its settings)."""

    async def go(w: World) -> None:
        detail = {"error_type": "ProtocolViolation", "violation": "too_large", "problems": []}
        await w.state(device, "degraded", at=w.base - timedelta(minutes=10), detail=detail)

    return go


def _linkage(elapsed_ms: float, outcome: str = "ok") -> Mutate:
    async def go(w: World) -> None:
        await w.event(
            "alarm.panic",
            "btn-duty-1",
            w.base - timedelta(days=1),
            ack_after_s=10,
            linkage=[
                {
                    "type": "snapshot",
                    "target": "cam-gate-1",
                    "outcome": outcome,
                    "at": "2026-01-01T00:00:00Z",
                    "elapsed_ms": elapsed_ms,
                },
            ],
        )

    return go


async def _no_linkage(w: World) -> None:
    await w.sql(update(EventUpdate).values(message={"event_id": "x"}))


def _remove_button(dev: str) -> Edit:
    def go(d: dict[str, Any]) -> None:
        panel = d["devices"]["alarm_panels"][0]
        panel["zones"] = [z for z in panel["zones"] if z["id"] != dev]

    return go


def _remove_camera(cam: str) -> Edit:
    def go(d: dict[str, Any]) -> None:
        d["devices"]["cameras"] = [c for c in d["devices"]["cameras"] if c["id"] != cam]

    return go


def _unsupervised(d: dict[str, Any]) -> None:
    d["devices"]["alarm_panels"][0]["supervision_interval_s"] = None


async def _panel_silent(w: World) -> None:
    await w.state(
        "panel-1",
        "online",
        at=w.base - timedelta(days=2),
        last_seen=w.base - timedelta(minutes=10),
        history=False,
    )


def _old_test(dev: str, days: int) -> Mutate:
    async def go(w: World) -> None:
        await w.delete_events(dev)
        await w.event("info.test", dev, w.base - timedelta(days=days))

    return go


async def _untested_short_history(w: World) -> None:
    await w.delete_events("btn-duty-1")


async def _late_alarm(w: World) -> None:
    await w.event(
        "alarm.panic", "btn-gate-1", w.base - timedelta(hours=2), publish_after_s=5, ack_after_s=10
    )


async def _unpublished_alarm(w: World) -> None:
    await w.event(
        "alarm.panic",
        "btn-gate-1",
        w.base - timedelta(minutes=1),
        publish_after_s=None,
        ack_after_s=10,
    )


async def _no_events(w: World) -> None:
    await w.delete_events()


async def _tamper_audit(w: World) -> None:
    await w.sql(update(AuditLog).where(AuditLog.id == 2).values(detail={"title": "changed"}))


async def _empty_audit(w: World) -> None:
    await w.sql(delete(AuditLog))


def _link(**kw: Any) -> Mutate:
    async def go(w: World) -> None:
        assert w.link is not None
        fields = {
            "connected": w.link.connected,
            "last_receipt_at": w.link.last_receipt_at,
            "pending": w.link.pending,
            "oldest_pending_age_s": w.link.oldest_pending_age_s,
            "receipts": w.link.receipts,
            "observed_at": w.link.observed_at,
            **kw,
        }
        w.link = LinkFacts(**fields)

    return go


async def _no_link(w: World) -> None:
    w.link = None


async def _zone_untested(w: World) -> None:
    async def older(w: World) -> None:
        # History reaching back beyond 30 days, and zone z2 tested 40 days ago only.
        await w.event("info.test", "bc-1", w.base - timedelta(days=40), source={"zone_test": "z2"})

    await _no_linkage(w)  # the good world's alarm played every zone through linkage
    await w.sql(delete(Event).where(Event.device_id == "bc-1"))
    await w.event("info.test", "bc-1", w.base - timedelta(days=7), source={"zone_test": "z1"})
    await older(w)


async def _zone_tested_by_linkage(w: World) -> None:
    await w.sql(delete(Event).where(Event.device_id == "bc-1"))
    await w.event(
        "alarm.panic",
        "btn-fin-1",
        w.base - timedelta(days=2),
        ack_after_s=5,
        linkage=[
            {
                "type": "broadcast",
                "target": "bc-1/z1,z2",
                "outcome": "ok",
                "at": "2026-01-01T00:00:00Z",
                "elapsed_ms": 800,
            }
        ],
    )


def _no_broadcast(d: dict[str, Any]) -> None:
    d["devices"]["broadcast"] = []
    d["linkage"] = []


def _linkage_rules(rules: list[dict[str, Any]]) -> Edit:
    def go(d: dict[str, Any]) -> None:
        d["linkage"] = rules

    return go


def _ack(after_s: float | None, via: str = "console", minutes_ago: float = 30) -> Mutate:
    async def go(w: World) -> None:
        await w.event(
            "alarm.panic",
            "btn-mon-1",
            w.base - timedelta(minutes=minutes_ago),
            ack_after_s=after_s,
            ack_via=via,
        )

    return go


async def _no_alarms(w: World) -> None:
    await w.sql(delete(Event).where(Event.category == "alarm"))


def _site(**kw: Any) -> Edit:
    def go(d: dict[str, Any]) -> None:
        d["site"].update(kw)

    return go


def _drop_records(kind: str, rule: str | None = None) -> Mutate:
    async def go(w: World) -> None:
        q = delete(Record).where(Record.kind == kind)
        if rule is not None:
            q = q.where(Record.rule_id == rule)
        await w.sql(q)

    return go


def _expired(rule: str) -> Mutate:
    async def go(w: World) -> None:
        await w.sql(
            update(Record)
            .where(Record.rule_id == rule)
            .values(expires_at=w.base - timedelta(days=1))
        )

    return go


def _add(kind: str, days_ago: int, **kw: Any) -> Mutate:
    async def go(w: World) -> None:
        await w.sql(delete(Record).where(Record.kind == kind))
        await w.record(record(kind, w.base - timedelta(days=days_ago), f"{kind} old", **kw))

    return go


def _hazard(due_days: int, closed: bool = False, owner: str | None = "张三") -> Mutate:
    async def go(w: World) -> None:
        rid = await w.record(
            record(
                "hazard",
                w.base - timedelta(days=10),
                "消防通道堆放杂物",
                owner=owner,
                due_at=w.base + timedelta(days=due_days),
            )
        )
        if closed:
            await w.sql(update(Record).where(Record.id == rid).values(closed_at=w.base))

    return go


async def _stale_register(w: World) -> None:
    await w.sql(delete(Record).where(Record.kind.in_(("review", "hazard"))))
    await w.record(record("review", w.base - timedelta(days=40), "月度隐患排查"))


def _notice(state: str, due_days: int) -> Mutate:
    """A police notice issued ten days ago, now in ``state``, due ``due_days`` from now."""

    async def go(w: World) -> None:
        issued = w.base - timedelta(days=10)
        await w.sql(
            insert(Notice).values(
                notice_id="ZG-1",
                state=state,
                finding="北门摄像机被遮挡",
                deadline=w.base + timedelta(days=due_days),
                officer={"name": "李警官"},
                item={"item_id": "camera:cam-gate-1"},
                terms={},
                issued_at=issued,
                updated_at=issued,
                closed_at=w.base if state == "closed" else None,
                version=1,
                overdue_published=False,
            )
        )
        steps = [("issued", "open", issued)]
        if state != "open":
            steps.append(("answered", "answered", issued + timedelta(days=1)))
        if state in ("rejected", "closed"):
            last = "rejected" if state == "rejected" else "accepted"
            steps.append((last, state, issued + timedelta(days=2)))
        for action, after, at in steps:
            await w.sql(
                insert(NoticeStep).values(
                    notice_id="ZG-1",
                    at=at,
                    action=action,
                    state=after,
                    by="x",
                    via="police",
                    detail={},
                )
            )

    return go


def _broadcast_down(w: World) -> Awaitable[None]:
    return w.detail("bc-1", broadcast_ok=False)


CASES: list[Case] = [
    # VID-COVERAGE
    Case("all-online", "VID-COVERAGE", "pass"),
    Case(
        "camera-offline",
        "VID-COVERAGE",
        "fail",
        _state("cam-perim-1", "offline"),
        subject="cam-perim-1",
    ),
    Case(
        "role-without-camera",
        "VID-COVERAGE",
        "fail",
        edit=_remove_camera("cam-park-1"),
        subject="role:parking",
    ),
    Case("state-unknown", "VID-COVERAGE", "unknown", _forget("cam-park-1")),
    # VID-ONLINE
    Case("available", "VID-ONLINE", "pass"),
    Case(
        "offline-now", "VID-ONLINE", "fail", _state("cam-entr-1", "offline"), subject="cam-entr-1"
    ),
    Case("outage-in-24h", "VID-ONLINE", "fail", _outage("cam-entr-1"), subject="cam-entr-1"),
    Case("no-history", "VID-ONLINE", "unknown", _forget("cam-fin-1")),
    # Answers that break ONVIF: the camera is there (degraded counts as available) ...
    Case("answers-unreadable", "VID-ONLINE", "pass", _unreadable_answers("cam-entr-1")),
    # VID-FRAMERATE
    Case("fps-ok", "VID-FRAMERATE", "pass"),
    Case(
        "fps-measured-low",
        "VID-FRAMERATE",
        "fail",
        _detail("cam-gate-1", fps_measured=12.0),
        subject="cam-gate-1",
    ),
    Case(
        "fps-limit-low",
        "VID-FRAMERATE",
        "fail",
        _detail("cam-park-1", fps_limit=15),
        subject="cam-park-1",
    ),
    Case("fps-missing", "VID-FRAMERATE", "unknown", _detail("cam-gate-1", fps_measured=None)),
    # A stream that could not be read has no measured rate: unknown, never a pass.
    Case(
        "fps-stream-refused",
        "VID-FRAMERATE",
        "unknown",
        _detail(
            "cam-gate-1",
            fps_measured=None,
            stream_error="stream rtsp://10.0.0.5:554/main: RTSP 401, credentials refused",
        ),
    ),
    # VID-RESOLUTION
    Case("res-ok", "VID-RESOLUTION", "pass"),
    Case(
        "res-ok-elsewhere", "VID-RESOLUTION", "pass", _detail("cam-park-1", resolution=[704, 576])
    ),
    Case(
        "res-low-at-gate",
        "VID-RESOLUTION",
        "fail",
        _detail("cam-gate-1", resolution=[704, 576]),
        subject="cam-gate-1",
    ),
    Case("res-missing", "VID-RESOLUTION", "unknown", _detail("cam-fin-1", resolution=None)),
    # ... but what it is set to is not known while its answers cannot be read.
    Case("answers-unreadable", "VID-RESOLUTION", "unknown", _unreadable_answers("cam-fin-1")),
    # VID-CLOCK
    Case("clock-ok", "VID-CLOCK", "pass"),
    Case(
        "clock-drift",
        "VID-CLOCK",
        "fail",
        _detail("cam-entr-1", clock_offset_s=-7.5),
        subject="cam-entr-1",
    ),
    Case("clock-missing", "VID-CLOCK", "unknown", _detail("cam-entr-1", clock_offset_s=None)),
    # VID-QUALITY
    Case("picture-ok", "VID-QUALITY", "pass"),
    Case(
        "covered",
        "VID-QUALITY",
        "fail",
        _detail("cam-fin-1", findings=[COVERED, *GOOD_CAMERA["findings"][1:]]),
        subject="cam-fin-1",
    ),
    Case("no-findings", "VID-QUALITY", "unknown", _detail("cam-fin-1", findings=None)),
    # No picture could be read: no failing finding, and still not a pass.
    Case(
        "picture-unread",
        "VID-QUALITY",
        "unknown",
        _detail("cam-fin-1", findings=[], video_error="stream rtsp://x/main: connection refused"),
    ),
    Case(
        "stream-stalled",
        "VID-QUALITY",
        "fail",
        _detail(
            "cam-fin-1",
            findings=[
                {
                    "check": "stream_stalled",
                    "ok": False,
                    "score": 40,
                    "threshold": 0,
                    "message_zh": "视频流中断（已建立连接但无数据）",
                    "message_en": "Video stream stalls (opened, then no data)",
                }
            ],
            video_error="stream rtsp://x/sub: no packet for 3 s",
        ),
        subject="cam-fin-1",
    ),
    # VID-RETENTION
    Case("retention-attested", "VID-RETENTION", "attested"),
    Case("retention-measured", "VID-RETENTION", "pass", _all_cams(retention_days=45)),
    Case(
        "retention-short",
        "VID-RETENTION",
        "fail",
        _all_cams(retention_days=12),
        subject="cam-gate-1",
    ),
    Case(
        "retention-undeclared",
        "VID-RETENTION",
        "unknown",
        _drop_records("attestation", "VID-RETENTION"),
    ),
    Case("retention-expired", "VID-RETENTION", "unknown", _expired("VID-RETENTION")),
    # VID-LINKAGE
    Case("linkage-fast", "VID-LINKAGE", "pass"),
    Case("linkage-slow", "VID-LINKAGE", "fail", _linkage(6500)),
    Case("linkage-failed", "VID-LINKAGE", "fail", _linkage(300, "failed")),
    Case("linkage-none", "VID-LINKAGE", "unknown", _no_linkage),
    # ALM-LOCATIONS
    Case("alarm-locations", "ALM-LOCATIONS", "pass"),
    Case(
        "no-finance-button",
        "ALM-LOCATIONS",
        "fail",
        edit=_remove_button("btn-fin-1"),
        subject="role:finance_room",
    ),
    # ALM-SUPERVISION
    Case("supervised", "ALM-SUPERVISION", "pass"),
    Case(
        "supervision-lost",
        "ALM-SUPERVISION",
        "fail",
        _detail("panel-1", supervision="lost"),
        subject="panel-1",
    ),
    Case(
        "panel-offline", "ALM-SUPERVISION", "fail", _state("panel-1", "offline"), subject="panel-1"
    ),
    Case("panel-silent", "ALM-SUPERVISION", "fail", _panel_silent, subject="panel-1"),
    Case("unsupervised-panel", "ALM-SUPERVISION", "fail", edit=_unsupervised, subject="panel-1"),
    Case("supervision-unknown", "ALM-SUPERVISION", "unknown", _detail("panel-1", supervision=None)),
    # ALM-TESTED
    Case("buttons-tested", "ALM-TESTED", "pass"),
    Case(
        "button-untested", "ALM-TESTED", "fail", _old_test("btn-duty-1", 40), subject="btn-duty-1"
    ),
    Case("real-press-counts", "ALM-TESTED", "pass", _old_test("btn-duty-1", 3)),
    Case("short-history", "ALM-TESTED", "unknown", _untested_short_history),
    # ALM-RESPONSE
    Case("fast", "ALM-RESPONSE", "pass"),
    Case("slow-alarm", "ALM-RESPONSE", "fail", _late_alarm),
    Case("unpublished", "ALM-RESPONSE", "fail", _unpublished_alarm),
    Case("nothing-to-measure", "ALM-RESPONSE", "unknown", _no_events),
    # ALM-LOG
    Case("chain-intact", "ALM-LOG", "pass"),
    Case("chain-broken", "ALM-LOG", "fail", _tamper_audit, subject="audit_log"),
    Case("log-empty", "ALM-LOG", "unknown", _empty_audit),
    # POL-LINK
    Case("linked", "POL-LINK", "pass"),
    Case("disconnected", "POL-LINK", "fail", _link(connected=False), subject="police"),
    Case(
        "outbox-stuck",
        "POL-LINK",
        "fail",
        _link(pending=3, oldest_pending_age_s=600.0),
        subject="police",
    ),
    Case(
        "no-receipts",
        "POL-LINK",
        "fail",
        _link(receipts="required", pending=2, oldest_pending_age_s=400.0, last_receipt_at=None),
    ),
    Case("link-unknown", "POL-LINK", "unknown", _no_link),
    # BRD-READY
    Case("broadcast-ready", "BRD-READY", "pass"),
    Case("zones-by-linkage", "BRD-READY", "pass", _zone_tested_by_linkage),
    Case("broadcast-fault", "BRD-READY", "fail", _broadcast_down, subject="bc-1"),
    Case("zone-untested", "BRD-READY", "fail", _zone_untested, subject="bc-1/z2"),
    Case("broadcast-status-unknown", "BRD-READY", "unknown", _detail("bc-1", broadcast_ok=None)),
    Case("no-broadcast", "BRD-READY", "fail", edit=_no_broadcast),
    # BRD-LINKED
    Case("linked-broadcast", "BRD-LINKED", "pass"),
    Case(
        "no-broadcast-action",
        "BRD-LINKED",
        "fail",
        subject="btn-gate-1",
        edit=_linkage_rules([{"name": "snap", "actions": [{"type": "snapshot"}]}]),
    ),
    Case(
        "night-only-broadcast",
        "BRD-LINKED",
        "fail",
        subject="btn-gate-1",
        edit=_linkage_rules(
            [
                {
                    "name": "night",
                    "match": {"schedule": "22:00-06:00"},
                    "actions": [{"type": "broadcast", "controller": "bc-1"}],
                }
            ]
        ),
    ),
    Case(
        "zone-limited-broadcast",
        "BRD-LINKED",
        "fail",
        subject="btn-duty-1",
        edit=_linkage_rules(
            [
                {
                    "name": "gate",
                    "match": {"zones": ["z-gate"]},
                    "actions": [{"type": "broadcast", "controller": "bc-1"}],
                }
            ]
        ),
    ),
    # DUTY-ACK
    Case("acknowledged", "DUTY-ACK", "pass"),
    Case("ack-late", "DUTY-ACK", "fail", _ack(95)),
    Case("unanswered", "DUTY-ACK", "fail", _ack(None)),
    Case("police-ack-only", "DUTY-ACK", "fail", _ack(10, via="police")),
    Case("still-within-budget", "DUTY-ACK", "pass", _ack(None, minutes_ago=0.2)),
    Case("no-alarms", "DUTY-ACK", "unknown", _no_alarms),
    # STAFF-GUARDS
    Case("guards-45-of-45", "STAFF-GUARDS", "pass"),
    Case("guards-40-of-45", "STAFF-GUARDS", "fail", edit=_site(guards=40), subject="site"),
    Case("small-mall", "STAFF-GUARDS", "pass", edit=_site(floor_area_m2=8000, guards=6)),
    Case("area-unset", "STAFF-GUARDS", "unknown", edit=_site(floor_area_m2=0)),
    Case("guards-unset", "STAFF-GUARDS", "unknown", edit=_site(guards=0)),
    # STAFF-TEAM
    Case("team-attested", "STAFF-TEAM", "attested"),
    Case("team-undeclared", "STAFF-TEAM", "unknown", _drop_records("attestation", "STAFF-TEAM")),
    Case("team-expired", "STAFF-TEAM", "unknown", _expired("STAFF-TEAM")),
    # DRILL-QUARTERLY
    Case("drill-recent", "DRILL-QUARTERLY", "pass"),
    Case("drill-old", "DRILL-QUARTERLY", "fail", _add("drill", 100, detail={"type": "robbery"})),
    Case("no-drill", "DRILL-QUARTERLY", "fail", _drop_records("drill")),
    # TRAIN-MONTHLY
    Case("training-recent", "TRAIN-MONTHLY", "pass"),
    Case("training-old", "TRAIN-MONTHLY", "fail", _add("training", 45)),
    Case("no-training", "TRAIN-MONTHLY", "fail", _drop_records("training")),
    # HAZ-REGISTER
    Case("no-notices", "POL-NOTICE", "pass"),
    Case("notice-closed", "POL-NOTICE", "pass", _notice("closed", -2)),
    Case("notice-open", "POL-NOTICE", "fail", _notice("open", 5), subject="notice:ZG-1"),
    Case("notice-answered", "POL-NOTICE", "fail", _notice("answered", 5)),
    Case("notice-overdue", "POL-NOTICE", "fail", _notice("rejected", -1), subject="notice:ZG-1"),
    Case("register-current", "HAZ-REGISTER", "pass"),
    Case("hazard-open-in-time", "HAZ-REGISTER", "pass", _hazard(5)),
    Case("hazard-overdue", "HAZ-REGISTER", "fail", _hazard(-2)),
    Case("hazard-closed", "HAZ-REGISTER", "pass", _hazard(-2, closed=True)),
    Case("hazard-without-owner", "HAZ-REGISTER", "fail", _hazard(5, owner=None)),
    Case("register-stale", "HAZ-REGISTER", "fail", _stale_register),
    Case("register-never", "HAZ-REGISTER", "fail", _drop_records("review")),
    # PHYS-BARRIERS
    Case("barriers-attested", "PHYS-BARRIERS", "attested"),
    Case(
        "barriers-undeclared",
        "PHYS-BARRIERS",
        "unknown",
        _drop_records("attestation", "PHYS-BARRIERS"),
    ),
    # SYS-EMERGENCY
    Case("emergency-attested", "SYS-EMERGENCY", "attested"),
    Case("emergency-broadcast-down", "SYS-EMERGENCY", "fail", _broadcast_down, subject="bc-1"),
    Case(
        "emergency-undeclared",
        "SYS-EMERGENCY",
        "unknown",
        _drop_records("attestation", "SYS-EMERGENCY"),
    ),
]


def test_every_rule_has_pass_fail_and_unknown_cases() -> None:
    from hub.compliance.rules import RULES

    seen: dict[str, set[str]] = {}
    for c in CASES:
        seen.setdefault(c.rule, set()).add(c.expect)
    impossible = {
        # Config-only rules cannot lack evidence; declared-only rules cannot be measured.
        "ALM-LOCATIONS": {"unknown"},
        "BRD-LINKED": {"unknown"},
        "STAFF-TEAM": {"fail", "pass"},
        "PHYS-BARRIERS": {"fail", "pass"},
        "SYS-EMERGENCY": {"pass"},
        "DRILL-QUARTERLY": {"unknown"},
        "TRAIN-MONTHLY": {"unknown"},
        "HAZ-REGISTER": {"unknown"},
        # Every notice the police sent is in the store: none is a fact, never unknown.
        "POL-NOTICE": {"unknown"},
    }
    for rule in RULES:
        want = {"pass", "fail", "unknown"} - impossible.get(rule.id, set())
        if rule.attestable:
            want |= {"attested"}
            want -= {"pass"} if rule.id != "VID-RETENTION" else set()
        assert want <= seen.get(rule.id, set()), (rule.id, want - seen.get(rule.id, set()))


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rule}:{c.name}" for c in CASES])
async def test_rule(case: Case, database_url: str, tmp_path: Path) -> None:
    async with world(tmp_path, database_url, edit=case.edit) as w:
        await (case.mutate or _noop)(w)
        result = await w.evaluate()
    r = result.rule(case.rule)
    o = r.outcome
    assert r.status == case.expect, (o.explanation, o.evidence)
    # Every outcome explains itself in both languages and says since when.
    assert o.explanation.zh and o.explanation.en
    assert r.since is not None and r.since <= result.at
    if case.expect == "fail":
        assert result.overall == "non_compliant"
        assert any(e.ok is False for e in o.evidence), o.evidence
    if case.subject is not None:
        assert case.subject in {e.subject for e in o.evidence if e.ok is False}, o.evidence
    if case.expect == "attested":
        assert o.attestation is not None and o.attestation.by == "tester"
        assert o.attestation.evidence == "检查记录与照片"
    if case.expect == "unknown":
        assert "缺少" in o.explanation.zh and "missing" in o.explanation.en
