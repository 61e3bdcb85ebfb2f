"""A hub that cannot start (its console's port is taken) while its cameras are connecting
gives back everything it had opened: no HTTP session is left for the garbage collector to
complain about ("Unclosed client session" on the terminal)."""

from __future__ import annotations

import asyncio
import secrets
import socket
from pathlib import Path
from typing import Any

import pytest

from hub.app import Hub
from hub.broker import LocalMosquitto
from simulators.camera import CameraFarm
from tests.health.mall import USER, camera_entry
from tests.support.sites import make_site


async def test_a_hub_that_fails_to_start_closes_the_sessions_of_cameras_still_connecting(
    broker: LocalMosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onvif.client import ONVIFService

    made: list[Any] = []
    set_up = ONVIFService.setup

    async def slow_set_up(service: Any) -> None:
        # Parsing a WSDL the first time takes about this long on a small, busy machine.
        made.append(service)
        await asyncio.sleep(1.0)
        await set_up(service)

    monkeypatch.setattr(ONVIFService, "setup", slow_set_up)
    password = secrets.token_urlsafe(12)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        async with CameraFarm.uniform(2, username=USER, password=password) as farm:
            cameras = [camera_entry(f"cam-{i}", farm[i], password, events=True) for i in (0, 1)]
            cfg = make_site(
                broker_url=broker.url,
                data_dir=tmp_path,
                cameras=cameras,
                http_port=taken.getsockname()[1],
            )
            with pytest.raises(OSError, match="in use"):
                async with Hub(cfg):
                    pass
    assert made, "no camera service was being set up"
    assert [s.binding_key for s in made if not s._session.closed] == []
