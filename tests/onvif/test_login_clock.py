"""A camera that wants a login even to tell its time, and refuses it: its clock is blamed when
the HTTP ``Date`` of its refusal is far off, the password when it is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from adapters.onvif.driver import OnvifCamera


class RefusingCamera:
    """Every ONVIF request is refused with 401; the answer's Date is the camera's clock."""

    def __init__(self, clock_offset_s: float) -> None:
        self.offset = timedelta(seconds=clock_offset_s)
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _refuse(self, _request: web.Request) -> web.Response:
        now = datetime.now(UTC) + self.offset
        return web.Response(
            status=401,
            headers={
                "Date": format_datetime(now, usegmt=True),
                "WWW-Authenticate": 'Digest realm="cam", nonce="abc", qop="auth"',
            },
        )

    async def __aenter__(self) -> RefusingCamera:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._refuse)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def camera(request: pytest.FixtureRequest) -> AsyncIterator[RefusingCamera]:
    async with RefusingCamera(request.param) as cam:
        yield cam


@pytest.mark.parametrize("camera", [2 * 3600.0], indirect=True)
async def test_a_login_refused_by_a_camera_two_hours_off_blames_the_clock(
    camera: RefusingCamera,
) -> None:
    async with OnvifCamera("cam-1", "127.0.0.1", camera.port, "admin", "x", lazy=True) as cam:
        probe = await cam.probe()
    assert probe.error_type == "ClockRefused"
    assert probe.clock_offset_s == pytest.approx(7200, abs=5)
    assert probe.error is not None and "clock" in probe.error


@pytest.mark.parametrize("camera", [0.0], indirect=True)
async def test_a_login_refused_with_the_clock_right_blames_the_credentials(
    camera: RefusingCamera,
) -> None:
    async with OnvifCamera("cam-1", "127.0.0.1", camera.port, "admin", "x", lazy=True) as cam:
        probe = await cam.probe()
    assert probe.error_type == "AuthFailed"
    assert probe.error is not None and "clock" not in probe.error
