"""The inspection workflow's pure parts and the store's handling of the hubs' notices, on a
real SQLite store without NATS: the schedule is deterministic, a retained notice is mirrored
only when newer (by the hub's ``version``), and a message that breaks the contract is
refused without touching the store."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from patrol.hub_answers import item_row
from patrol.inspections import expire_unanswered, get_inspection
from patrol.models import AuditRow, InspectionRow, MallRow, NoticeRow, open_store
from patrol.schedule import CST, due, period, scheduled_at
from patrol.store import Incoming, PatrolStore, classify

SITE = "zz-unit-001"
AT = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def test_schedule_is_deterministic_within_the_period_and_its_hours() -> None:
    now = datetime(2026, 12, 15, 3, 0, tzinfo=UTC)
    key, start, end = period(now, "monthly")
    assert (key, start, end) == (
        "2026-12",
        datetime(2026, 12, 1, tzinfo=CST),
        datetime(2027, 1, 1, tzinfo=CST),
    )
    times = {s: scheduled_at(s, key, start, end, "seed", (9, 17)) for s in ("a", "b", "c", "d")}
    # Same inputs, same time (every process agrees); each in the month and in office hours.
    assert times == {s: scheduled_at(s, key, start, end, "seed", (9, 17)) for s in times}
    for at in times.values():
        assert start <= at < end
        assert 9 <= at.astimezone(CST).hour < 17
    # The malls are spread, and another seed or month gives other times.
    assert len(set(times.values())) == 4
    assert scheduled_at("a", key, start, end, "other", (9, 17)) != times["a"]
    key2, s2, e2 = period(datetime(2027, 1, 5, tzinfo=UTC), "monthly")
    assert key2 == "2027-01" and scheduled_at("a", key2, s2, e2, "seed", (9, 17)) >= e2 - (e2 - s2)
    # Weekly: ISO weeks starting Monday 00:00 China time.
    wkey, ws, we = period(datetime(2026, 12, 3, 20, 0, tzinfo=UTC), "weekly")  # Fri 04:00 CST
    assert (wkey, ws.weekday(), we - ws) == ("2026-W49", 0, timedelta(days=7))
    # Due once its time has come, never when scheduling is off.
    at = times["a"]
    assert due("a", at - timedelta(seconds=1), "monthly", "seed", (9, 17)) is None
    assert due("a", at, "monthly", "seed", (9, 17)) == ("2026-12", at)
    assert due("a", at, "off", "seed", (9, 17)) is None


def notice(version: int, state: str = "open", **over: Any) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {
            "n": 1,
            "at": "2026-12-03T08:00:00Z",
            "action": "issued",
            "state": "open",
            "by": "李警官",
            "via": "police",
        }
    ]
    if version >= 2:
        steps.append(
            {
                "n": 2,
                "at": "2026-12-03T09:00:00Z",
                "action": "answered",
                "state": "answered",
                "by": "值班员",
                "via": "console",
                "note": "已清理镜头",
                "evidence": {
                    "snapshots": [
                        {
                            "camera_id": "cam-gate-1",
                            "taken_at": "2026-12-03T09:00:00Z",
                            "content_type": "image/jpeg",
                            "bytes": 3,
                            "sha256": "a" * 64,
                            "url": "http://hub.example/s/1?t=x",
                        }
                    ],
                    "devices": [],
                },
            }
        )
    body: dict[str, Any] = {
        "schema": "mallhub/notice/1",
        "site_id": SITE,
        "notice_id": "ZG-1",
        "state": state,
        "overdue": False,
        "finding": "北门摄像机画面被遮挡",
        "deadline": "2026-12-10T10:00:00Z",
        "officer": {"name": "李警官"},
        "issued_at": "2026-12-03T08:00:00Z",
        "updated_at": steps[-1]["at"],
        "version": version,
        "steps": steps,
        "ts": steps[-1]["at"],
    }
    body.update(over)
    return body


def incoming(body: object, seq: int, notice_id: str = "ZG-1", site: str = SITE) -> Incoming:
    got = classify(f"mallhub.v1.{site}.notices.{notice_id}", body, seq, AT)
    assert isinstance(got, Incoming), got
    return got


def test_a_notice_that_breaks_the_contract_is_refused_with_the_reason() -> None:
    assert isinstance(incoming(notice(1), 1), Incoming)
    bad: list[tuple[object, str]] = [
        (notice(1, state="lost"), "state"),
        ({**notice(1), "version": 0}, "version"),
        ({**notice(1), "extra": 1}, "Additional properties"),
        ({k: v for k, v in notice(1).items() if k != "steps"}, "steps"),
        (notice(1, notice_id="ZG-2"), "differs from the topic"),
        ([1, 2], "not a JSON object"),
        (None, "not a JSON object"),
    ]
    for body, why in bad:
        got = classify(f"mallhub.v1.{SITE}.notices.ZG-1", body, 1, AT)
        assert isinstance(got, str) and why in got, (why, got)
    other = classify("mallhub.v1.zz-other.notices.ZG-1", notice(1), 1, AT)
    assert isinstance(other, str) and "site" in other


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[PatrolStore]:
    engine = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    try:
        yield PatrolStore(engine)
    finally:
        await engine.dispose()


async def _row(store: PatrolStore) -> Any:
    async with store.engine.connect() as conn:
        return (await conn.execute(select(NoticeRow).where(NoticeRow.notice_id == "ZG-1"))).one()


async def test_the_highest_version_wins_whatever_the_order(store: PatrolStore) -> None:
    v2 = notice(2, state="answered")
    out = await store.write([incoming(v2, 5)])
    assert out.notices == ["ZG-1"] and out.malls_changed == {SITE}
    row = await _row(store)
    assert (row.state, row.version, row.issued_by) == ("answered", 2, "李警官")
    # An older message (a retained copy read at start, a redelivery) changes nothing.
    for older in (incoming(notice(1), 0), incoming(notice(1), 3), incoming(copy.deepcopy(v2), 6)):
        assert (await store.write([older])).notices == []
    row = await _row(store)
    assert (row.state, row.version) == ("answered", 2)
    assert row.hub["steps"][1]["evidence"]["snapshots"][0]["sha256"] == "a" * 64
    # Every step the hub reported is audited once on the police side.
    async with store.engine.connect() as conn:
        actions = (
            await conn.execute(
                select(AuditRow.action, AuditRow.actor).where(AuditRow.target == "notice:ZG-1")
            )
        ).all()
    assert sorted(actions) == [
        ("notice.answered", "console:值班员"),
        ("notice.issued", "police:李警官"),
    ]
    # A newer version moves it on; the steps already audited are not audited again.
    v3 = {**notice(2, state="closed"), "version": 3}
    v3["steps"].append(
        {
            "n": 3,
            "at": "2026-12-03T10:00:00Z",
            "action": "accepted",
            "state": "closed",
            "by": "李警官",
            "via": "police",
        }
    )
    await store.write([incoming(v3, 7)])
    assert ((await _row(store)).state, (await _row(store)).version) == ("closed", 3)
    async with store.engine.connect() as conn:
        n = len(
            (await conn.execute(select(AuditRow.id).where(AuditRow.target == "notice:ZG-1"))).all()
        )
    assert n == 3


def test_an_inline_picture_is_kept_only_when_its_sha256_matches() -> None:
    import base64
    import hashlib

    data = b"\xff\xd8\xff-picture"
    snap = {
        "camera_id": "cam-gate-1",
        "taken_at": "2026-12-03T08:00:00Z",
        "content_type": "image/jpeg",
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "data_base64": base64.b64encode(data).decode(),
    }
    item = {
        "item_id": "camera:cam-gate-1",
        "kind": "camera",
        "device_id": "cam-gate-1",
        "name": "正门摄像机",
        "role": "gate",
        "floor": "1F",
        "zone": "gate",
        "state": {"state": "online", "since": None, "reason": ""},
        "snapshot": snap,
    }
    row = item_row("XC-1", 1, item)
    assert row["picture"] == data and row["status"] == "snapshot"
    assert "data_base64" not in row["detail"]["snapshot"] and row["sha256"] == snap["sha256"]
    forged = item_row("XC-1", 1, {**item, "snapshot": {**snap, "sha256": "0" * 64}})
    assert forged["picture"] is None and forged["status"] == "sha256_mismatch"


async def _command(store: PatrolStore, request_id: str, name: str, body: dict[str, Any]) -> None:
    from patrol.models import CommandRow

    async with store.engine.begin() as conn:
        await conn.execute(
            insert(CommandRow).values(
                request_id=request_id, site_id=SITE, name=name, body=body, by="li", sent_at=AT
            )
        )


def response(request_id: str, command: str, ok: bool, **rest: Any) -> Incoming:
    body = {
        "schema": "mallhub/response/1",
        "site_id": SITE,
        "request_id": request_id,
        "command": command,
        "ts": "2026-12-03T08:00:05Z",
        "ok": ok,
        **rest,
    }
    got = classify(f"mallhub.v1.{SITE}.responses.{request_id}", body, 9, AT)
    assert isinstance(got, Incoming)
    return got


async def test_a_late_answer_is_kept_and_the_silence_stays_a_finding(store: PatrolStore) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(insert(MallRow).values(site_id=SITE))
        for iid, rid in (("XC-late", "patrol-late"), ("XC-bad", "patrol-bad")):
            await conn.execute(
                insert(InspectionRow).values(
                    inspection_id=iid,
                    site_id=SITE,
                    request_id=rid,
                    state="waiting",
                    officer="李警官",
                    started_at=AT,
                    due_at=AT + timedelta(seconds=60),
                )
            )
    for rid in ("patrol-late", "patrol-bad"):
        await _command(store, rid, "inspect", {"request_id": rid})
    assert await expire_unanswered(store, AT + timedelta(seconds=59)) == []
    assert sorted(await expire_unanswered(store, AT + timedelta(seconds=60))) == [
        "XC-bad",
        "XC-late",
    ]
    assert await expire_unanswered(store, AT + timedelta(seconds=61)) == []  # once
    result = {
        "schema": "mallhub/inspection/1",
        "inspection_id": "01a2-hub",
        "site": {"id": SITE, "name": "商场", "address": "路1号"},
        "started_at": "2026-12-03T08:01:00Z",
        "finished_at": "2026-12-03T08:01:05Z",
        "compliance": {"overall": "compliant"},
        "items": [
            {"item_id": "role:parking", "kind": "role", "role": "parking",
             "error": {"code": "no_camera", "message": "无摄像机"}},
        ],
    }  # fmt: skip
    await store.write([response("patrol-late", "inspect", True, result=result)])
    # An answer that breaks the inspection schema is not a checklist.
    broken = {**result, "items": [{"item_id": "camera:x", "kind": "camera"}]}
    await store.write([response("patrol-bad", "inspect", True, result=broken)])
    late = await get_inspection(store.engine, "XC-late", {})
    assert late is not None and (late["state"], late["late"]) == ("answered", True)
    assert [(i["item_id"], i["finding"]) for i in late["items"]] == [
        ("hub:no_answer", "problem"),
        ("role:parking", None),
    ]
    # A hub that refuses (here: an answer in time that says why) gives an item to judge.
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(InspectionRow).values(
                inspection_id="XC-no",
                site_id=SITE,
                request_id="patrol-no",
                state="waiting",
                officer="李警官",
                started_at=AT,
                due_at=AT + timedelta(seconds=60),
            )
        )
    await _command(store, "patrol-no", "inspect", {"request_id": "patrol-no"})
    error = {"code": "unavailable", "message": "巡查进行中"}
    await store.write([response("patrol-no", "inspect", False, error=error)])
    refused = await get_inspection(store.engine, "XC-no", {})
    assert refused is not None and (refused["state"], refused["error"]) == ("refused", error)
    [item] = refused["items"]
    assert (item["item_id"], item["status"], item["finding"]) == (
        "hub:refused",
        "unavailable",
        None,
    )
    bad = await get_inspection(store.engine, "XC-bad", {})
    assert bad is not None and bad["state"] == "no_answer"
    assert bad["error"]["code"] == "invalid_answer" and len(bad["items"]) == 1
    # A redelivered answer changes nothing.
    await store.write([response("patrol-late", "inspect", True, result=result)])
    again = await get_inspection(store.engine, "XC-late", {})
    assert again is not None and len(again["items"]) == 2


async def test_a_refused_issue_marks_the_notice_refused(store: PatrolStore) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(NoticeRow).values(
                notice_id="ZG-1",
                site_id=SITE,
                finding="x",
                deadline=AT,
                issued_at=AT,
                state="sent",
                updated_at=AT,
            )
        )
    await _command(store, "patrol-n1", "notice", {"action": "issue", "notice_id": "ZG-1"})
    error = {"code": "invalid", "message": "deadline is in the past"}
    await store.write([response("patrol-n1", "notice", False, error=error)])
    row = await _row(store)
    assert (row.state, row.last_error, row.version) == ("refused", error, 0)
