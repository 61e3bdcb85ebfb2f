"""The inspection pages in Debian's headless Chromium against a REAL hub with simulated
cameras over nats-server: the officer starts an inspection from the overview, records a
problem on the gate camera, issues a notice, sends the mall's first answer back, accepts the
second, completes the inspection and opens the printable record."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.app import Hub
from patrol.auth import add_user
from patrol.natsnode import NatsCluster
from patrol.service import PatrolService
from simulators.camera import CameraFarm
from tests.health.mall import USER
from tests.notices.mall import cameras_warm, notice_rows
from tests.patrol.citytest import patrol_config
from tests.patrol.test_inspections import SITE, console, site
from tests.support.wait import wait_until

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


@pytest.fixture
async def farm() -> AsyncIterator[tuple[CameraFarm, str]]:
    password = secrets.token_urlsafe(12)
    async with CameraFarm.uniform(2, username=USER, password=password) as f:
        yield f, password


async def test_officer_inspects_a_real_hub_and_closes_a_notice_in_the_browser(
    nats_node: NatsCluster, farm: tuple[CameraFarm, str], tmp_path: Path
) -> None:
    cfg = site(farm[0], farm[1], nats_node, tmp_path)
    pc = patrol_config(
        nats_node,
        tmp_path,
        malls=[
            {
                "site_id": SITE,
                "name": "金水测试商场",
                "district": "金水区",
                "console_url": console(cfg),
            }
        ],
    )
    password = secrets.token_urlsafe(12)
    async with PatrolService(pc) as svc, Hub(cfg) as hub:
        assert svc.store is not None and svc.web is not None
        await add_user(svc.store.engine, "li", "officer", password, "李警官")
        await wait_until(lambda: hub.police.state.connected, within=30, what="link up")
        await cameras_warm(hub)
        async with playwright_api.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            errors: list[str] = []
            try:
                ctx = await browser.new_context(base_url=svc.web.url, locale="zh-CN")
                page: Any = await ctx.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto("/login")
                await page.fill("#name", "li")
                await page.fill("#password", password)
                await page.click("#login")
                row = page.locator(f'#malls tr[data-site="{SITE}"]')
                await expect(row.locator(".conn")).to_have_text("在线", timeout=20_000)
                await row.locator("a.inspect").click()
                await expect(page.locator("#site")).to_have_value(SITE)
                await page.click("#start-inspection")
                state = page.locator("#inspection-state")
                await expect(state).to_have_text("待记录结论", timeout=60_000)
                gate = page.locator('#items tr[data-item="camera:cam-gate-1"]')
                await expect(gate.locator(".status")).to_have_text("已抓拍")
                place = page.locator('#items tr[data-item="role:perimeter"]')
                await expect(place).to_contain_text("周界")
                await expect(place.locator(".status")).to_have_text("无摄像机")
                await expect(gate.locator("img.thumb")).to_be_visible(timeout=30_000)
                await expect(gate.locator("code.sha")).to_have_text(
                    await _sha(svc, "camera:cam-gate-1")
                )
                # A problem without a note is refused in Chinese; with one it is recorded.
                await gate.locator("button.problem").click()
                await expect(page.locator("#error")).to_contain_text("须填写问题说明")
                await gate.locator("input.note").fill("正门摄像机画面被遮挡")
                await gate.locator("button.problem").click()
                await expect(gate.locator(".finding")).to_contain_text("存在问题")
                await gate.locator("input.notice-text").fill("正门摄像机画面被遮挡，限期整改")
                await gate.locator("button.issue-notice").click()
                link = gate.locator("a.notice-link")
                await expect(link).to_be_visible()
                SHOTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(SHOTS / "patrol-inspection.png"), full_page=True)
                notice_id = (await link.text_content()).split(" ")[0]
                await link.click()
                nstate = page.locator("#notice-state")
                await expect(nstate).to_have_text("待整改", timeout=30_000)
                row_at_hub, _ = await notice_rows(hub, notice_id)
                assert row_at_hub.state == "open"

                # The mall answers; the page shows it without a manual reload.
                await hub.notices.answer(
                    notice_id,
                    by="值班员",
                    actor="console:duty",
                    note="已清理",
                    cameras=["cam-gate-1"],
                )
                await expect(nstate).to_have_text("已回复，待民警确认", timeout=30_000)
                answered = page.locator('#steps tr[data-action="answered"]')
                await expect(answered).to_contain_text("已清理")
                # The mall's fresh picture shows once fetched from the hub.
                await expect(answered.locator("img.thumb")).to_be_visible(timeout=30_000)
                await page.fill("#reject-reason", "画面仍被遮挡")
                await page.click("#reject")
                await expect(nstate).to_have_text("民警退回，需重新整改", timeout=30_000)
                await hub.notices.answer(
                    notice_id,
                    by="值班员",
                    actor="console:duty",
                    note="已移除遮挡物",
                    cameras=["cam-gate-1"],
                )
                await expect(nstate).to_have_text("已回复，待民警确认", timeout=30_000)
                await page.fill("#accept-note", "已核实")
                await page.click("#accept")
                await expect(nstate).to_have_text("已销号", timeout=30_000)
                await expect(page.locator("#accept")).to_have_count(0)
                row_at_hub, _ = await notice_rows(hub, notice_id)
                assert row_at_hub.state == "closed"

                # Complete the inspection and print the record.
                await page.goto("/inspections")
                await page.locator("#inspections a").first.click()
                await page.check("#rest-pass")
                await page.click("#complete")
                await expect(state).to_have_text("已完成")
                await page.click("#record")
                await expect(page.locator("h1")).to_have_text("商场安全网上巡查记录")
                await expect(page.locator("main.record")).to_contain_text("李警官")
                await page.screenshot(path=str(SHOTS / "patrol-record.png"), full_page=True)
                await page.goto(page.url + "?lang=en")
                await expect(page.locator("h1")).to_have_text(
                    "Mall security online inspection record"
                )
            finally:
                await browser.close()
            assert errors == [], errors


async def _sha(svc: PatrolService, item_id: str) -> str:
    from sqlalchemy import select

    from patrol.models import InspectionItemRow

    assert svc.store is not None
    async with svc.store.engine.connect() as conn:
        return str(
            (
                await conn.execute(
                    select(InspectionItemRow.sha256).where(InspectionItemRow.item_id == item_id)
                )
            ).scalar_one()
        )
