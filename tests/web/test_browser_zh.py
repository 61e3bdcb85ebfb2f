"""Every page in zh-CN as the duty operator's Chromium shows it — server-rendered and after
its scripts have filled it from the API and the live stream — in a browser whose computer
is set to another time zone than the mall's:

* no enum value the hub speaks in (states, categories, verdicts, device types, roles,
  linkage actions, timeline steps…) appears untranslated;
* every time is on the site's clock, and the page says which once;
* a restore is not shown as a new alarm; no label is left dangling or empty.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.web.auth import CreateUser, hash_password
from simulators.panel import PanelSimulator
from tests.notices.mall import issue
from tests.web.test_browser import ARGS, CHROMIUM, shot
from tests.web.webtest import FAST, PASSWORD, WebHub

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

#: Values the hub's pages and API speak in; none may show as such in the Chinese console.
ENUMS = {
    # event states, categories, dispositions
    "new", "acknowledged", "closed", "alarm", "fault", "info",
    "handled", "false_alarm", "drill", "other",
    # compliance verdicts
    "pass", "fail", "unknown", "attested", "compliant", "non_compliant", "non-compliant",
    # device states and types
    "online", "degraded", "offline",
    "alarm_panel", "alarm_button", "detector", "fire_detector", "camera", "broadcast",
    "receiver",
    # roles
    "viewer", "operator", "technician", "admin",
    # linkage actions and outcomes, timeline steps
    "snapshot", "ptz_preset", "relay_pulse", "relay_on", "renotify", "ok", "failed",
    "stored", "published", "update", "police.receipt", "event.acknowledged",
    "event.closed", "event.note", "event.linkage", "event.escalated", "snapshot.taken",
    # evidence in the printable report: check names and the words of their values
    "state", "availability_24h", "supervision", "hash_chain", "intact", "broken", "lost",
    # rectification notices: states and steps
    "open", "answered", "rejected", "issued", "accepted", "overdue",
    # table headings
    "target", "detail", "seq",
}  # fmt: skip
# Word boundaries are ASCII ones: Chinese letters count as \w in Python, so "降级online"
# would otherwise hide the code behind the Chinese word in front of it.
WORD = re.compile(
    r"(?<![A-Za-z0-9_.:-])("
    + "|".join(re.escape(e) for e in sorted(ENUMS, key=len, reverse=True))
    + r")(?![A-Za-z0-9_.-])"
)
#: Text the check skips: raw messages shown for forensics, ids, the user's own name.
SKIP = "code, .d-id, .rule-id, small"
VISIBLE_TEXT = """(skip) => {
  const clone = document.body.cloneNode(true);
  for (const el of clone.querySelectorAll(skip)) el.remove();
  for (const el of clone.querySelectorAll('[hidden], template, script, style, option')) el.remove();
  return clone.innerText;
}"""
#: The same text, each text node on a line of its own: a detached copy is not laid out, so
#: its innerText runs table cells together and would hide a code written after another word.
TEXT_PIECES = VISIBLE_TEXT.replace(
    "return clone.innerText;",
    """const walker = document.createTreeWalker(clone, NodeFilter.SHOW_TEXT);
  const parts = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.data.trim()) parts.push(node.data.trim());
  }
  return parts.join("\\n");""",
)
BROWSER_TZ = "America/Los_Angeles"  # the mall is in Asia/Shanghai: 15 or 16 hours apart


@pytest.fixture
async def zh_page(wh: WebHub) -> AsyncIterator[Any]:
    await wh.hub.submit(CreateUser("zhangwei", "operator", hash_password(PASSWORD, **FAST), "t"))
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(
            base_url=wh.url,
            viewport={"width": 1400, "height": 900},
            locale="zh-CN",
            timezone_id=BROWSER_TZ,
        )
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield page
        finally:
            await browser.close()
        assert errors == [], errors


def site_time(wh: WebHub, iso: str) -> str:
    t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return t.astimezone(ZoneInfo(wh.hub.config.site.timezone)).strftime("%Y-%m-%d %H:%M:%S")


async def check_page(page: Any, wh: WebHub, name: str) -> str:
    """The page's visible text, after checking it names its clock once and speaks Chinese."""
    await shot(page, f"zh-{name}")
    notes = page.locator("#tz-note")
    await expect(notes).to_have_count(1)
    await expect(notes).to_contain_text(wh.hub.config.site.timezone)
    text: str = await page.evaluate(VISIBLE_TEXT, SKIP)
    pieces: str = await page.evaluate(TEXT_PIECES, SKIP)
    found = [pieces[max(0, m.start() - 30) : m.end() + 10] for m in WORD.finditer(pieces)]
    assert found == [], f"{name}: untranslated {found[:8]}"
    assert not re.search(r"[:：]\s*(\n|$)", text), f"{name}: a label with nothing after it"
    return text


