"""Secrets stay secret, and every authentication failure is one clear, rate-limited fault.

A hub runs with real secrets everywhere they can be configured: an MQTT password on a
Mosquitto that allows no anonymous client (password file made with ``mosquitto_passwd``), an
AES key for a panel, ONVIF camera passwords, web user passwords and API tokens. Every log
record of this process, every MQTT payload the police platform received and every API
response (each GET endpoint, as admin) is scanned for each secret (``secrets`` fixture).

Authentication failures: an unknown SIA account, a wrong ONVIF password and a wrong MQTT
password each give one fault (not one per frame, probe or reconnect), with a reason that says
what is wrong.
"""

from __future__ import annotations

import asyncio
import re
import secrets as pysecrets
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from hub.app import Hub
from hub.broker import LocalMosquitto, free_port
from hub.health.service import HealthService
from hub.store.models import Event
from hub.web.api import ENDPOINTS
from hub.web.auth import CreateToken, CreateUser, hash_password, new_token, token_hash
from simulators.camera import CameraFarm
from simulators.panel import PanelSimulator, build_frame, cid_payload, key_from_text
from simulators.police import PolicePlatform
from tests.health.mall import MANUAL, USER, camera_entry
from tests.reliability.conftest import SecretScan
from tests.support.sites import make_site
from tests.support.wait import wait_until

SITE = "test-mall"
STRANGER = "9999"
WITHIN = 30.0
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
FAST_SCRYPT = {"n": 2**10, "r": 8, "p": 1}  # cheaper hashes for test users


def _secret(scan: SecretScan, prefix: str = "") -> str:
    return scan.secret(prefix + pysecrets.token_urlsafe(18))


class SecureBroker:
    """Mosquitto with a password file and no anonymous access."""

    def __init__(self, workdir: Path, users: dict[str, str]) -> None:
        if not Path(MOSQUITTO_PASSWD).exists():
            pytest.skip("mosquitto_passwd is not installed")
        self.m = LocalMosquitto(workdir)
        self.passwd = workdir / "passwd"
        self.set_users(users)
        conf = self.m.conf.read_text().replace(
            "allow_anonymous true", f"allow_anonymous false\npassword_file {self.passwd}"
        )
        self.m.conf.write_text(conf)

    def set_users(self, users: dict[str, str]) -> None:
        self.passwd.write_text("")
        for name, password in users.items():
            # -b takes the password as an argument: a test secret, never printed.
            subprocess.run(
                [MOSQUITTO_PASSWD, "-b", str(self.passwd), name, password],
                check=True,
                capture_output=True,
            )
        self.passwd.chmod(0o600)

    def reload(self) -> None:
        """SIGHUP: Mosquitto reads its password file again."""
        assert self.m.proc is not None
        self.m.proc.send_signal(signal.SIGHUP)


@asynccontextmanager
async def secure_broker(tmp_path: Path, users: dict[str, str]) -> AsyncIterator[SecureBroker]:
    b = SecureBroker(tmp_path / "mosquitto", users)
    b.m.start()
    try:
        yield b
    finally:
        b.m.stop()


async def _events(hub: Hub, **where: str) -> list[tuple[str | None, str, dict[str, Any]]]:
    """(device_id, kind, detail) of stored events, filtered by column values."""
    stmt = select(Event.device_id, Event.kind, Event.detail).order_by(Event.seq)
    for column, value in where.items():
        stmt = stmt.where(getattr(Event, column) == value)
    async with hub.engine.connect() as c:
        return [(d, k, dict(x or {})) for d, k, x in (await c.execute(stmt)).all()]


def _url(path: str) -> str:
    sample = {
        "device_id": "cam-good",
        "event_id": "01936c2e-0000-7000-8000-000000000000",
        "snapshot_id": "1",
        "name": "admin",
    }
    return re.sub(r"\{(\w+)\}", lambda m: sample.get(m.group(1), "1"), path)


