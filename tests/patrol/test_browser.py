"""The city overview in Debian's headless Chromium: an alarm pressed in a REAL hub (over
MQTT to nats-server, through JetStream to the patrol workers) appears in the live queue,
and the officer's acknowledgement reaches the hub through the ``ack`` command."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from hub.app import Hub
from patrol.auth import add_user
from patrol.natsnode import NatsCluster
from patrol.service import PatrolService
from tests.e2e.hubtest import event
from tests.patrol.citytest import hub_event_state, hub_receipted, patrol_config
from tests.support.sites import make_site
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


async def test_alarm_from_a_real_hub_shows_live_and_the_ack_reaches_the_hub(
    nats_node: NatsCluster, tmp_path: Path
) -> None:
    cfg = make_site(
        broker_url=nats_node.mqtt_urls[0],
        data_dir=tmp_path / "hub",
        protocol="3.1.1",
        receipts="required",
    )
    pc = patrol_config(
        nats_node,
        tmp_path,
        malls=[
            {"site_id": cfg.site.id, "name": "金水测试商场", "district": "金水区"},
            {"site_id": "zz-never-seen", "name": "二七测试商场", "district": "二七区"},
        ],
    )
    password = secrets.token_urlsafe(12)
    async with PatrolService(pc) as svc, Hub(cfg) as hub:
        assert svc.store is not None and svc.web is not None
        await add_user(svc.store.engine, "li", "officer", password, "李警官")
        await wait_until(lambda: hub.police.state.connected, within=30, what="link up")
        async with playwright_api.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            errors: list[str] = []
            try:
                ctx = await browser.new_context(base_url=svc.web.url, locale="zh-CN")
                page: Any = await ctx.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto("/")
                await expect(page).to_have_url(f"{svc.web.url}/login")
                await page.fill("#name", "li")
                await page.fill("#password", "wrong-password-1")
                await page.click("#login")
                await expect(page.locator("#login-error")).to_have_text("用户名或密码错误")
                await page.fill("#password", password)
                await page.click("#login")
                await expect(page.locator("#who")).to_contain_text("李警官")
                malls = page.locator("#malls tbody tr")
                await expect(malls).to_have_count(2)
                row = page.locator(f'#malls tr[data-site="{cfg.site.id}"]')
                await expect(row.locator(".conn")).to_have_text("在线")
                unknown = page.locator('#malls tr[data-site="zz-never-seen"]')
                await expect(unknown.locator(".conn")).to_have_text("未知")
                # Filter by district, then sort by name descending.
                await page.select_option("#district", "金水区")
                await expect(malls).to_have_count(1)
                await page.select_option("#district", "")
                await page.click('#malls th[data-sort="name"]')
                await page.click('#malls th[data-sort="name"]')
                await expect(malls.first).to_have_attribute("data-site", cfg.site.id)
                await expect(page.locator("#no-alarms")).to_be_visible()

                # The live queue is open: press an alarm in the real hub.
                stored = await hub.ingest.ingest(event("alarm.panic"))
                alarm = page.locator(f'#alarms tr[data-event="{stored.event_id}"]')
                await expect(alarm).to_be_visible(timeout=20_000)
                await expect(alarm).to_contain_text("正门一键报警")
                await expect(alarm.locator(".state")).to_have_text("待处理")
                await expect(row.locator(".open")).to_contain_text("1 (P1×1)", timeout=10_000)
                await wait_until(
                    lambda: hub_receipted(hub, stored.event_id), within=20, what="receipt"
                )
                SHOTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(SHOTS / "patrol-overview.png"), full_page=True)

                await alarm.locator("button.ack").click()
                await wait_until(
                    lambda: _hub_state(hub, stored.event_id, "acknowledged"),
                    within=20,
                    what="the hub has the officer's acknowledgement",
                )
                assert (await hub_event_state(hub, stored.event_id))[1:] == ("李警官", "police")
                # The hub's update comes back: the alarm leaves the open queue.
                await expect(alarm).to_have_count(0, timeout=20_000)
                await expect(page.locator("#no-alarms")).to_be_visible()

                # English is available.
                await page.goto("/?lang=en")
                await expect(page.locator("h1")).to_have_text("City overview")
            finally:
                await browser.close()
            assert errors == [], errors


async def _hub_state(hub: Hub, event_id: str, state: str) -> bool:
    return (await hub_event_state(hub, event_id))[0] == state
