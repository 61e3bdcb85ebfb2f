"""The police side with TLS, as docs/patrol.md ("### TLS") tells operators to run it: a real
nats-server whose client and MQTT listeners require TLS, a real hub publishing over
``mqtts://`` and the patrol service connecting over ``tls://``, both trusting a CA made
for the test. Whoever does not trust that CA, or speaks plaintext, is refused."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from hub.app import Hub
from patrol.natsnode import NatsCluster, ServerTls
from patrol.queries import list_alarms
from patrol.service import NatsTlsError, PatrolService
from tests.e2e.hubtest import event
from tests.patrol.citytest import hub_receipted, patrol_config
from tests.support.certs import make_pki
from tests.support.nats import running_cluster
from tests.support.sites import make_site
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
SITE = "zz-tls-001"


@pytest.fixture
async def pki(tmp_path: Path) -> dict[str, Path]:
    return make_pki(tmp_path / "pki")


@pytest.fixture
async def tls_node(tmp_path: Path, pki: dict[str, Path]) -> AsyncIterator[NatsCluster]:
    tls = ServerTls(pki["server"], pki["server_key"], pki["ca"])
    async with running_cluster(tmp_path / "nats", 1, tls=tls) as c:
        await c.wait_jetstream()
        yield c


async def test_a_hub_over_mqtts_reaches_the_patrol_service_over_tls(
    tls_node: NatsCluster, pki: dict[str, Path], tmp_path: Path
) -> None:
    node = tls_node.nodes[0]
    assert node.url.startswith("tls://") and node.mqtt_url.startswith("mqtts://")
    hub_cfg = make_site(
        broker_url=node.mqtt_url,
        data_dir=tmp_path / "hub",
        site_id=SITE,
        protocol="3.1.1",
        receipts="required",
        receipt_timeout_s=5,
        tls={"ca_file": str(pki["ca"])},
    )
    assert hub_cfg.police.use_tls
    pc = patrol_config(
        tls_node, tmp_path, nats={"servers": [node.url], "tls": {"ca_file": str(pki["ca"])}}
    )
    async with PatrolService(pc, web=False) as svc, Hub(hub_cfg) as hub:
        assert svc.store is not None and svc.nc is not None
        assert svc.nc.connected_url is not None and svc.nc.connected_url.scheme == "tls"
        await wait_until(lambda: hub.police.state.connected, within=30, what="the mqtts link up")
        stored = await hub.ingest.ingest(event("alarm.panic"))
        engine = svc.store.engine

        async def in_patrol_store() -> bool:
            alarms = await list_alarms(engine, state="all", limit=10)
            return any(a["event_id"] == stored.event_id for a in alarms)

        await wait_until(in_patrol_store, within=30, what="the alarm in the patrol store")
        await wait_until(
            lambda: hub_receipted(hub, stored.event_id), within=30, what="the receipt at the hub"
        )


async def test_a_hub_with_another_ca_is_refused(tls_node: NatsCluster, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other-pki")
    hub_cfg = make_site(
        broker_url=tls_node.nodes[0].mqtt_url,
        data_dir=tmp_path / "hub",
        site_id=SITE,
        protocol="3.1.1",
        tls={"ca_file": str(other["ca"])},
    )
    async with Hub(hub_cfg) as hub:
        await wait_until(
            lambda: "certificate verify failed" in hub.police.state.last_error.lower(),
            within=30,
            what="a TLS refusal on the police link",
        )
        assert not hub.police.state.connected


async def test_the_patrol_service_without_the_ca_does_not_start(
    tls_node: NatsCluster, tmp_path: Path
) -> None:
    port = tls_node.nodes[0].client_port
    # tls:// servers (the node by address and by name), no nats.tls.ca_file
    pc = patrol_config(
        tls_node, tmp_path, nats={"servers": [f"tls://127.0.0.1:{port}", f"tls://localhost:{port}"]}
    )
    assert pc.nats.tls is None
    svc = PatrolService(pc, web=False)
    with pytest.raises(NatsTlsError, match="certificate verify failed"):
        await asyncio.wait_for(svc.__aenter__(), 60)
    assert svc.nc is None


def test_patrol_run_without_the_ca_says_why_in_one_line(
    tls_node: NatsCluster, tmp_path: Path
) -> None:
    cfg = tmp_path / "patrol.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "nats": {"servers": tls_node.urls},
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'patrol.db'}",
                "http": {"port": 0},
            }
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "patrol", "run", "-c", str(cfg)],
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("mallhub patrol")]
    assert len(errors) == 1, done.stderr
    assert "cannot start: TLS to NATS failed (certificate verify failed" in errors[0]
    assert "nats.tls.ca_file" in errors[0]


def _plaintext_session(port: int) -> tuple[dict[str, object], bytes]:
    """Speak NATS without TLS: read INFO, send CONNECT and PING; what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rb")
        info_line = f.readline()
        assert info_line.startswith(b"INFO "), info_line
        info = json.loads(info_line[5:])
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        rest = b""
        try:
            while chunk := sock.recv(4096):
                rest += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return info, rest


async def test_plaintext_nats_is_refused(tls_node: NatsCluster) -> None:
    info, answer = await asyncio.to_thread(_plaintext_session, tls_node.nodes[0].client_port)
    assert info.get("tls_required") is True
    assert b"PONG" not in answer  # the server closed instead of serving a plaintext client