async def _api_texts(base: str, token: str, login: tuple[str, str]) -> list[str]:
    """Every GET endpoint's response as admin, plus a good and a bad login."""
    texts: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base) as s:
        for ep in ENDPOINTS:
            if ep.method != "GET" or ep.path.endswith("/live"):
                continue  # /live is an endless stream of the same events
            async with s.get(_url(ep.path), headers=headers) as r:
                texts.append((await r.read()).decode("utf-8", "replace"))
        for password in (login[1], login[1] + "-wrong"):
            async with s.post(
                "/api/v1/session", json={"name": login[0], "password": password}
            ) as r:
                texts.append((await r.read()).decode("utf-8", "replace"))
                texts.append(repr(dict(r.headers)))
    return texts


def _nak_count(port: int, frames: list[bytes]) -> int:
    """Send frames on one connection; count the NAKs that come back."""
    naks = 0
    with socket.create_connection(("127.0.0.1", port), timeout=WITHIN) as s:
        for frame in frames:
            s.sendall(frame)
            reply = b""
            while not reply.endswith(b"\r"):
                chunk = s.recv(1024)
                assert chunk, "the receiver closed the connection"
                reply += chunk
            naks += b'"NAK"' in reply
    return naks


async def test_no_secret_leaks_and_auth_failures_are_single_clear_faults(
    tmp_path: Path, secrets: SecretScan
) -> None:
    hub_password = _secret(secrets, "mqtt-hub-")
    police_password = _secret(secrets, "mqtt-police-")
    camera_password = _secret(secrets, "onvif-")
    wrong_camera_password = _secret(secrets, "onvif-wrong-")
    panel_key = secrets.secret(pysecrets.token_hex(16).upper())
    web_password = _secret(secrets, "web-")
    users = {"mallhub": hub_password, "police": police_password}
    async with (
        secure_broker(tmp_path, users) as broker,
        CameraFarm.uniform(2, username=USER, password=camera_password) as farm,
    ):
        sia_port = free_port()
        cfg = make_site(
            broker_url=broker.m.url,
            data_dir=tmp_path / "data",
            sia_port=sia_port,
            panel_key=panel_key,
            cameras=[
                camera_entry("cam-good", farm[0], camera_password),
                camera_entry("cam-wrong", farm[1], wrong_camera_password, zone="hall"),
            ],
            health={**MANUAL, "fail_threshold": 2, "recover_threshold": 2},
            username="mallhub",
            password=hub_password,
        )
        async with PolicePlatform(
            broker.m.url, site=SITE, username="police", password=police_password
        ) as police:
            secrets.police(police)
            await asyncio.wait_for(police.connected.wait(), WITHIN)
            async with Hub(cfg) as hub:
                await wait_until(lambda: hub.police.state.connected, WITHIN, what="link up")
                health = hub.health
                assert isinstance(health, HealthService)
                tokens: dict[str, str] = {}
                for role in ("viewer", "admin"):
                    await hub.submit(
                        CreateUser(role, role, hash_password(web_password, **FAST_SCRYPT), "test")
                    )
                    tokens[role] = secrets.secret(new_token())
                    await hub.submit(
                        CreateToken(role, f"{role}-token", token_hash(tokens[role]), "test")
                    )

                # An encrypted alarm, end to end.
                async with PanelSimulator(
                    "127.0.0.1",
                    sia_port,
                    "1234",
                    key=key_from_text(panel_key, "hex"),
                    ack_timeout=2.0,
                ) as panel:
                    panel.press(15)
                    await panel.wait_acked(1, WITHIN)

                # Unknown SIA account: every frame NAKed, one fault.
                frames = [
                    build_frame(
                        token="ADM-CID",
                        seq=n,
                        account=STRANGER,
                        data=f"#{STRANGER}|{cid_payload(1, 120, 1, 1)}",
                        timestamp=datetime.now(UTC),
                    )
                    for n in range(1, 9)
                ]
                assert await asyncio.to_thread(_nak_count, sia_port, frames) == len(frames)
                unknown = await _events(hub, kind="fault.unknown_account")
                assert len(unknown) == 1, unknown
                async with hub.engine.connect() as c:
                    source = (
                        await c.execute(
                            select(Event.source).where(Event.kind == "fault.unknown_account")
                        )
                    ).scalar_one()
                assert source["account"] == STRANGER  # the fault names the stranger

                # Wrong ONVIF password: offline with the reason, one event for many probes.
                for _ in range(6):
                    await health.probe_now(["cam-good", "cam-wrong"])
                wrong = health.device("cam-wrong")
                assert wrong["state"] == "offline"
                assert wrong["reason"].startswith("authentication failed"), wrong["reason"]
                assert health.device("cam-good")["state"] == "online"
                cam_events = await _events(hub, device_id="cam-wrong")
                assert [k for _, k, _ in cam_events] == ["fault.device_offline"]
                assert cam_events[0][2]["reason"].startswith("authentication failed")
                assert "password" in cam_events[0][2].get("fix", "")
                assert farm[1].auth_rejections >= 6

                await police.wait_for(
                    lambda: (
                        {"alarm.panic", "fault.unknown_account", "fault.device_offline"}
                        <= {e["kind"] for e in police.view(SITE).events.values()}
                    ),
                    within=WITHIN,
                )
                api = await _api_texts(hub.web.url, tokens["admin"], ("admin", web_password))
                secrets.texts("API", lambda: api)
                assert len(api) >= 20
                assert police.violations == [], police.violations[:3]