async def test_every_page_in_chinese_on_the_sites_clock(wh: WebHub, zh_page: Any) -> None:
    page = zh_page
    view = wh.police.view(wh.site)

    await page.goto("/login")
    await check_page(page, wh, "login")
    await page.fill('input[name="name"]', "zhangwei")
    await page.fill('input[name="password"]', PASSWORD)
    await page.click('button[type="submit"]')
    await expect(page.locator("#live")).to_have_class("live on", timeout=10_000)
    # The browser's clock helper reads the site's zone, not the computer's.
    assert await page.evaluate("MH.localTime('2026-01-01T00:00:00Z')") == "2026-01-01 08:00:00"

    # An alarm and its restore arrive while the console is open (filled by its script).
    async with PanelSimulator("127.0.0.1", wh.hub.sia.tcp_port, "1234") as panel:
        panel.press(15)
        await panel.wait_acked(1, within=10)
        await wh.police.wait_for(lambda: len(view.events) == 1)
        panel.restore(15)
        await panel.wait_acked(2, within=10)
    await wh.police.wait_for(lambda: len(view.events) == 2)
    alarm_id, restore_id = view.event_order[0], view.event_order[1]
    alarm = page.locator(f'.alarm[data-event-id="{alarm_id}"]')
    await expect(alarm).to_be_visible(timeout=5_000)
    received = view.events[alarm_id]["received_at"]
    await expect(alarm.locator(".a-time")).to_have_text(site_time(wh, received))
    await check_page(page, wh, "console-live")
    # The same alarm rendered by the server reads the same.
    await page.reload()
    await expect(alarm.locator(".a-time")).to_have_text(site_time(wh, received))
    await check_page(page, wh, "console")
    await alarm.locator('[data-act="acknowledge"]').click()
    await expect(alarm.locator(".estate")).to_have_text("已确认")
    await check_page(page, wh, "console-acknowledged")

    async with page.expect_response(lambda r: r.url.endswith("/api/v1/devices")):
        await page.goto("/devices")  # and its script refreshes the board from the API
    await expect(page.locator(".tile").first).to_be_visible()
    text = await check_page(page, wh, "devices")
    assert "一键报警按钮" in text and "摄像机" in text

    await page.goto("/events")
    await check_page(page, wh, "events")
    rows = page.locator("table.events tbody tr")
    await expect(rows).to_have_count(2)
    restore_row = page.locator(f'tr:has(a[href="/events/{restore_id}"])')
    await expect(restore_row.locator(".estate")).not_to_have_text("新报警")

    for event_id in (alarm_id, restore_id):
        await page.goto(f"/events/{event_id}")
        text = await check_page(page, wh, f"event-{event_id[:8]}")
        assert site_time(wh, view.events[event_id]["received_at"]) in text
    await expect(page.locator(".story .estate")).not_to_have_text("新报警")

    await page.goto("/compliance")
    text = await check_page(page, wh, "compliance")
    assert re.search(r"总体: (合规|不合规|未知)", text), text[:300]
    # The printable report it links to (its own page, without the console's frame).
    report = await page.locator('a[target="_blank"]').first.get_attribute("href")
    assert report is not None and "report.html" in report
    await page.goto(report)
    await shot(page, "zh-report")
    text = await page.evaluate(TEXT_PIECES, SKIP)
    found = [text[max(0, m.start() - 30) : m.end() + 10] for m in WORD.finditer(text)]
    assert found == [], f"report: untranslated {found[:8]}"
    assert wh.hub.config.site.timezone in text
    await page.goto("/records")
    await check_page(page, wh, "records")

    # A rectification notice from the police: the list and the notice with its form.
    issued = await wh.hub.notices.cmd_notice(issue("ZG-2026-007"))
    assert issued["state"] == "open", issued
    await page.goto("/notices")
    await expect(page.locator('a[href="/notices/ZG-2026-007"]')).to_be_visible()
    await check_page(page, wh, "notices")
    await page.goto("/notices/ZG-2026-007")
    text = await check_page(page, wh, "notice")
    assert "待整改" in text and "民警下发" in text
