"""The pages in Debian's headless Chromium against a real hub with a simulated mall
(panel, camera, police platform). Screenshots of every page go to test-artifacts/browser/."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hub.broker import LocalMosquitto
from simulators.camera import CameraFarm
from simulators.panel import PanelSimulator
from tests.health.mall import USER, camera_entry, health
from tests.support.sites import make_site
from tests.web.webtest import PASSWORD, WebHub, web_hub

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CAM = "cam-gate-1"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


@pytest.fixture
async def mall(broker: LocalMosquitto, tmp_path: Path) -> AsyncIterator[tuple[WebHub, Any]]:
    password = secrets.token_urlsafe(12)
    async with CameraFarm.uniform(1, username=USER, password=password) as farm:
        cfg = make_site(
            broker_url=broker.url,
            data_dir=tmp_path,
            cameras=[camera_entry(CAM, farm[0], password)],
            health=health(),
        )
        async with web_hub(cfg, broker.url) as w:
            yield w, farm


@pytest.fixture
async def page(mall: tuple[WebHub, Any]) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(
            base_url=mall[0].url, viewport={"width": 1600, "height": 900}, locale="zh-CN"
        )
        pg = await context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield pg
        finally:
            await browser.close()
        assert errors == [], errors


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def login(page: Any, name: str) -> None:
    await page.goto("/console")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.fill('input[name="name"]', name)
    await page.fill('input[name="password"]', PASSWORD)
    await page.click('button[type="submit"]')
    await expect(page.locator("#live")).to_have_class("live on", timeout=10_000)


async def until_visible(page: Any, selector: str, reload: Callable[[], Awaitable[Any]]) -> None:
    """For pages without live updates: reload until the element shows (bounded)."""
    for _ in range(30):
        try:
            await expect(page.locator(selector)).to_be_visible(timeout=1_000)
            return
        except AssertionError:
            await reload()
    await expect(page.locator(selector)).to_be_visible(timeout=1_000)


async def test_console_device_board_compliance_and_every_page(
    mall: tuple[WebHub, Any], page: Any
) -> None:
    wh, farm = mall
    view = wh.police.view(wh.site)

    await page.goto("/login")
    await shot(page, "01-login")
    await login(page, "operator")
    await expect(page.locator("#empty")).to_be_visible()
    await shot(page, "02-console-empty")

    # A button press on the simulated panel appears without a reload.
    async with PanelSimulator("127.0.0.1", wh.hub.sia.tcp_port, "1234") as panel:
        panel.press(15)
        await panel.wait_acked(1, within=10)
    await wh.police.wait_for(lambda: len(view.events) == 1)
    event_id = view.event_order[0]
    alarm = page.locator(f'.alarm[data-event-id="{event_id}"]')
    await expect(alarm).to_be_visible(timeout=5_000)
    await expect(alarm).to_have_class(re.compile(r"\bp1\b.*\bes-new\b"))
    await expect(alarm.locator(".a-device")).to_have_text("正门一键报警")
    await expect(alarm.locator(".a-camnames")).to_contain_text("camera cam-gate-1")
    await shot(page, "03-console-alarm")

    # Acknowledge it with a note: the police simulator receives the update.
    await alarm.locator(".a-note").fill("值班员已出警")
    await alarm.locator('[data-act="acknowledge"]').click()
    await expect(alarm.locator(".estate")).to_have_text("已确认")

    def acked() -> bool:
        return any(
            u["event_id"] == event_id and (u.get("state") or {}).get("state") == "acknowledged"
            for u in view.updates
        )

    await wh.police.wait_for(acked)
    update = next(u for u in view.updates if u["event_id"] == event_id and "state" in u)
    assert update["state"]["by"] == "operator" and update["state"]["note"] == "值班员已出警"
    await shot(page, "04-console-acknowledged")

    # The camera's tile goes offline on the device board when the camera is switched off.
    await page.goto("/devices")
    tile = page.locator(f'.tile[data-device-id="{CAM}"]')
    await expect(tile).to_have_attribute("data-state", "online", timeout=20_000)
    await shot(page, "05-devices-online")
    farm[0].set_faults(["offline"])
    await expect(tile).to_have_attribute("data-state", "offline", timeout=20_000)
    await expect(tile.locator(".dstate")).to_have_text("离线")
    await page.check("#not-online")
    await expect(tile).to_be_visible()
    await shot(page, "06-devices-camera-offline")

    # The compliance page shows the failing rule.
    await page.goto("/compliance")
    await until_visible(page, 'tr[data-rule="VID-ONLINE"][data-status="fail"]', page.reload)
    await expect(page.locator('tr[data-rule="VID-ONLINE"]')).to_contain_text(CAM)
    await shot(page, "07-compliance")

    # Events: history with search, and the event's story.
    await page.goto("/events")
    await page.fill('input[name="q"]', "正门")
    await page.click('form.filters button[type="submit"]')
    await expect(page.locator("#total")).to_have_text("1")
    await shot(page, "08-events")
    await page.click(f'a[href="/events/{event_id}"]')
    await expect(page.locator(".timeline")).to_contain_text("确认")
    await page.fill('form.api-form input[name="text"]', "已通知公安")
    await page.click('form.api-form button[type="submit"]')
    await expect(page.locator(".notes")).to_contain_text("已通知公安")
    await shot(page, "09-event-story")

    # Records: the hazard register with an overdue item highlighted.
    await page.goto("/records")
    form = page.locator("#hazards form.api-form")
    await form.locator('input[name="title"]').fill("消防通道堵塞")
    await form.locator('input[name="owner"]').fill("张三")
    await form.locator('input[name="due"]').fill("2020-01-01")
    await form.locator('button[type="submit"]').click()
    # A deadline before the day it was found is refused with a message, not stored.
    await expect(page.locator("#toast")).to_contain_text("deadline")
    await shot(page, "10-records")

    # The English switch.
    await page.click("a.lang")
    await expect(page.locator("nav")).to_contain_text("Alarm console")
    await page.goto("/console")
    await shot(page, "11-console-en")


async def test_viewer_sees_no_action_buttons_and_phone_layout(
    mall: tuple[WebHub, Any], page: Any
) -> None:
    await page.set_viewport_size({"width": 390, "height": 844})
    await login(page, "viewer")
    await page.goto("/devices")
    await expect(page.locator(f'.tile[data-device-id="{CAM}"]')).to_be_visible()
    assert await page.locator('[data-act="probe"]').count() == 0
    await shot(page, "12-devices-phone-viewer")
