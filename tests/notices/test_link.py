"""Inspections and rectification notices over the police link: a real hub, a real Mosquitto,
simulated cameras, the police simulator validating every message against the schemas, and the
console's API for the mall's answer."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
from jsonschema import Draft202012Validator

from hub.app import Hub
from hub.broker import LocalMosquitto
from simulators.camera import CameraFarm
from simulators.police import PolicePlatform
from tests.e2e.hubtest import assert_no_violations
from tests.notices.mall import (
    OFFICER,
    SITE,
    audit_actions,
    audit_count,
    cameras_warm,
    health_settled,
    issue,
    mall_config,
    notice_rows,
    police_hub,
    snapshot_file_sha,
)
from tests.web.webtest import Browserless, add_users

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))


async def command(police: PolicePlatform, name: str, body: dict[str, Any]) -> dict[str, Any]:
    return await police.command(SITE, name, body, within=60)


async def rule_status(hub: Hub, rule: str = "POL-NOTICE") -> str:
    result = await hub.compliance.evaluate_now()
    return str(result.rule(rule).status)


async def test_inspect_answers_one_checklist_with_evidence(
    broker: LocalMosquitto, farm: CameraFarm, camera_password: str, tmp_path: Path
) -> None:
    cfg = mall_config(farm, camera_password, broker.url, tmp_path, None)
    async with police_hub(cfg, broker.url) as (police, hub):
        await health_settled(hub)
        await cameras_warm(hub)
        resp = await command(police, "inspect", {"officer": OFFICER, "timeout_s": 30})
        assert resp["ok"] is True, resp
        result = resp["result"]
        items = {i["item_id"]: i for i in result["items"]}
        assert result["officer"] == {"name": OFFICER["name"], "id": OFFICER["id"]}
        # The two cameras that answer: a fresh JPEG each (inline up to the bound), its digest
        # that of the bytes sent and of the file the hub keeps.
        for cam in ("camera:cam-gate-1", "camera:cam-park-1"):
            assert "snapshot" in items[cam], items[cam].get("error")
            snap = items[cam]["snapshot"]
            if snap["bytes"] <= hub.config.police.inline_snapshot_max_bytes:
                data = base64.b64decode(snap["data_base64"])
            else:  # larger pictures than the inline bound travel as a signed URL
                async with aiohttp.ClientSession() as http, http.get(snap["url"]) as r:
                    data = await r.read()
            assert data[:3] == b"\xff\xd8\xff" and len(data) == snap["bytes"]
            assert hashlib.sha256(data).hexdigest() == snap["sha256"]
            assert await snapshot_file_sha(hub, snap["sha256"]) == snap["sha256"]
        assert items["camera:cam-gate-1"]["role"] == "gate"
        # The camera nobody can reach is an item with the reason, not left out.
        fin = items["camera:cam-fin-1"]
        assert "snapshot" not in fin and fin["error"]["code"] in ("unavailable", "timeout")
        # Required places without any camera are items of their own.
        for role in ("perimeter", "passage", "monitoring_room"):
            assert items[f"role:{role}"]["error"]["code"] == "no_camera"
        assert "role:gate" not in items and "role:parking" not in items
        assert items["device:btn-gate-1"]["state"]["state"] == "unknown"
        assert items["rule:POL-NOTICE"]["status"] == "pass"
        assert validator("compliance").is_valid(result["compliance"])
        assert result["compliance"]["site_id"] == SITE
        assert await audit_actions(hub, "inspection.") == ["inspection.answered"]

        # Pictures beyond the inline bound travel as signed URLs that give the same bytes.
        resp = await command(police, "inspect", {"inline_max_bytes": 0})
        snap = {i["item_id"]: i for i in resp["result"]["items"]}["camera:cam-gate-1"]["snapshot"]
        assert "data_base64" not in snap
        async with aiohttp.ClientSession() as http, http.get(snap["url"]) as r:
            assert r.status == 200
            assert hashlib.sha256(await r.read()).hexdigest() == snap["sha256"]

        # Another site's inspection, or nonsense, is refused.
        wrong = await command(police, "inspect", {"site_id": "other-mall"})
        assert wrong["ok"] is False and wrong["error"]["code"] == "invalid"
        assert "other-mall" in wrong["error"]["message"] or "site" in wrong["error"]["message"]
        bad = await command(police, "inspect", {"timeout_s": "soon"})
        assert bad["ok"] is False and bad["error"]["code"] == "invalid"
        assert_no_violations(police)


async def test_notice_round_trip_returns_compliance_to_where_it_was(
    broker: LocalMosquitto,
    farm: CameraFarm,
    camera_password: str,
    tmp_path: Path,
    database_url: str,
) -> None:
    cfg = mall_config(farm, camera_password, broker.url, tmp_path, database_url)
    async with police_hub(cfg, broker.url) as (police, hub):
        view = police.view(SITE)
        await add_users(hub)
        await health_settled(hub)
        before = await hub.compliance.evaluate_now()
        before_failing = {r.rule_id for r in before.rules if r.status == "fail"}
        assert "POL-NOTICE" not in before_failing

        issued = issue()
        resp = await command(police, "notice", dict(issued))
        assert resp["ok"] is True, resp
        assert resp["result"] == {
            "notice_id": "ZG-2026-001",
            "state": "open",
            "changed": True,
            "version": 1,
        }
        await police.wait_for(lambda: "ZG-2026-001" in view.notices)
        n = view.notices["ZG-2026-001"]
        assert n["state"] == "open" and n["officer"]["name"] == "李警官" and not n["overdue"]
        assert [s["action"] for s in n["steps"]] == ["issued"]
        assert await rule_status(hub) == "fail"
        await police.wait_for(
            lambda: any(
                f["rule"] == "POL-NOTICE" for f in (view.compliance or {}).get("failing", [])
            )
        )
        # The same notice again (a redelivered command) changes nothing.
        again = await command(police, "notice", dict(issued))
        assert again["result"]["changed"] is False and again["result"]["version"] == 1

        async with Browserless(hub.web.url) as b:
            assert (await b.login("operator")).status == 200
            listed = await (await b.session.get("/api/v1/notices?open=true")).json()
            assert [i["notice_id"] for i in listed["items"]] == ["ZG-2026-001"]
            assert listed["counts"]["open"] == 1

            async def answer(note: str) -> aiohttp.ClientResponse:
                return await b.session.post(
                    "/api/v1/notices/ZG-2026-001/answer",
                    json={"note": note, "cameras": ["cam-gate-1"], "devices": ["btn-gate-1"]},
                    headers=b.headers(),
                )

            r = await answer("已移除遮挡物")
            assert r.status == 200, await r.text()
            assert (await r.json())["state"] == "answered"
            await police.wait_for(lambda: view.notices["ZG-2026-001"]["state"] == "answered")
            step = view.notices["ZG-2026-001"]["steps"][-1]
            assert step["action"] == "answered" and step["by"] == "operator"
            assert step["note"] == "已移除遮挡物"
            [snap] = step["evidence"]["snapshots"]
            assert snap["camera_id"] == "cam-gate-1" and "url" in snap
            assert await snapshot_file_sha(hub, snap["sha256"]) == snap["sha256"]
            assert step["evidence"]["devices"][0]["device_id"] == "btn-gate-1"

            rej = await command(
                police,
                "notice",
                {
                    "action": "reject",
                    "notice_id": "ZG-2026-001",
                    "by": "李警官",
                    "reason": "看不清",
                },
            )
            assert rej["ok"] is True and rej["result"]["state"] == "rejected", rej
            assert await rule_status(hub) == "fail"
            r = await answer("已更换镜头罩，重新抓拍")
            assert r.status == 200, await r.text()

        acc = await command(
            police, "notice", {"action": "accept", "notice_id": "ZG-2026-001", "by": "李警官"}
        )
        assert acc["ok"] is True and acc["result"]["state"] == "closed", acc
        await police.wait_for(lambda: view.notices["ZG-2026-001"]["state"] == "closed")
        final = view.notices["ZG-2026-001"]
        assert [s["action"] for s in final["steps"]] == [
            "issued",
            "answered",
            "rejected",
            "answered",
            "accepted",
        ]
        assert final["version"] == 5 and final["closed_at"]
        after = await hub.compliance.evaluate_now()
        assert after.rule("POL-NOTICE").status == "pass"
        assert {r.rule_id for r in after.rules if r.status == "fail"} == before_failing
        assert after.overall == before.overall
        assert await audit_actions(hub) == [
            "notice.issued",
            "notice.answered",
            "notice.rejected",
            "notice.answered",
            "notice.accepted",
        ]
        assert_no_violations(police)


async def test_bad_input_gets_a_clear_error_and_changes_nothing(
    broker: LocalMosquitto, farm: CameraFarm, camera_password: str, tmp_path: Path
) -> None:
    cfg = mall_config(farm, camera_password, broker.url, tmp_path, None)
    async with police_hub(cfg, broker.url) as (police, hub):
        view = police.view(SITE)
        await add_users(hub)

        async def refused(body: dict[str, Any], code: str) -> None:
            resp = await command(police, "notice", body)
            assert resp["ok"] is False and resp["error"]["code"] == code, resp
            assert resp["error"]["message"]

        # Unknown notice ids.
        await refused({"action": "accept", "notice_id": "NOPE", "by": "李警官"}, "not_found")
        await refused(
            {"action": "reject", "notice_id": "NOPE", "by": "李警官", "reason": "x"}, "not_found"
        )
        # A notice for another site, and malformed ones.
        await refused(issue("ZG-X", site_id="other-mall"), "invalid")
        await refused(issue("ZG-X", deadline="2030-01-01T00:00:00"), "invalid")
        await refused(issue("ZG-X", deadline="2001-01-01T00:00:00Z"), "invalid")
        await refused(issue("ZG-X", officer={"name": ""}), "invalid")
        await refused(issue("ZG-X", finding="a\x00b"), "invalid")
        await refused(issue("bad id with spaces"), "invalid")
        await refused({"action": "destroy", "notice_id": "ZG-X"}, "invalid")
        assert (await notice_rows(hub, "ZG-X"))[0] is None
        assert (await notice_rows(hub, "NOPE"))[0] is None

        first = issue("ZG-1")
        assert (await command(police, "notice", dict(first)))["ok"] is True
        await refused({**first, "finding": "另一个问题"}, "conflict")
        # Nothing to reject before the mall answers.
        await refused(
            {"action": "reject", "notice_id": "ZG-1", "by": "李警官", "reason": "x"}, "conflict"
        )
        async with Browserless(hub.web.url) as b:
            assert (await b.login("operator")).status == 200

            async def answer(notice_id: str, **body: Any) -> aiohttp.ClientResponse:
                return await b.session.post(
                    f"/api/v1/notices/{notice_id}/answer",
                    json={"note": "已整改", **body},
                    headers=b.headers(),
                )

            assert (await answer("NOPE")).status == 404
            r = await answer("ZG-1", cameras=["cam-nope"])
            assert r.status == 422 and "cam-nope" in (await r.json())["message"]
            # A camera that gives no picture: the answer is refused whole.
            r = await answer("ZG-1", cameras=["cam-fin-1"])
            assert r.status == 503 and "cam-fin-1" in (await r.json())["message"]
            row, steps = await notice_rows(hub, "ZG-1")
            assert row.state == "open" and len(steps) == 1
            # A viewer may read but not answer.
            async with Browserless(hub.web.url) as v:
                assert (await v.login("viewer")).status == 200
                r = await v.session.post(
                    "/api/v1/notices/ZG-1/answer", json={"note": "x"}, headers=v.headers()
                )
                assert r.status == 403

            assert (await answer("ZG-1")).status == 200
            r = await answer("ZG-1")
            assert r.status == 409 and "already answered" in (await r.json())["message"]
            acc = {"action": "accept", "notice_id": "ZG-1", "by": "李警官"}
            assert (await command(police, "notice", dict(acc)))["result"]["state"] == "closed"
            await police.wait_for(lambda: view.notices["ZG-1"]["state"] == "closed")
            closed = view.notices["ZG-1"]
            audits = await audit_count(hub)

            # After closing: answers and rejections are refused; a repeated accept is a no-op.
            r = await answer("ZG-1")
            assert r.status == 409 and "closed" in (await r.json())["message"]
            await refused(
                {"action": "reject", "notice_id": "ZG-1", "by": "李警官", "reason": "x"},
                "conflict",
            )
            repeat = await command(police, "notice", dict(acc))
            assert repeat["ok"] is True and repeat["result"]["changed"] is False
            row, steps = await notice_rows(hub, "ZG-1")
            assert row.state == "closed" and row.version == closed["version"]
            assert len(steps) == len(closed["steps"])
            assert await audit_count(hub) == audits
        assert_no_violations(police)


async def test_open_notice_survives_restart_and_a_broker_that_lost_it(
    broker: LocalMosquitto,
    farm: CameraFarm,
    camera_password: str,
    tmp_path: Path,
    database_url: str,
) -> None:
    cfg = mall_config(farm, camera_password, broker.url, tmp_path, database_url)
    async with police_hub(cfg, broker.url) as (police, hub):
        assert (await command(police, "notice", issue("ZG-7")))["ok"] is True
        await police.wait_for(lambda: "ZG-7" in police.view(SITE).notices)
    # The broker forgets the retained notice while the hub is down.
    topic = f"{cfg.topic_prefix}/notices/ZG-7"
    host, port = broker.url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port)) as mqtt:
        await mqtt.publish(topic, b"", qos=1, retain=True)
    async with police_hub(cfg, broker.url) as (police, hub):
        # A fresh subscriber sees it again: the hub republished it after connecting.
        await police.wait_for(lambda: "ZG-7" in police.view(SITE).notices, within=30)
        n = police.view(SITE).notices["ZG-7"]
        assert n["state"] == "open" and n["finding"] == "正门摄像机画面被遮挡"
        assert [v.notice_id for v in await hub.notices.list(open_only=True)] == ["ZG-7"]
        assert await rule_status(hub) == "fail"
        assert_no_violations(police)


async def test_a_deadline_passing_is_published_and_counted_as_overdue(
    broker: LocalMosquitto, farm: CameraFarm, camera_password: str, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    cfg = mall_config(farm, camera_password, broker.url, tmp_path, None)
    async with police_hub(cfg, broker.url) as (police, hub):
        view = police.view(SITE)
        soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        assert (await command(police, "notice", issue("ZG-9", deadline=soon)))["ok"] is True
        await police.wait_for(
            lambda: view.notices.get("ZG-9", {}).get("overdue") is True, within=30
        )
        n = view.notices["ZG-9"]
        assert n["state"] == "open" and n["steps"][-1]["action"] == "overdue"
        result = await hub.compliance.evaluate_now()
        outcome = result.rule("POL-NOTICE").outcome
        assert outcome.status == "fail" and "overdue" in outcome.explanation.en
        assert {e.check for e in outcome.evidence} == {"overdue"}
        assert await audit_actions(hub) == ["notice.issued", "notice.overdue"]
        assert_no_violations(police)
