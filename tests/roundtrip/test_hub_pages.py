"""The hub's notice pages in Chromium, with the police on the other end of a real NATS link:
the demo mall's north-gate camera is covered, the police inspect and issue a rectification
notice over NATS's MQTT listener; the notice shows on the console, the notice pages and the
compliance page; the operator answers in the form once the camera is uncovered, with a fresh
snapshot whose sha256 reaches the police; the police accept and the compliance status is
where it was before the camera was covered. Then bad input over the same link changes
nothing."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patrol.natsnode import NatsCluster
from tests.e2e.hubtest import assert_no_violations
from tests.notices.mall import audit_actions, notice_rows, snapshot_file_sha
from tests.roundtrip.browser import (
    chromium,
    compliance_shows,
    expect,
    hub_login,
    operator_answers,
    rule_statuses,
)
from tests.roundtrip.world import COVERED, COVERED_FAULT, OFFICER, SITE, RoundTrip, round_trip
from tests.web.test_browser import CHROMIUM, shot
from tests.web.webtest import Browserless

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
    pytest.mark.timeout(600),
]

NOTICE = "ZG-2026-0042"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def _fetch_sha(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 200, url
        return hashlib.sha256(await r.read()).hexdigest()


async def _inspect_covered(rt: RoundTrip) -> dict[str, Any]:
    """The police inspect the mall; the covered camera's item, with the inspection id."""
    resp = await rt.command("inspect", {"officer": OFFICER, "timeout_s": 60})
    assert resp["ok"] is True, resp
    items = {i["item_id"]: i for i in resp["result"]["items"]}
    item = items[f"camera:{COVERED}"]
    assert item["state"]["state"] == "degraded", item["state"]
    assert "covered" in item["state"]["reason"].lower(), item["state"]
    assert "snapshot" in item, item.get("error")
    return {"inspection_id": resp["result"]["inspection_id"], **item}


