"""Every page of the patrol web app in zh-CN, as an officer's Chromium shows it after its
scripts ran, against a real hub (the demo mall over NATS): no code the hub or the patrol
service speaks in (device states and kinds, check and finding codes, rule verdicts, notice
states and steps, who acted) may show untranslated.

The data is made the real way: the north-gate camera is covered and the hub sees it
(degraded); the officer inspects the demo mall (cameras, places, devices, rules), and a mall
without a hub (its inspection is recorded as unanswered); a notice from the covered camera
goes overdue at the hub and is escalated, is answered with a picture and a device's state,
sent back, answered again and accepted. The checklist must show the camera's state and the
hub's reason, and the rule that names it with its result.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patrol.auth import add_user
from patrol.clock import now_utc
from patrol.inspections import expire_unanswered
from patrol.natsnode import NatsCluster
from patrol.notices import escalate_overdue
from tests.patrol.citytest import OfficerApi
from tests.roundtrip.browser import chromium, expect, patrol_login
from tests.roundtrip.world import COVERED, COVERED_FAULT, SITE, RoundTrip, round_trip
from tests.support.wait import wait_until
from tests.web.test_browser import CHROMIUM, shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
    pytest.mark.timeout(600),
]

#: Codes the patrol pages receive from the hub or keep themselves; none may show as such.
ENUMS = {
    # device states and kinds, checklist item kinds
    "online", "degraded", "offline", "unknown",
    "alarm_panel", "alarm_button", "detector", "fire_detector", "camera", "broadcast",
    "receiver", "hub", "role", "device", "rule",
    # what the hub says about an item: snapshot outcomes and refusals
    "snapshot", "timeout", "unavailable", "not_an_image", "no_camera", "internal",
    "sha256_mismatch", "no_answer", "invalid_answer", "invalid", "conflict", "not_found",
    # rule verdicts and the compliance summary
    "pass", "fail", "attested", "compliant", "non_compliant", "non-compliant",
    # places
    "gate", "entrance", "perimeter", "passage", "parking", "finance_room", "monitoring_room",
    # inspections and notices: states, steps, who acted through what
    "waiting", "answered", "refused", "completed", "problem",
    "sent", "open", "rejected", "closed", "issued", "accepted", "overdue",
    "police", "console",
    # the officers' roles
    "officer", "supervisor", "admin",
}  # fmt: skip
WORD = re.compile(
    r"(?<![A-Za-z0-9_.:-])("
    + "|".join(re.escape(w) for w in sorted(ENUMS, key=len, reverse=True))
    + r")(?![A-Za-z0-9_.-])"
)
#: Text the check skips: ids and digests, the hub's free text (labelled as its words).
SKIP = "code, .hub-text"
#: Every text node shown, one a line (innerText of a detached copy would run the cells of a
#: row together, and a code after a Chinese word would then not be seen as a word).
VISIBLE_TEXT = """(skip) => {
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(`${skip}, [hidden], template, script, style, option`)) continue;
    if (!el.checkVisibility()) continue;
    out.push(n.textContent);
  }
  return out.join("\\n");
}"""
GHOST = {"site_id": "ghost-mall", "name": "无应答测试商场", "district": "二七区"}
SUPERVISOR = "wang"


async def untranslated(page: Any) -> list[str]:
    text = await page.evaluate(VISIBLE_TEXT, SKIP)
    return sorted({m.group(1) for m in WORD.finditer(str(text))})


async def _inspect(api: OfficerApi, site: str) -> str:
    status, body = await api.call("POST", "/api/v1/inspections", {"site_id": site})
    assert status == 202, body
    return str(body["inspection"]["inspection_id"])


async def _inspection(api: OfficerApi, inspection_id: str) -> dict[str, Any]:
    status, body = await api.call("GET", f"/api/v1/inspections/{inspection_id}")
    assert status == 200, body
    return dict(body["inspection"])


async def _notice(api: OfficerApi, notice_id: str) -> dict[str, Any]:
    status, body = await api.call("GET", f"/api/v1/notices/{notice_id}")
    assert status == 200, body
    return dict(body["notice"])


async def _notice_until(api: OfficerApi, notice_id: str, state: str, step: str = "") -> None:
    """Until the notice is in ``state`` with no decision on its way (and has a ``step``)."""

    async def there() -> bool:
        n = await _notice(api, notice_id)
        steps = [s["action"] for s in n["steps"]]
        return n["state"] == state and n["pending"] is None and (not step or step in steps)

    await wait_until(there, within=90, interval=0.5, what=f"notice {state} {step}")


async def _make_history(rt: RoundTrip, api: OfficerApi) -> tuple[str, str, str]:
    """Inspections and a notice with every step; returns (inspection, ghost's, notice)."""
    assert await rt.camera_faults(COVERED, set_=[COVERED_FAULT]) == [COVERED_FAULT]
    assert await rt.look_at(COVERED) == "degraded"
    inspection_id = await _inspect(api, SITE)

    async def answered() -> bool:
        return bool((await _inspection(api, inspection_id))["state"] == "answered")

    await wait_until(answered, within=120, interval=0.5, what="the hub's inspection answer")
    ghost_id = await _inspect(api, GHOST["site_id"])
    assert rt.patrol.store is not None
    later = now_utc() + timedelta(seconds=rt.patrol.config.inspections.answer_timeout_s + 1)
    assert await expire_unanswered(rt.patrol.store, later) == [ghost_id]

    item = f"camera:{COVERED}"
    path = f"/api/v1/inspections/{inspection_id}/items/{item}"
    status, body = await api.call("PUT", path, {"finding": "problem", "note": "北门画面被遮挡"})
    assert status == 200, body
    deadline = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=15)
    status, body = await api.call(
        "POST",
        "/api/v1/notices",
        {
            "inspection_id": inspection_id,
            "item_id": item,
            "finding": "北门摄像机画面被遮挡，限期整改",
            "deadline": deadline.isoformat().replace("+00:00", "Z"),
        },
    )
    assert status == 202, body
    notice_id = str(body["notice"]["notice_id"])
    # The hub notes the deadline passing; the patrol service escalates it (its inspector
    # may have done it already).
    await _notice_until(api, notice_id, "open", "overdue")
    store = rt.patrol.store

    async def escalated() -> bool:
        await escalate_overdue(store)  # as the service's inspector does, once each
        return (await _notice(api, notice_id))["escalated_at"] is not None

    await wait_until(escalated, within=30, interval=0.5, what="the escalation")

    panel = rt.hub.config.devices.alarm_panels[0].id
    assert await rt.camera_faults(COVERED, clear=[COVERED_FAULT]) == []
    assert await rt.look_at(COVERED) == "online"
    for n in range(2):
        await rt.hub.notices.answer(
            notice_id,
            by="值班员",
            actor="console:duty",
            note=f"已移除遮挡物（第 {n + 1} 次）",
            cameras=[COVERED],
            devices=[panel],
        )
        await _notice_until(api, notice_id, "answered")
        if n == 0:
            reject = {"reason": "请补充近景照片"}
            status, body = await api.call("POST", f"/api/v1/notices/{notice_id}/reject", reject)
            assert status == 202, body
            await _notice_until(api, notice_id, "rejected")
    status, body = await api.call(
        "POST", f"/api/v1/inspections/{inspection_id}/complete", {"rest": "pass"}
    )
    assert status == 200, body
    return inspection_id, ghost_id, notice_id


