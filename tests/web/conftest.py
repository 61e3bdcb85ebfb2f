from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.broker import LocalMosquitto
from tests.support.sites import make_site
from tests.web.webtest import WebHub, web_hub


@pytest.fixture
async def wh(broker: LocalMosquitto, tmp_path: Path) -> AsyncIterator[WebHub]:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    async with web_hub(cfg, broker.url) as w:
        yield w
