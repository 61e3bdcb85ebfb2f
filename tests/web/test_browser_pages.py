"""Pages as the duty operator's Chromium shows them: the printable compliance report is
styled under the hub's own Content-Security-Policy (no violation reported)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.test_browser import ARGS, CHROMIUM, shot
from tests.web.webtest import PASSWORD, WebHub

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

#: Runs in every page before its own scripts: records what the CSP blocked.
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline'));
});
"""


@pytest.fixture
async def browser_page(wh: WebHub) -> AsyncIterator[tuple[Any, list[str]]]:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(
            base_url=wh.url, viewport={"width": 1280, "height": 900}, locale="zh-CN"
        )
        await context.add_init_script(WATCH_CSP)
        pg = await context.new_page()
        console: list[str] = []
        pg.on("console", lambda m: console.append(m.text))
        pg.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
        try:
            yield pg, console
        finally:
            await browser.close()


async def log_in(page: Any, name: str = "viewer") -> None:
    await page.goto("/login")
    await page.fill('input[name="name"]', name)
    await page.fill('input[name="password"]', PASSWORD)
    await page.click('button[type="submit"]')
    await expect(page).to_have_url(re.compile(r"/console$"))


async def test_printable_report_is_styled_under_the_csp(
    browser_page: tuple[Any, list[str]],
) -> None:
    page, console = browser_page
    await log_in(page)
    for lang in ("zh-CN", "en"):
        resp = await page.goto(f"/api/v1/compliance/report.html?lang={lang}")
        assert resp.status == 200
        csp = resp.headers["content-security-policy"]
        assert "'unsafe-inline'" not in csp and "'nonce-" in csp
        # The stylesheet applied: the heading is centred, the overall verdict coloured.
        h1 = await page.eval_on_selector("h1", "e => getComputedStyle(e).textAlign")
        assert h1 == "center"
        verdict = await page.eval_on_selector(
            ".overall", "e => getComputedStyle(e).backgroundColor"
        )
        assert verdict not in ("rgba(0, 0, 0, 0)", "transparent"), verdict
        width = await page.eval_on_selector(".rule-head td", "e => e.getBoundingClientRect().width")
        table = await page.eval_on_selector(".rule-head", "e => e.getBoundingClientRect().width")
        assert 0.55 < width / table < 0.7  # the title column's 62 %
        assert await page.evaluate("window.__csp") == []
        await shot(page, f"report-{lang}")
    assert not [m for m in console if "Content Security Policy" in m], console