async def test_every_patrol_page_in_chinese_shows_no_code(
    nats_node: NatsCluster, tmp_path: Path
) -> None:
    async with (
        round_trip(nats_node, tmp_path, more_malls=[GHOST]) as rt,
        chromium() as browser,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        assert rt.patrol.store is not None
        password = secrets.token_urlsafe(12)
        await add_user(rt.patrol.store.engine, SUPERVISOR, "supervisor", password, "王所长")
        api = OfficerApi(http, rt.patrol_url)
        await api.login(SUPERVISOR, password)
        inspection_id, ghost_id, notice_id = await _make_history(rt, api)

        page = await browser.page(rt.patrol_url)
        await patrol_login(page, SUPERVISOR, password)
        found: dict[str, list[str]] = {}

        async def visit(path: str, ready: str) -> None:
            await page.goto(path)
            await expect(page.locator(ready).first).to_be_visible(timeout=30_000)
            await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
            if words := await untranslated(page):
                found[path] = words

        # The escalation, while the notice is still open (answered, to be decided).
        await visit("/escalations", f'#escalations tr[data-notice="{notice_id}"]')
        status, body = await api.call("POST", f"/api/v1/notices/{notice_id}/accept", {})
        assert status == 202, body
        await _notice_until(api, notice_id, "closed")

        await visit("/", f'#malls tr[data-site="{SITE}"]')
        await visit("/inspections", f'#inspections tr[data-inspection="{inspection_id}"]')
        await visit(f"/inspections/{inspection_id}", "#items tr[data-item]")
        # The covered camera's evidence: its state, the hub's reason, the rule naming it.
        camera = page.locator(f'#items tr[data-item="camera:{COVERED}"]')
        state = camera.locator('.dev-state[data-state="degraded"]')
        await expect(state).to_contain_text("降级")
        await expect(camera.locator(".hub-words .hub-text")).not_to_be_empty()
        ref = camera.locator('.rule-ref[data-rule="VID-QUALITY"]')
        await expect(ref).to_have_attribute("data-status", "fail")
        await expect(ref).to_contain_text("不通过")
        kinds = await page.eval_on_selector_all(
            "#items tr[data-item]", "rows => rows.map(r => r.dataset.item.split(':')[0])"
        )
        assert {"camera", "role", "device", "rule"} <= set(kinds), kinds
        device = page.locator('#items tr[data-item^="device:"]').first
        await expect(device.locator(".dev-state")).to_have_count(1)
        await shot(page, "patrol-zh-checklist")
        await visit(f"/inspections/{ghost_id}", '#items tr[data-item^="hub:"]')
        for insp in (inspection_id, ghost_id):
            await visit(f"/inspections/{insp}/record", "#record-items tr[data-item]")
        await visit("/notices", f'#notices tr[data-notice="{notice_id}"]')
        await visit(f"/notices/{notice_id}", '#steps tr.step[data-action="accepted"]')
        actions = await page.eval_on_selector_all(
            "#steps tr.step", "rows => rows.map(r => r.dataset.action)"
        )
        assert set(actions) == {"issued", "overdue", "answered", "rejected", "accepted"}, actions
        await expect(page.locator("#steps .dev-state").first).to_be_visible()
        await shot(page, "patrol-zh-notice")
        await visit("/inspection-results", "#results tbody tr")
        await visit("/inspection-results?by=district", "#results tbody tr")
        assert found == {}, f"untranslated codes on the zh-CN pages: {found}"
        assert browser.errors == []
