"""The console's notice pages render every state of a notice, including the fields a notice
may lack (no inspection item, an officer without a unit, steps without a note or evidence)."""

from __future__ import annotations

from pathlib import Path

from hub.broker import LocalMosquitto
from tests.e2e.hubtest import police_and_hub
from tests.notices.mall import SITE, issue
from tests.support.sites import make_site
from tests.web.webtest import Browserless, add_users


async def test_notice_pages_render_open_and_closed_notices_with_optional_fields_absent(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        await add_users(hub)
        body = issue("ZG-P-1", officer={"name": "王警官"})
        del body["item"]
        resp = await police.command(SITE, "notice", body, within=30)
        assert resp["ok"] is True, resp
        async with Browserless(hub.web.url) as b:
            assert (await b.login("viewer")).status == 200
            for path in ("/notices", "/notices/ZG-P-1"):
                r = await b.session.get(path)
                text = await r.text()
                assert r.status == 200, text[:500]
                assert "正门摄像机画面被遮挡" in text and "王警官" in text and "待整改" in text
            accept = {"action": "accept", "notice_id": "ZG-P-1", "by": "王警官"}
            resp = await police.command(SITE, "notice", accept, within=30)
            assert resp["ok"] is True and resp["result"]["state"] == "closed", resp
            r = await b.session.get("/notices/ZG-P-1")
            text = await r.text()
            assert r.status == 200, text[:500]
            assert "已销号" in text and "民警确认销号" in text
