"""The whole round trip in Chromium with two people: an officer on the patrol web app and the
mall's operator on the hub console, the hub and the patrol service talking only over NATS.

The officer inspects the demo mall while its north-gate camera is covered; the checklist
shows the camera's fresh picture (its sha256 checked) and the failing video-quality rule
naming it; the officer records the problem and issues a notice; the operator sees it, the
cover is removed, the operator answers with a fresh snapshot; the officer sees the answer
with that snapshot's sha256 and accepts; the hub's compliance status is the one it had
before the camera was covered. Then bad input over the real link gets a clear refusal and
changes nothing on either side."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patrol.natsnode import NatsCluster
from tests.e2e.hubtest import assert_no_violations
from tests.notices.mall import audit_actions, notice_rows
from tests.patrol.citytest import OfficerApi
from tests.roundtrip.browser import (
    chromium,
    compliance_shows,
    expect,
    hub_login,
    operator_answers,
    patrol_login,
    reload_until,
    rule_statuses,
)
from tests.roundtrip.world import (
    COVERED,
    COVERED_FAULT,
    OFFICER,
    OFFICER_LOGIN,
    SITE,
    RoundTrip,
    round_trip,
)
from tests.support.wait import wait_until
from tests.web.test_browser import CHROMIUM, shot
from tests.web.webtest import Browserless

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
    pytest.mark.timeout(600),
]

FINDING = "北门入口摄像机画面被遮挡"
ANSWER = "已移除北门摄像机前的遮挡物，重新抓拍"


async def _sha_of(page: Any, url: str) -> str:
    """The sha256 of what ``url`` gives in this page's session."""
    resp = await page.request.get(url)
    assert resp.status == 200, url
    return hashlib.sha256(await resp.body()).hexdigest()


async def _evidence_kept(rt: RoundTrip, notice_id: str, sha256: str) -> dict[str, Any]:
    """The patrol service's record of an answer's picture, once it fetched it or gave up."""
    got: dict[str, Any] = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        api = OfficerApi(http, rt.patrol_url)
        await api.login(OFFICER_LOGIN, rt.officer_password)

        async def settled() -> bool:
            status, body = await api.call("GET", f"/api/v1/notices/{notice_id}")
            assert status == 200, body
            for p in body["notice"]["evidence"]:
                if p["sha256"] == sha256:
                    got.update(p)
            return bool(got.get("has_picture") or got.get("picture_error"))

        await wait_until(settled, within=90, interval=0.5, what="the answer's picture")
    return got


async def _bad_input_changes_nothing(rt: RoundTrip, notice_id: str, inspection_id: str) -> None:
    """Over the real link, after the notice was closed: an unknown notice, decisions on the
    closed one, a notice for another site, the mall answering the closed one."""
    row_before, steps_before = await notice_rows(rt.hub, notice_id)
    hub_audit = await audit_actions(rt.hub)
    statuses = await rt.statuses()
    retained = set(rt.police.view(SITE).notices)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        api = OfficerApi(http, rt.patrol_url)
        await api.login(OFFICER_LOGIN, rt.officer_password)
        status, before = await api.call("GET", f"/api/v1/notices/{notice_id}")
        assert status == 200, before
        status, listed = await api.call("GET", "/api/v1/notices")
        assert status == 200, listed

        async def refused(path: str, body: dict[str, Any], code: int) -> None:
            status, got = await api.call("POST", path, body)
            assert status == code, (path, status, got)
            assert got["message"] and got["message_zh"], got

        await refused("/api/v1/notices/ZG-NOPE/accept", {}, 404)
        await refused("/api/v1/notices/ZG-NOPE/reject", {"reason": "看不清"}, 404)
        await refused(f"/api/v1/notices/{notice_id}/accept", {"note": "再次销号"}, 409)
        await refused(f"/api/v1/notices/{notice_id}/reject", {"reason": "重新整改"}, 409)
        await refused(
            "/api/v1/notices",
            {
                "inspection_id": inspection_id,
                "item_id": "camera:cam-gate-south",
                "finding": "南门摄像机",
                "deadline": "2030-01-01T18:00:00+08:00",
                "site_id": "other-mall",
            },
            400,
        )
        status, after = await api.call("GET", f"/api/v1/notices/{notice_id}")
        assert status == 200 and after == before
        status, listed_after = await api.call("GET", "/api/v1/notices")
        assert status == 200 and listed_after == listed
    async with Browserless(rt.hub.web.url) as b:
        assert (await b.login("operator")).status == 200
        late = await b.session.post(
            f"/api/v1/notices/{notice_id}/answer",
            json={"note": "再次回复", "cameras": [COVERED]},
            headers=b.headers(),
        )
        assert late.status == 409 and "closed" in (await late.json())["message"]
    row_after, steps_after = await notice_rows(rt.hub, notice_id)
    assert (row_after.state, row_after.version) == (row_before.state, row_before.version)
    assert len(steps_after) == len(steps_before)
    assert await audit_actions(rt.hub) == hub_audit
    assert await rt.statuses() == statuses
    assert set(rt.police.view(SITE).notices) == retained


