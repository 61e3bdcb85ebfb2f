"""Headless Chromium for the round trip: one browser, a context per person (the mall's
operator on the hub console, the officer on the patrol web), page errors collected."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.web.test_browser import ARGS, CHROMIUM
from tests.web.webtest import PASSWORD

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect


@dataclass
class Browser:
    browser: Any
    errors: list[str] = field(default_factory=list)

    async def page(self, base_url: str) -> Any:
        """A page in a context of its own (its own cookies), zh-CN like the users."""
        ctx = await self.browser.new_context(
            base_url=base_url, viewport={"width": 1400, "height": 900}, locale="zh-CN"
        )
        page = await ctx.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{base_url}: {exc}"))
        return page


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with playwright_api.async_playwright() as p:
        b = Browser(await p.chromium.launch(executable_path=CHROMIUM, args=ARGS))
        try:
            yield b
        finally:
            await b.browser.close()


async def hub_login(page: Any, name: str = "operator") -> None:
    """Log in to the hub console as the test user ``name`` (tests/web/webtest.py)."""
    await page.goto("/login")
    await page.fill('input[name="name"]', name)
    await page.fill('input[name="password"]', PASSWORD)
    await page.click('button[type="submit"]')
    await expect(page).to_have_url(re.compile(r"/console$"))


async def rule_statuses(page: Any) -> dict[str, str]:
    """Rule → status as the compliance page shows it (the page must be open)."""
    rows = await page.eval_on_selector_all(
        "tr.rule", "rows => rows.map(r => [r.dataset.rule, r.dataset.status])"
    )
    return {str(rule): str(status) for rule, status in rows}


async def compliance_shows(page: Any, rule: str, status: str) -> None:
    """Open /compliance until ``rule`` shows ``status`` (the page is not live; the hub
    re-evaluates on a change, a moment after it)."""
    row = page.locator(f'tr.rule[data-rule="{rule}"]')
    await reload_until(page, "/compliance", row, status, attribute="data-status")


async def reload_until(
    page: Any, path: str, locator: Any, text: str, *, attribute: str = "", tries: int = 30
) -> None:
    """Open ``path`` until ``locator`` contains ``text`` (or has ``attribute`` = ``text``),
    about a second a try. For what arrives from the other side: a page that refreshes
    itself could do it too, but the test does not depend on when it does."""
    for _ in range(tries):
        await page.goto(path)
        try:
            if attribute:
                await expect(locator).to_have_attribute(attribute, text, timeout=1_000)
            else:
                await expect(locator).to_contain_text(text, timeout=1_000)
            return
        except AssertionError:
            continue
    if attribute:
        await expect(locator).to_have_attribute(attribute, text, timeout=1_000)
    else:
        await expect(locator).to_contain_text(text, timeout=1_000)


async def patrol_login(page: Any, name: str, password: str) -> None:
    """Log in to the patrol web app as an officer."""
    await page.goto("/login")
    await page.fill("#name", name)
    await page.fill("#password", password)
    await page.click("#login")
    await expect(page.locator("#who")).to_be_visible()


async def operator_answers(page: Any, notice_id: str, camera_id: str, note: str) -> str:
    """The operator answers the notice in the hub console's form, with the item's camera
    ticked; returns the sha256 of the fresh snapshot the page shows afterwards."""
    await page.goto(f"/notices/{notice_id}")
    box = page.locator(f'#answer-form input[name="cameras"][value="{camera_id}"]')
    await expect(box).to_be_checked()
    await page.fill('#answer-form textarea[name="note"]', note)
    await page.click("#answer-submit")
    await expect(page.locator("#notice-state")).to_have_text("已回复，待民警确认")
    answered = page.locator('li.step[data-action="answered"]')
    await expect(answered).to_contain_text(note)
    await expect(page.locator("#answer-form")).to_have_count(0)
    await expect(answered.locator("img.thumb")).to_have_count(1)
    return str(await answered.locator("li.ev-snap code").inner_text()).strip()
