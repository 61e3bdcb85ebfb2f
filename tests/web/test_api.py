"""The API against a real hub: a button press becomes an event in the list and on the live
stream; acknowledging it reaches the police; close, notes, CSV, records, compliance, audit."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import date, timedelta
from typing import Any

import aiohttp
from sqlalchemy import select

from hub.store.models import AuditLog, Record
from simulators.panel import PanelSimulator
from tests.web.webtest import Browserless, WebHub


def bearer(wh: WebHub, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {wh.tokens[role]}"}


async def press_button(wh: WebHub, zone: int = 15) -> dict[str, Any]:
    """Press a button on the simulated panel; returns the event as the police got it."""
    view = wh.police.view(wh.site)
    before = len(view.events)
    async with PanelSimulator("127.0.0.1", wh.hub.sia.tcp_port, "1234") as panel:
        panel.press(zone)
        await panel.wait_acked(1, within=10)
    await wh.police.wait_for(lambda: len(view.events) > before)
    return view.events[view.event_order[-1]]


async def read_sse(resp: aiohttp.ClientResponse, want: str, within: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(within):
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("data: "):
                msg: dict[str, Any] = json.loads(line[6:])
                if msg["type"] == want:
                    return msg
    raise AssertionError("stream ended")


async def test_alarm_live_ack_close_note_and_story(wh: WebHub) -> None:
    async with Browserless(wh.url) as c:
        assert (await c.login("operator")).status == 200
        live = await c.session.get("/api/v1/live")
        assert live.headers["Content-Type"].startswith("text/event-stream")
        await read_sse(live, "hello")
        alarm = await press_button(wh)
        event_id = alarm["event_id"]
        msg = await read_sse(live, "event")
        assert msg["event"]["event_id"] == event_id
        assert msg["event"]["priority"] == 1 and msg["event"]["device_name"] == "正门一键报警"
        assert msg["event"]["cameras"] == [{"id": "cam-gate-1", "name": "正门摄像机"}]

        async with c.session.get("/api/v1/events", params={"state": "new"}) as r:
            page = await r.json()
        assert [e["event_id"] for e in page["items"]] == [event_id]

        async with c.session.post(
            f"/api/v1/events/{event_id}/acknowledge",
            json={"note": "on my way"},
            headers=c.headers(),
        ) as r:
            assert r.status == 200, await r.text()
            assert (await r.json()) == {
                "event_id": event_id,
                "state": "acknowledged",
                "changed": True,
            }
        update = await read_sse(live, "update")
        assert update["event_id"] == event_id and update["state"]["state"] == "acknowledged"
        view = wh.police.view(wh.site)

        def acked() -> bool:
            return any(
                u["event_id"] == event_id and (u.get("state") or {}).get("state") == "acknowledged"
                for u in view.updates
            )

        await wh.police.wait_for(acked)
        police_update = next(u for u in view.updates if u["event_id"] == event_id and "state" in u)
        assert police_update["state"]["by"] == "operator"
        assert police_update["state"]["via"] == "console"
        assert police_update["state"]["note"] == "on my way"

        async with c.session.post(
            f"/api/v1/events/{event_id}/notes",
            json={"text": "guard at the gate"},
            headers=c.headers(),
        ) as r:
            assert r.status == 201
        async with c.session.post(
            f"/api/v1/events/{event_id}/close",
            json={"disposition": "false_alarm"},
            headers=c.headers(),
        ) as r:
            assert r.status == 200 and (await r.json())["state"] == "closed"
        async with c.session.post(
            f"/api/v1/events/{event_id}/close",
            json={"disposition": "false_alarm"},
            headers=c.headers(),
        ) as r:
            assert r.status == 200 and (await r.json())["changed"] is False
        live.close()

        async with c.session.get(f"/api/v1/events/{event_id}") as r:
            story = await r.json()
        assert story["event"]["state"] == "closed"
        assert story["event"]["disposition"] == "false_alarm"
        assert [s["state"] for s in story["states"]][:2] == ["acknowledged", "closed"]
        assert story["notes"][0]["text"] == "guard at the gate"
        whats = [t["what"] for t in story["timeline"]]
        assert "event.acknowledged" in whats and "event.closed" in whats
        assert "event.note" in whats
    async with wh.hub.engine.connect() as conn:
        actions = (
            await conn.execute(
                select(AuditLog.actor, AuditLog.action).where(AuditLog.subject == event_id)
            )
        ).all()
    assert ("console:operator", "event.acknowledged") in actions
    assert ("console:operator", "event.note") in actions
    assert ("console:operator", "event.closed") in actions


async def test_event_search_paging_and_csv(wh: WebHub) -> None:
    await press_button(wh, 15)
    await press_button(wh, 16)
    h = bearer(wh, "viewer")
    async with aiohttp.ClientSession(wh.url) as s:
        async with s.get("/api/v1/events", params={"q": "值班室"}, headers=h) as r:
            page = await r.json()
        assert [e["device_id"] for e in page["items"]] == ["btn-duty-1"]
        async with s.get("/api/v1/events", params={"zone": "main-gate"}, headers=h) as r:
            assert [e["device_id"] for e in (await r.json())["items"]] == ["btn-gate-1"]
        async with s.get(
            "/api/v1/events", params={"limit": 1, "category": "alarm"}, headers=h
        ) as r:
            page = await r.json()
        assert page["total"] == 2 and len(page["items"]) == 1 and page["next_offset"] == 1
        async with s.get(
            "/api/v1/events", params={"limit": 1, "offset": 1, "category": "alarm"}, headers=h
        ) as r:
            assert (await r.json())["next_offset"] is None
        async with s.get("/api/v1/events", params={"since": "not a time"}, headers=h) as r:
            assert r.status == 400
        async with s.get("/api/v1/events.csv", params={"category": "alarm"}, headers=h) as r:
            assert r.headers["Content-Type"].startswith("text/csv")
            text = (await r.read()).decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {row["device_id"] for row in rows} == {"btn-gate-1", "btn-duty-1"}
        assert all(row["kind"] == "alarm.panic" for row in rows)


async def test_records_and_compliance(wh: WebHub) -> None:
    today = date.today()
    h = bearer(wh, "operator")
    async with aiohttp.ClientSession(wh.url) as s:
        async with s.post(
            "/api/v1/records/hazards",
            headers=h,
            json={
                "title": "消防通道堵塞",
                "owner": "张三",
                "found": (today - timedelta(days=10)).isoformat(),
                "due": (today - timedelta(days=3)).isoformat(),
            },
        ) as r:
            assert r.status == 201, await r.text()
            hazard = (await r.json())["id"]
        async with s.post(
            "/api/v1/records/drills",
            headers=h,
            json={"date": today.isoformat(), "title": "消防演练", "type": "fire"},
        ) as r:
            assert r.status == 201, await r.text()
        async with s.post(
            "/api/v1/records/drills",
            headers=h,
            json={"date": (today + timedelta(days=5)).isoformat(), "title": "x"},
        ) as r:
            assert r.status == 422 and "future" in (await r.json())["message"]
        async with s.get("/api/v1/records", params={"kind": "hazard"}, headers=h) as r:
            items = (await r.json())["items"]
        assert items[0]["id"] == hazard and items[0]["overdue"] is True
        assert items[0]["owner"] == "张三"
        async with s.post(
            f"/api/v1/records/hazards/{hazard}/close", json={"note": "已清理"}, headers=h
        ) as r:
            assert r.status == 200
        async with s.post(f"/api/v1/records/hazards/{hazard}/close", json={}, headers=h) as r:
            assert r.status == 409
        async with s.post(
            "/api/v1/records/attestations",
            headers=h,
            json={"rule": "STAFF-TEAM", "evidence": "x", "expires": "2099-01-01"},
        ) as r:
            assert r.status == 403  # attestations are for admins
        async with s.get("/api/v1/compliance", headers=h) as r:
            now = await r.json()
        assert now["overall"] in ("compliant", "non_compliant")
        rules = {x["rule"]: x for x in now["rules"]}
        assert rules["DRILL-QUARTERLY"]["status"] in ("pass", "fail", "unknown")
        async with s.get("/api/v1/compliance", params={"date": "2020-01-01"}, headers=h) as r:
            past = await r.json()
        assert past["at"].startswith("2020-01-01") and past["live"] is False
        async with s.get("/api/v1/compliance/report.html", params={"lang": "en"}, headers=h) as r:
            assert r.status == 200 and "compliance" in (await r.text()).lower()
    async with wh.hub.engine.connect() as conn:
        rows = (await conn.execute(select(Record.kind, Record.created_by))).all()
    assert ("hazard", "operator") in rows and ("drill", "operator") in rows


async def test_devices_probe_test_mode_and_users(wh: WebHub) -> None:
    h = bearer(wh, "technician")
    async with aiohttp.ClientSession(wh.url) as s:
        async with s.get("/api/v1/devices", headers=h) as r:
            data = await r.json()
        ids = {d["id"] for d in data["items"]}
        assert {"panel-1", "btn-gate-1", "btn-duty-1", "cam-gate-1"} <= ids
        async with s.get("/api/v1/devices", params={"not_online": "true"}, headers=h) as r:
            assert all(d["state"] != "online" for d in (await r.json())["items"])
        async with s.post("/api/v1/devices/cam-gate-1/probe", headers=h) as r:
            assert r.status == 202, await r.text()
            assert (await r.json())["device_id"] == "cam-gate-1"
        async with s.post("/api/v1/devices/btn-gate-1/probe", headers=h) as r:
            assert r.status == 409
        async with s.get("/api/v1/devices/cam-gate-1/probes", headers=h) as r:
            probes = (await r.json())["items"]
        assert probes and probes[0]["ok"] is False  # nothing listens on the camera's port
        async with s.get("/api/v1/devices/nope/probes", headers=h) as r:
            assert r.status == 404

        async with s.post(
            "/api/v1/test-mode", json={"target": "btn-gate-1", "minutes": 10}, headers=h
        ) as r:
            assert r.status == 201, await r.text()
            assert (await r.json())["target"] == "device:btn-gate-1"
        async with s.get("/api/v1/devices/btn-gate-1", headers=h) as r:
            assert (await r.json())["test_mode_until"] is not None
        async with s.delete("/api/v1/test-mode/btn-gate-1", headers=h) as r:
            assert r.status == 200
        async with s.delete("/api/v1/test-mode/btn-gate-1", headers=h) as r:
            assert r.status == 404

        admin = bearer(wh, "admin")
        async with s.post(
            "/api/v1/users",
            headers=admin,
            json={"name": "lisi", "role": "operator", "password": "short"},
        ) as r:
            assert r.status == 400
        async with s.post(
            "/api/v1/users",
            headers=admin,
            json={"name": "lisi", "role": "operator", "password": "a long enough one"},
        ) as r:
            assert r.status == 201 and (await r.json())["role"] == "operator"
        async with s.post(
            "/api/v1/users",
            headers=admin,
            json={"name": "lisi", "role": "operator", "password": "a long enough one"},
        ) as r:
            assert r.status == 409
        async with s.get("/api/v1/audit", params={"action": "user.created"}, headers=admin) as r:
            entries = (await r.json())["items"]
        assert entries[0]["subject"] == "user:lisi" and entries[0]["actor"] == "token:admin"
        assert "password" not in json.dumps(entries)


def test_a_button_shows_its_panels_state() -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from hub.config import Location
    from hub.site import DeviceInfo
    from hub.web.queries import device_json

    panel_row = SimpleNamespace(
        state="offline",
        since=datetime(2026, 11, 24, 8, tzinfo=UTC),
        reason="supervision lost",
        last_seen=None,
        detail={},
    )
    button = DeviceInfo(
        "btn-gate-1",
        "alarm_button",
        "正门一键报警",
        Location(floor="1F", zone="gate"),
        parent="panel-1",
    )
    shown = device_json(button, None, None, {}, False, panel_row)
    assert shown["state"] == "offline"
    assert shown["reason"] == "panel-1: supervision lost"
    alone = device_json(button, None, None, {}, False, None)
    assert alone["state"] == "unknown"


async def test_metrics_endpoint_needs_a_token_and_serves_the_hub_series(wh: WebHub) -> None:
    await press_button(wh)
    async with aiohttp.ClientSession(wh.url) as s:
        async with s.get("/metrics") as r:
            assert r.status == 401
        async with s.get("/metrics", headers=bearer(wh, "viewer")) as r:
            assert r.status == 200
            assert r.content_type.startswith("text/plain")
            text = await r.text()
    from prometheus_client.parser import text_string_to_metric_families

    samples = {
        (smp.name, tuple(sorted(smp.labels.items()))): smp.value
        for fam in text_string_to_metric_families(text)
        for smp in fam.samples
    }
    assert samples[("mallhub_events_ingested_total", (("kind", "alarm.panic"),))] == 1
    names = {name for name, _ in samples}
    for series in (
        "mallhub_device_state",
        "mallhub_police_link_up",
        "mallhub_compliance_rule_status",
    ):
        assert series in names