async def test_officer_and_operator_round_trip_over_nats(
    nats_node: NatsCluster, tmp_path: Path
) -> None:
    async with (
        round_trip(nats_node, tmp_path, inspections={"unit": OFFICER["unit"]}) as rt,
        chromium() as browser,
    ):
        operator = await browser.page(rt.hub.web.url)
        officer = await browser.page(rt.patrol_url)
        await hub_login(operator)
        await compliance_shows(operator, "POL-NOTICE", "pass")
        before = await rule_statuses(operator)
        overall_before = await operator.locator("#overall").inner_text()
        await patrol_login(officer, OFFICER_LOGIN, rt.officer_password)
        await expect(officer.locator("#who")).to_contain_text(OFFICER["name"])

        # The north gate's camera is covered; the hub sees it at its next look.
        assert await rt.camera_faults(COVERED, set_=[COVERED_FAULT]) == [COVERED_FAULT]
        assert await rt.look_at(COVERED) == "degraded"
        await compliance_shows(operator, "VID-QUALITY", "fail")

        # The officer inspects the mall from the station.
        await officer.goto(f"/inspections?site_id={SITE}")
        await expect(officer.locator("#site")).to_have_value(SITE)
        await officer.click("#start-inspection")
        await expect(officer).to_have_url(re.compile(r"/inspections/[^/?]+$"))
        await expect(officer.locator("#inspection-state")).to_have_text(
            "待记录结论", timeout=90_000
        )
        inspection_id = await officer.locator("#inspection").get_attribute("data-inspection")
        assert inspection_id
        camera = officer.locator(f'#items tr[data-item="camera:{COVERED}"]')
        await expect(camera.locator("img.thumb")).to_be_visible(timeout=60_000)
        seen_sha = (await camera.locator("code.sha").inner_text()).strip()
        picture = await camera.locator("img.thumb").get_attribute("src")
        assert await _sha_of(officer, picture) == seen_sha
        quality = officer.locator('#items tr[data-item="rule:VID-QUALITY"]')
        await expect(quality.locator(".status")).to_have_attribute("data-status", "fail")
        await expect(quality.locator(".status")).to_have_text("不通过")
        await expect(quality).to_contain_text(COVERED)
        await shot(officer, "roundtrip-patrol-checklist")

        # A problem, then a notice from it.
        await camera.locator("input.note").fill(FINDING)
        await camera.locator("button.problem").click()
        await expect(camera).to_have_attribute("data-finding", "problem")
        await expect(camera.locator("input.notice-text")).to_have_value(FINDING)
        await camera.locator("button.issue-notice").click()
        link = camera.locator("a.notice-link")
        await expect(link).to_be_visible()
        notice_id = (await link.inner_text()).split(" · ")[0].strip()
        await officer.locator("#rest-pass").check()
        await officer.click("#complete")
        await expect(officer.locator("#inspection-state")).to_have_text("已完成")
        await officer.goto(f"/inspections/{inspection_id}/record")
        record = officer.locator(f'#record-items tr[data-item="camera:{COVERED}"]')
        await expect(record).to_contain_text(seen_sha)
        await expect(record).to_contain_text("存在问题")
        await shot(officer, "roundtrip-patrol-record")

        # The operator sees the notice on the console, its page and the compliance page.
        banner = operator.locator("#notice-banner")
        await reload_until(operator, "/console", banner, "1 份整改通知未销号")
        await operator.goto(f"/notices/{notice_id}")
        await expect(operator.locator("#notice-state")).to_have_text("待整改")
        await expect(operator.locator("#finding")).to_have_text(FINDING)
        await expect(operator.locator('li.step[data-action="issued"]')).to_contain_text(
            OFFICER["name"]
        )
        await compliance_shows(operator, "POL-NOTICE", "fail")
        await expect(
            operator.locator(f'#open-notices li[data-notice="{notice_id}"]')
        ).to_be_visible()

        # The officer's notice page mirrors the hub (it reloads itself when the notice
        # changes): open.
        await officer.goto(f"/notices/{notice_id}")
        state = officer.locator("#notice-state")
        await expect(state).to_have_text("待整改", timeout=60_000)

        # The cover is removed; the hub sees a clear picture; the operator answers.
        assert await rt.camera_faults(COVERED, clear=[COVERED_FAULT]) == []
        assert await rt.look_at(COVERED) == "online"
        answer_sha = await operator_answers(operator, notice_id, COVERED, ANSWER)
        assert answer_sha != seen_sha  # a fresh picture, not the covered one

        # The officer's page shows the answer with the snapshot's sha256, and accepts.
        await expect(state).to_have_text("已回复，待民警确认", timeout=60_000)
        answered = officer.locator('#steps tr.step[data-action="answered"]')
        await expect(answered).to_contain_text(ANSWER)
        await expect(answered.locator("code.sha")).to_have_text(answer_sha)
        # The patrol service fetches the picture from the hub and keeps it as its sha256 says.
        kept = await _evidence_kept(rt, notice_id, answer_sha)
        assert kept["has_picture"], f"the patrol service did not keep it: {kept}"
        thumb = answered.locator("img.thumb")
        await expect(thumb).to_be_visible(timeout=30_000)
        assert await _sha_of(officer, await thumb.get_attribute("src")) == answer_sha
        await shot(officer, "roundtrip-patrol-notice-answered")
        await officer.fill("#accept-note", "已核实，画面正常")
        await officer.click("#accept")
        await expect(state).to_have_text("已销号", timeout=60_000)
        await expect(officer.locator('#steps tr.step[data-action="accepted"]')).to_contain_text(
            OFFICER["name"]
        )

        # The hub: closed, no banner, compliance as before the camera was covered.
        await operator.goto(f"/notices/{notice_id}")
        await expect(operator.locator("#notice-state")).to_have_text("已销号")
        await operator.goto("/console")
        await expect(operator.locator("#notice-banner")).to_have_count(0)
        await compliance_shows(operator, "POL-NOTICE", "pass")
        await compliance_shows(operator, "VID-QUALITY", before["VID-QUALITY"])
        assert await rule_statuses(operator) == before
        assert await operator.locator("#overall").inner_text() == overall_before
        assert await rt.statuses() == before
        assert await audit_actions(rt.hub) == [
            "notice.issued",
            "notice.answered",
            "notice.accepted",
        ]
        await shot(operator, "roundtrip-hub-compliance-after")

        await _bad_input_changes_nothing(rt, notice_id, inspection_id)
        assert_no_violations(rt.police)
        assert browser.errors == []
