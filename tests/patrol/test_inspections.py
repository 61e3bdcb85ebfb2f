"""The inspection workflow through the patrol service's API, with a REAL hub (simulated
cameras) on a real nats-server: the ``inspect`` answer becomes the checklist with the
pictures' sha256, a problem becomes a notice that the hub stores and publishes retained, the
mall answers in its console, the officer sends it back and then accepts it; every refusal is
a clear 4xx and changes nothing. A mall that does not answer gets a record saying so, and an
overdue notice reaches the supervisors."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from hub.app import Hub
from hub.broker import free_port
from hub.config import SiteConfig
from patrol.auth import add_user
from patrol.inspections import list_inspections
from patrol.inspector import start_scheduled
from patrol.models import AuditRow
from patrol.natsnode import NatsCluster
from patrol.notices import list_notices
from patrol.service import PatrolService
from simulators.camera import CameraFarm
from tests.health.mall import MANUAL, USER, camera_entry
from tests.notices.mall import cameras_warm, notice_rows
from tests.patrol.citytest import OfficerApi, patrol_config
from tests.support.sites import make_site
from tests.support.wait import wait_until

SITE = "test-mall"
SILENT = "zz-silent-001"


@pytest.fixture
async def farm() -> AsyncIterator[tuple[CameraFarm, str]]:
    password = secrets.token_urlsafe(12)
    async with CameraFarm.uniform(2, username=USER, password=password) as f:
        yield f, password


def site(farm: CameraFarm, password: str, nats: NatsCluster, tmp_path: Path) -> SiteConfig:
    return make_site(
        broker_url=nats.mqtt_urls[0],
        data_dir=tmp_path / "hub",
        protocol="3.1.1",
        cameras=[
            camera_entry("cam-gate-1", farm[0], password),
            camera_entry("cam-park-1", farm[1], password, zone="parking", role="parking"),
        ],
        health={**MANUAL, "probe_timeout_s": 3},
        # A port known in advance: the patrol service fetches pictures from this console only.
        http_port=free_port(),
    )


def console(cfg: SiteConfig) -> str:
    """The hub's console address, as the patrol configuration names it."""
    return f"http://127.0.0.1:{cfg.http.port}"


async def _audit(svc: PatrolService, target: str) -> list[str]:
    assert svc.store is not None
    async with svc.store.engine.connect() as conn:
        rows = await conn.execute(
            select(AuditRow.action).where(AuditRow.target == target).order_by(AuditRow.id)
        )
        return [r[0] for r in rows]