async def test_notice_pages_from_issue_to_accept_over_nats(
    nats_node: NatsCluster, tmp_path: Path
) -> None:
    async with round_trip(nats_node, tmp_path) as rt, chromium() as browser:
        view = rt.police.view(SITE)
        page = await browser.page(rt.hub.web.url)
        await hub_login(page)
        await expect(page.locator("#notice-banner")).to_have_count(0)
        await compliance_shows(page, "POL-NOTICE", "pass")
        before = await rule_statuses(page)
        overall_before = await page.locator("#overall").inner_text()
        assert before == await rt.statuses()

        # The north gate's camera is covered; the hub sees it at its next look.
        assert await rt.camera_faults(COVERED, set_=[COVERED_FAULT]) == [COVERED_FAULT]
        assert await rt.look_at(COVERED) == "degraded"
        await compliance_shows(page, "VID-QUALITY", "fail")

        # The police inspect and issue a notice naming the camera's item.
        item = await _inspect_covered(rt)
        deadline = datetime.now(UTC) + timedelta(days=7)
        issue = {
            "action": "issue",
            "notice_id": NOTICE,
            "site_id": SITE,
            "finding": "北门入口摄像机画面被遮挡",
            "deadline": deadline.isoformat(),
            "officer": OFFICER,
            "item": {"item_id": item["item_id"], "inspection_id": item["inspection_id"]},
        }
        resp = await rt.command("notice", dict(issue))
        assert resp["ok"] is True and resp["result"]["state"] == "open", resp

        # The console's banner, the list, the notice and the compliance page show it.
        await page.goto("/console")
        banner = page.locator("#notice-banner")
        await expect(banner).to_contain_text("1 份整改通知未销号")
        await banner.locator("a").click()
        await expect(page).to_have_url(f"{rt.hub.web.url}/notices")
        row = page.locator(f'tr.notice[data-notice="{NOTICE}"]')
        await expect(row).to_have_attribute("data-state", "open")
        await expect(row.locator(".nstate")).to_have_text("待整改")
        await expect(row).to_contain_text("北门入口摄像机画面被遮挡")
        await expect(row).to_contain_text("李警官")
        await shot(page, "roundtrip-hub-notices")
        await row.locator("a").click()
        await expect(page).to_have_url(f"{rt.hub.web.url}/notices/{NOTICE}")
        await expect(page.locator("#notice-state")).to_have_text("待整改")
        await expect(page.locator("#finding")).to_have_text("北门入口摄像机画面被遮挡")
        named = page.locator("#notice #item")
        await expect(named).to_have_attribute("data-item", f"camera:{COVERED}")
        await expect(named).to_contain_text(f"摄像机 北门入口 ({COVERED})")
        await expect(page.locator("li.step")).to_have_count(1)
        await expect(page.locator('li.step[data-action="issued"]')).to_contain_text("李警官")
        camera_box = page.locator(f'#answer-form input[name="cameras"][value="{COVERED}"]')
        await expect(camera_box).to_be_checked()  # the item's camera
        await compliance_shows(page, "POL-NOTICE", "fail")
        await expect(page.locator(f'#open-notices li[data-notice="{NOTICE}"]')).to_be_visible()
        await shot(page, "roundtrip-hub-compliance-open")

        # The mall removes the cover; the hub sees a clear picture again.
        cleared_at = datetime.now(UTC)
        assert await rt.camera_faults(COVERED, clear=[COVERED_FAULT]) == []
        assert await rt.look_at(COVERED) == "online"

        # The operator answers in the form; the camera's snapshot is taken now.
        shown_sha = await operator_answers(
            page, NOTICE, COVERED, "已移除北门摄像机前的遮挡物，重新抓拍"
        )
        await shot(page, "roundtrip-hub-notice-answered")

        # The answer reaches the police with the fresh snapshot's digest.
        await rt.police.wait_for(
            lambda: view.notices.get(NOTICE, {}).get("state") == "answered", within=60
        )
        step = view.notices[NOTICE]["steps"][-1]
        assert step["action"] == "answered" and step["by"] == "operator"
        assert step["via"] == "console"
        [snap] = step["evidence"]["snapshots"]
        assert snap["camera_id"] == COVERED and snap["sha256"] == shown_sha
        assert _at(snap["taken_at"]) >= cleared_at
        assert snap["sha256"] != item["snapshot"]["sha256"]  # not the covered picture
        assert await _fetch_sha(snap["url"]) == snap["sha256"]
        assert await snapshot_file_sha(rt.hub, snap["sha256"]) == snap["sha256"]

        # The police accept: the notice is closed and compliance is back where it was.
        resp = await rt.command(
            "notice", {"action": "accept", "notice_id": NOTICE, "by": "李警官", "note": "已核实"}
        )
        assert resp["ok"] is True and resp["result"]["state"] == "closed", resp
        await rt.police.wait_for(lambda: view.notices[NOTICE]["state"] == "closed", within=60)
        await page.goto(f"/notices/{NOTICE}")
        await expect(page.locator("#notice-state")).to_have_text("已销号")
        await expect(page.locator('li.step[data-action="accepted"]')).to_contain_text("李警官")
        await page.goto("/console")
        await expect(page.locator("#notice-banner")).to_have_count(0)
        await compliance_shows(page, "POL-NOTICE", "pass")
        await compliance_shows(page, "VID-QUALITY", before["VID-QUALITY"])
        await expect(page.locator(f'#open-notices li[data-notice="{NOTICE}"]')).to_have_count(0)
        assert await rule_statuses(page) == before
        assert await page.locator("#overall").inner_text() == overall_before
        assert await rt.statuses() == before
        await shot(page, "roundtrip-hub-compliance-closed")

        # Bad input over the same link: a clear refusal, nothing changes.
        row_before, steps_before = await notice_rows(rt.hub, NOTICE)
        audits = await audit_actions(rt.hub)
        known = set(view.notices)

        async def refused(body: dict[str, Any], code: str) -> None:
            r = await rt.command("notice", body)
            assert r["ok"] is False and r["error"]["code"] == code, r
            assert r["error"]["message"]

        await refused({"action": "accept", "notice_id": "ZG-NOPE", "by": "李警官"}, "not_found")
        await refused({**issue, "notice_id": "ZG-2026-0043", "site_id": "other-mall"}, "invalid")
        await refused(
            {"action": "reject", "notice_id": NOTICE, "by": "李警官", "reason": "再看"}, "conflict"
        )
        async with Browserless(rt.hub.web.url) as b:
            assert (await b.login("operator")).status == 200
            late = await b.session.post(
                f"/api/v1/notices/{NOTICE}/answer",
                json={"note": "再次回复", "cameras": [COVERED]},
                headers=b.headers(),
            )
            assert late.status == 409 and "closed" in (await late.json())["message"]
            unknown = await b.session.get("/notices/ZG-NOPE")
            assert unknown.status == 404
        row_after, steps_after = await notice_rows(rt.hub, NOTICE)
        assert (row_after.state, row_after.version) == (row_before.state, row_before.version)
        assert len(steps_after) == len(steps_before)
        assert (await notice_rows(rt.hub, "ZG-2026-0043"))[0] is None
        assert await audit_actions(rt.hub) == audits
        assert audits == ["notice.issued", "notice.answered", "notice.accepted"]
        assert set(view.notices) == known
        assert await rt.statuses() == before
        assert_no_violations(rt.police)
        assert browser.errors == []