async def test_wrong_mqtt_password_is_one_local_fault_forwarded_once_the_link_is_back(
    tmp_path: Path, secrets: SecretScan
) -> None:
    right = _secret(secrets, "mqtt-right-")
    wrong = _secret(secrets, "mqtt-wrong-")
    police_password = _secret(secrets, "mqtt-police-")
    async with secure_broker(tmp_path, {"mallhub": right, "police": police_password}) as broker:
        cfg = make_site(
            broker_url=broker.m.url,
            data_dir=tmp_path / "data",
            cameras=[],
            health={**MANUAL, "fail_threshold": 2},
            username="mallhub",
            password=wrong,
        )
        async with PolicePlatform(
            broker.m.url, site=SITE, username="police", password=police_password
        ) as police:
            secrets.police(police)
            await asyncio.wait_for(police.connected.wait(), WITHIN)
            async with Hub(cfg) as hub:
                link = hub.police
                await wait_until(lambda: bool(link.state.last_error), WITHIN, what="refusal")
                assert not link.state.connected
                # The reason names the refusal, not the password.
                assert "authori" in link.state.last_error.lower() or "password" in (
                    link.state.last_error.lower()
                ), link.state.last_error
                health = hub.health
                assert isinstance(health, HealthService)
                for _ in range(5):  # five police-link probes, one fault
                    await health.scheduler.run_now("police")
                faults = await _events(hub, kind="fault.communication")
                assert len(faults) == 1, faults
                device, _, detail = faults[0]
                assert device == "hub"
                assert detail["reason"].startswith("police link down:")
                assert "authori" in detail["reason"].lower() or "password" in (
                    detail["reason"].lower()
                )
                # Shown locally while the police cannot get it.
                async with aiohttp.ClientSession(hub.web.url) as s:
                    hashed = hash_password(right, **FAST_SCRYPT)
                    await hub.submit(CreateUser("admin", "admin", hashed, "test"))
                    token = secrets.secret(new_token())
                    await hub.submit(CreateToken("admin", "t", token_hash(token), "test"))
                    async with s.get(
                        "/api/v1/events", headers={"Authorization": f"Bearer {token}"}
                    ) as r:
                        assert r.status == 200
                        listed = await r.text()
                        secrets.texts("API", lambda: [listed])
                assert "fault.communication" in listed

                # The operator fixes the broker's password file: the link comes up, the fault
                # and its restore reach the police, once each.
                broker.set_users({"mallhub": wrong, "police": police_password})
                broker.reload()
                await wait_until(lambda: link.state.connected, WITHIN * 2, what="link up")
                await health.scheduler.run_now("police")
                await health.scheduler.run_now("police")
                kinds = [k for _, k, _ in await _events(hub, device_id="hub")]
                assert kinds.count("fault.communication") == 1
                assert kinds.count("fault.communication.restore") == 1
                await police.wait_for(
                    lambda: (
                        [
                            e["kind"]
                            for e in police.view(SITE).events.values()
                            if e["kind"].startswith("fault.communication")
                        ]
                        == ["fault.communication", "fault.communication.restore"]
                    ),
                    within=WITHIN,
                )
                assert police.violations == [], police.violations[:3]