async def test_inspection_and_notice_round_trip_with_a_real_hub(
    nats_node: NatsCluster, farm: tuple[CameraFarm, str], tmp_path: Path, database_url: str
) -> None:
    cfg = site(farm[0], farm[1], nats_node, tmp_path)
    pc = patrol_config(
        nats_node,
        tmp_path,
        database_url=database_url,
        malls=[
            {
                "site_id": SITE,
                "name": "金水测试商场",
                "district": "金水区",
                "console_url": console(cfg),
            }
        ],
        inspections={"unit": "金水分局"},
    )
    password = secrets.token_urlsafe(12)
    async with PatrolService(pc) as svc, Hub(cfg) as hub:
        assert svc.store is not None and svc.web is not None
        await add_user(svc.store.engine, "li", "officer", password, "李警官")
        await wait_until(lambda: hub.police.state.connected, within=30, what="link up")
        await cameras_warm(hub)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            api = OfficerApi(http, svc.web.url)
            await api.login("li", password)
            status, body = await api.call("POST", "/api/v1/inspections", {"site_id": SITE})
            assert status == 202, body
            insp = body["inspection"]
            assert insp["state"] == "waiting" and insp["officer"] == "李警官"
            iid = insp["inspection_id"]
            base = f"/api/v1/inspections/{iid}"
            # A second one while the first waits: refused.
            status, body = await api.call("POST", "/api/v1/inspections", {"site_id": SITE})
            assert status == 409 and body["error"] == "conflict" and "message_zh" in body

            async def answered() -> bool:
                return bool((await api.get(base))["inspection"]["state"] == "answered")

            await wait_until(answered, within=90, what="the hub's checklist")

            async def pictures() -> bool:
                items = (await api.get(base))["inspection"]["items"]
                return all(i["has_picture"] for i in items if i["status"] == "snapshot")

            # Pictures too large to travel inline are fetched from the hub's signed URL.
            await wait_until(pictures, within=30, what="the pictures")
            insp = (await api.get(base))["inspection"]
            items = {i["item_id"]: i for i in insp["items"]}
            assert insp["hub_inspection_id"] and insp["compliance"]["site_id"] == SITE
            gate = items["camera:cam-gate-1"]
            assert gate["kind"] == "camera" and gate["status"] == "snapshot"
            assert gate["has_picture"] and len(gate["sha256"]) == 64
            async with http.get(f"{svc.web.url}{base}/items/camera:cam-gate-1/picture") as r:
                assert r.status == 200 and r.content_type == "image/jpeg"
                assert hashlib.sha256(await r.read()).hexdigest() == gate["sha256"]
            assert items["role:perimeter"]["status"] == "no_camera"
            assert items["rule:POL-NOTICE"]["status"] == "pass"
            assert all(i["finding"] is None for i in insp["items"])

            # Findings: bad input is refused, a problem needs its note.
            item = f"{base}/items/camera:cam-gate-1"
            for bad, code in [
                ({"finding": "maybe"}, 400),
                ({"finding": "problem", "note": " "}, 400),
                ({"finding": 1}, 400),
            ]:
                status, body = await api.call("PUT", item, bad)
                assert status == code and body["error"] == "invalid", (bad, body)
            status, _ = await api.call("PUT", f"{base}/items/camera:nope", {"finding": "pass"})
            assert status == 404
            status, _ = await api.call("PUT", item, {"finding": "problem", "note": "画面被遮挡"})
            assert status == 200
            # The notice: bad input first, nothing changes.
            deadline = (datetime.now(UTC) + timedelta(days=7)).isoformat()
            notice = {
                "inspection_id": iid,
                "item_id": "camera:cam-gate-1",
                "finding": "正门摄像机画面被遮挡，请于期限内整改",
                "deadline": deadline,
            }
            for bad, code, err in [
                ({**notice, "site_id": "zz-other-mall"}, 400, "invalid"),
                ({**notice, "inspection_id": "XC-none"}, 404, "not_found"),
                ({**notice, "item_id": "rule:POL-NOTICE"}, 409, "conflict"),  # not a problem
                ({**notice, "deadline": "2020-01-01T00:00:00Z"}, 400, "invalid"),
                ({**notice, "deadline": "next week"}, 400, "invalid"),
                ({**notice, "finding": ""}, 400, "invalid"),
            ]:
                status, body = await api.call("POST", "/api/v1/notices", bad)
                assert (status, body["error"]) == (code, err), (bad, body)
            assert (await api.get("/api/v1/notices"))["notices"] == []
            status, body = await api.call("POST", "/api/v1/notices", notice)
            assert status == 202, body
            nid = body["notice"]["notice_id"]
            assert body["notice"]["state"] == "sent"
            nbase = f"/api/v1/notices/{nid}"

            async def notice_is(state: str, version: int) -> bool:
                n = (await api.get(nbase))["notice"]
                return bool(n["state"] == state and n["version"] == version)

            await wait_until(lambda: notice_is("open", 1), within=30, what="the hub's notice")
            row, _ = await notice_rows(hub, nid)
            assert row.state == "open" and row.finding == notice["finding"]
            [mall] = (await api.get("/api/v1/malls"))["malls"]
            assert (mall["notices_open"], mall["notices_overdue"]) == (1, 0)
            # Nothing to decide on yet but an accept; a reject needs an answer first.
            status, body = await api.call("POST", f"{nbase}/reject", {"reason": "x"})
            assert status == 409 and body["error"] == "conflict"
            status, body = await api.call("POST", f"{nbase}/accept", {"site_id": "zz-other"})
            assert status == 400
            status, body = await api.call("POST", "/api/v1/notices/ZG-none/accept", {})
            assert status == 404 and body["error"] == "not_found"
            assert "未找到" in body["message_zh"] and "ZG-none" in body["message_zh"]
            unchanged = (await api.get(nbase))["notice"]
            assert (unchanged["version"], unchanged["pending"]) == (1, None)

            # The mall answers in its console with a fresh picture.
            await hub.notices.answer(
                nid, by="值班员", actor="console:duty", note="已清理镜头", cameras=["cam-gate-1"]
            )
            await wait_until(lambda: notice_is("answered", 2), within=30, what="the answer")
            n = (await api.get(nbase))["notice"]
            evidence = n["steps"][-1]["evidence"]["snapshots"]
            assert n["steps"][-1]["note"] == "已清理镜头" and len(evidence[0]["sha256"]) == 64

            async def evidence_kept() -> bool:
                return all(p["has_picture"] for p in (await api.get(nbase))["notice"]["evidence"])

            # The answer's picture is fetched from the hub and kept with its digest.
            await wait_until(evidence_kept, within=30, what="the answer's picture")
            sha = evidence[0]["sha256"]
            async with http.get(f"{svc.web.url}{nbase}/evidence/{sha}") as r:
                assert r.status == 200 and hashlib.sha256(await r.read()).hexdigest() == sha
            status, _ = await api.call("GET", f"{nbase}/evidence/{'0' * 64}")
            assert status == 404
            status, body = await api.call("POST", f"{nbase}/reject", {})
            assert status == 400  # a reason is required
            status, body = await api.call("POST", f"{nbase}/reject", {"reason": "画面仍不清晰"})
            assert status == 202 and body["notice"]["pending"] == "reject"
            status, body = await api.call("POST", f"{nbase}/accept", {})
            assert status == 409  # the first decision is on its way
            await wait_until(lambda: notice_is("rejected", 3), within=30, what="rejected")
            await hub.notices.answer(
                nid, by="值班员", actor="console:duty", note="已更换摄像机", cameras=["cam-gate-1"]
            )
            await wait_until(lambda: notice_is("answered", 4), within=30, what="second answer")
            status, body = await api.call("POST", f"{nbase}/accept", {"note": "已核实"})
            assert status == 202, body
            await wait_until(lambda: notice_is("closed", 5), within=30, what="closed")
            row, _ = await notice_rows(hub, nid)
            assert row.state == "closed"
            # After closing: every decision is refused and nothing changes.
            for action, payload in (("accept", {}), ("reject", {"reason": "x"})):
                status, body = await api.call("POST", f"{nbase}/{action}", payload)
                assert status == 409 and body["error"] == "conflict"
            assert (await api.get(nbase))["notice"]["version"] == 5
            [mall] = (await api.get("/api/v1/malls"))["malls"]
            assert mall["notices_open"] == 0
            assert await _audit(svc, f"notice:{nid}") == [
                "notice.issue",
                "notice.issued",
                "notice.answered",
                "notice.reject",
                "notice.rejected",
                "notice.answered",
                "notice.accept",
                "notice.accepted",
            ]

            # Complete: every item needs a finding, or the rest recorded as passed.
            status, body = await api.call("POST", f"{base}/complete", {})
            assert status == 409 and body["error"] == "conflict"
            status, body = await api.call("POST", f"{base}/complete", {"rest": "pass"})
            assert status == 200 and body["inspection"]["state"] == "completed"
            assert body["inspection"]["counts"]["problem"] == 1
            assert body["inspection"]["counts"]["open"] == 0
            status, body = await api.call("PUT", item, {"finding": "pass"})
            assert status == 409
            assert await _audit(svc, f"inspection:{iid}") == [
                "inspection.started",
                "inspection.finding",
                "inspection.completed",
            ]
            # The printable record names the officer and carries the evidence's sha256.
            async with http.get(f"{svc.web.url}/inspections/{iid}/record") as r:
                page = await r.text()
            assert r.status == 200 and "商场安全网上巡查记录" in page
            assert "李警官" in page and gate["sha256"] in page and "画面被遮挡" in page
            [res] = (await api.get("/api/v1/inspection-results"))["results"]
            assert (res["site_id"], res["inspections"], res["completed"]) == (SITE, 1, 1)
            assert (res["problems"], res["with_problems"], res["no_answer"]) == (1, 1, 0)
            [dist] = (await api.get("/api/v1/inspection-results?by=district"))["results"]
            assert (dist["district"], dist["inspections"]) == ("金水区", 1)
    # The notice never disappears: a patrol service started afresh on an empty store finds
    # it, closed at its last version, in the retained messages the hub left on the cluster.
    pc2 = patrol_config(nats_node, tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/2.db")
    async with PatrolService(pc2, web=False, workers=0) as svc2:
        assert svc2.store is not None
        [again] = await list_notices(svc2.store.engine, {})
        assert (again["notice_id"], again["state"], again["version"]) == (nid, "closed", 5)
        assert [s["action"] for s in again["steps"]][-1] == "accepted"


async def test_a_silent_mall_gets_a_record_saying_so_and_overdue_notices_escalate(
    nats_node: NatsCluster, tmp_path: Path, database_url: str
) -> None:
    pc = patrol_config(
        nats_node,
        tmp_path,
        database_url=database_url,
        malls=[{"site_id": "zz-silent-001", "name": "无应答商场", "district": "二七区"}],
        inspections={"hub_timeout_s": 2, "answer_timeout_s": 5},
    )
    password = secrets.token_urlsafe(12)
    async with PatrolService(pc) as svc:
        assert svc.store is not None and svc.web is not None
        await add_user(svc.store.engine, "zhang", "supervisor", password, "张所长")
        await add_user(svc.store.engine, "zhao", "supervisor", password, "赵所长")
        await add_user(svc.store.engine, "li", "officer", password, "李警官", supervisor="zhang")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            api = OfficerApi(http, svc.web.url)
            # Anonymous callers get 401; a change needs the CSRF token and the same origin.
            for method, path in [
                ("GET", "/api/v1/inspections"),
                ("POST", "/api/v1/inspections"),
                ("GET", "/api/v1/notices"),
                ("POST", "/api/v1/notices/ZG-1/accept"),
                ("GET", "/api/v1/escalations"),
            ]:
                status, body = await api.call(method, path, {})
                assert (status, body["error"]) == (401, "unauthenticated"), path
            await api.login("li", password)
            csrf, api.csrf = api.csrf, ""
            status, body = await api.call("POST", "/api/v1/inspections", {"site_id": SILENT})
            assert (status, body["error"]) == (403, "csrf")
            api.csrf = csrf
            async with http.post(
                f"{svc.web.url}/api/v1/inspections",
                json={"site_id": SILENT},
                headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
            ) as r:
                assert r.status == 403
            assert (await api.get("/api/v1/inspections"))["inspections"] == []
            status, body = await api.call("POST", "/api/v1/inspections", {"site_id": "zz-nowhere"})
            assert status == 404 and body["error"] == "not_found"
            status, body = await api.call("POST", "/api/v1/inspections", {"site_id": "a.b"})
            assert status == 400
            status, body = await api.call(
                "POST", "/api/v1/inspections", {"site_id": "zz-silent-001"}
            )
            assert status == 202
            iid = body["inspection"]["inspection_id"]

            async def silent() -> bool:
                return bool(
                    (await api.get(f"/api/v1/inspections/{iid}"))["inspection"]["state"]
                    == "no_answer"
                )

            await wait_until(silent, within=30, what="the no-answer record")
            [item] = (await api.get(f"/api/v1/inspections/{iid}"))["inspection"]["items"]
            assert (item["item_id"], item["finding"]) == ("hub:no_answer", "problem")
            assert "5 秒" in item["note"]
            # The finding becomes a notice; its deadline passes while the mall stays silent.
            deadline = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
            status, body = await api.call(
                "POST",
                "/api/v1/notices",
                {
                    "inspection_id": iid,
                    "item_id": "hub:no_answer",
                    "finding": "平台未应答巡查",
                    "deadline": deadline,
                },
            )
            assert status == 202, body
            nid = body["notice"]["notice_id"]
            status, body = await api.call("GET", "/api/v1/escalations")
            assert status == 403  # officers do not see the supervisors' list
            await api.login("zhang", password)

            async def escalated() -> bool:
                return [
                    n["notice_id"] for n in (await api.get("/api/v1/escalations"))["notices"]
                ] == [nid]

            await wait_until(escalated, within=30, what="the escalation")
            assert await _audit(svc, f"notice:{nid}") == ["notice.issue", "notice.escalated"]
            assert (await api.get(f"/api/v1/notices/{nid}"))["notice"]["escalated_to"] == "zhang"
            [mall] = (await api.get("/api/v1/malls"))["malls"]
            assert (mall["notices_open"], mall["notices_overdue"]) == (1, 1)
            other = OfficerApi(http, svc.web.url)
            await other.login("zhao", password)  # another supervisor's officers only
            assert (await other.get("/api/v1/escalations"))["notices"] == []
            await api.login("zhang", password)
            async with http.get(f"{svc.web.url}/escalations") as r:
                assert r.status == 200 and nid in await r.text()
            status, _ = await api.call("POST", f"/api/v1/inspections/{iid}/complete", {})
            assert status == 200
            [res] = (await api.get("/api/v1/inspection-results"))["results"]
            assert (res["no_answer"], res["problems"]) == (1, 1)
            doc = await api.get("/api/v1/openapi.json")
            assert {"/api/v1/inspections", "/api/v1/notices/{notice_id}/reject"} <= set(
                doc["paths"]
            )

        # A hub's notice that breaks the contract is counted and refused; the workers go on
        # and mirror the next valid one (a notice another platform issued, say).
        assert svc.nc is not None
        invalid = svc.stats.invalid
        subject = "mallhub.v1.zz-silent-001.notices"
        await svc.nc.publish(f"{subject}.ZG-bad", b'{"schema": "mallhub/notice/1"}')
        await svc.nc.publish(f"{subject}.ZG-bad", b"not json")
        good = {
            "schema": "mallhub/notice/1",
            "site_id": "zz-silent-001",
            "notice_id": "ZG-other",
            "state": "open",
            "overdue": False,
            "finding": "消防通道堵塞",
            "deadline": "2099-01-01T00:00:00Z",
            "officer": {"name": "王警官"},
            "issued_at": "2026-12-01T00:00:00Z",
            "updated_at": "2026-12-01T00:00:00Z",
            "version": 1,
            "steps": [
                {
                    "n": 1,
                    "at": "2026-12-01T00:00:00Z",
                    "action": "issued",
                    "state": "open",
                    "by": "王警官",
                    "via": "police",
                }
            ],
            "ts": "2026-12-01T00:00:00Z",
        }
        await svc.nc.publish(f"{subject}.ZG-other", json.dumps(good).encode())

        async def mirrored() -> bool:
            return any(n["notice_id"] == "ZG-other" for n in await list_notices(engine, {}))

        engine = svc.store.engine
        await wait_until(mirrored, within=20, what="the valid notice")
        assert svc.stats.invalid >= invalid + 2
        assert {n["notice_id"] for n in await list_notices(engine, {})} == {nid, "ZG-other"}

        # Scheduled: each mall once per period, however often the clock looks.
        sched = pc.model_copy(
            update={"inspections": pc.inspections.model_copy(update={"schedule": "monthly"})}
        )
        end_of_month = datetime(2026, 12, 31, 15, 59, tzinfo=UTC)  # 23:59 China time
        started = await start_scheduled(sched, svc.store, svc.nc, end_of_month)
        assert len(started) == 1
        assert await start_scheduled(sched, svc.store, svc.nc, end_of_month) == []
        [scheduled] = await list_inspections(engine, {}, state="waiting")
        assert scheduled["scheduled"] and scheduled["officer"] == "定期巡查"
