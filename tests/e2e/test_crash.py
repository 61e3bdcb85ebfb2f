"""A killed hub loses nothing: what was stored is forwarded after restart, what was not
stored was not acknowledged and comes again from the panel."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import yaml

from hub.broker import LocalMosquitto, free_port
from simulators.panel import PanelSimulator
from simulators.police import PolicePlatform
from tests.support.hubproc import HubProcess
from tests.support.sites import site_dict
from tests.support.wait import wait_until

PANELS = 4


def write_config(tmp_path: Path, broker_url: str, sia_port: int) -> tuple[Path, Path]:
    data = site_dict(broker_url=broker_url, data_dir=tmp_path / "data", sia_port=sia_port)
    first = data["devices"]["alarm_panels"][0]
    for i in range(2, PANELS + 1):
        data["devices"]["alarm_panels"].append(
            {
                "id": f"panel-{i}",
                "name": f"{i}号报警主机",
                "account": f"{2000 + i}",
                "location": first["location"],
                "zones": [
                    {
                        "zone": 1,
                        "id": f"btn-{i}",
                        "name": f"{i}号按钮",
                        "location": {"floor": "2F", "zone": f"z{i}", "role": "passage"},
                    }
                ],
            }
        )
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path, tmp_path / "data" / "mallhub.db"


def count_events(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not migrated yet
    finally:
        conn.close()


def _running(hub: HubProcess) -> bool:
    assert hub.alive(), f"the hub exited: {hub.log.read_text()[-2000:]}"
    return True


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def stored_ids(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return dict(conn.execute("SELECT event_id, seq FROM events").fetchall())
    finally:
        conn.close()


async def test_sigkill_during_a_burst_of_1000_loses_nothing(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    sia_port = free_port()
    config, db = write_config(tmp_path, broker.url, sia_port)
    hub = HubProcess(config, tmp_path / "hub.log")
    async with PolicePlatform(broker.url, site="test-mall") as police:
        await police.connected.wait()
        hub.start()
        try:
            accounts = ["1234"] + [f"{2000 + i}" for i in range(2, PANELS + 1)]
            zones = [15] + [1] * (PANELS - 1)
            panels = [
                PanelSimulator("127.0.0.1", sia_port, acct, ack_timeout=1.0, reconnect_max=0.5)
                for acct in accounts
            ]
            for p in panels:
                await p.__aenter__()
            try:
                for p, zone in zip(panels, zones, strict=True):
                    for _ in range(1000 // PANELS):
                        p.press(zone)
                await wait_until(
                    lambda: _running(hub) and count_events(db) >= 300, within=60, what="300 stored"
                )
                hub.kill()
                killed_at = count_events(db)
                assert killed_at < 1000, "the burst was over before the kill"
                hub.start()
                for p in panels:
                    await p.wait_idle(within=120)
                assert sum(p.acked for p in panels) == 1000
            finally:
                for p in panels:
                    await p.__aexit__(None, None, None)
            ids = stored_ids(db)
            assert len(ids) == 1000  # every ACKed press stored once, resends deduplicated
            view = police.view("test-mall")
            await police.wait_for(lambda: len(view.events) == 1000, within=60)
            assert set(view.events) == set(ids)
            assert sorted(view.seqs) == list(range(1, 1001))
            for eid, body in view.events.items():
                assert body["seq"] == ids[eid]
            assert police.violations == []
        finally:
            hub.stop()


async def test_killed_between_receipt_and_commit_event_arrives_exactly_once(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    sia_port = free_port()
    config, db = write_config(tmp_path, broker.url, sia_port)
    hub = HubProcess(config, tmp_path / "hub.log")
    async with PolicePlatform(broker.url, site="test-mall") as police:
        await police.connected.wait()
        hub.start()
        try:
            await wait_until(
                lambda: _running(hub) and _listening(sia_port), within=30, what="hub ready"
            )
            async with PanelSimulator(
                "127.0.0.1", sia_port, "1234", ack_timeout=1.0, reconnect_max=0.5
            ) as panel:
                # Hold the database's write lock: the hub receives the frame but cannot commit.
                blocker = sqlite3.connect(db, timeout=30, isolation_level=None)
                blocker.execute("BEGIN EXCLUSIVE")
                try:
                    panel.press(15)
                    await wait_until(lambda: panel.sent >= 2, within=20, what="a resend")
                    assert panel.acked == 0  # nothing committed, so nothing acknowledged
                    hub.kill()
                finally:
                    blocker.execute("ROLLBACK")
                    blocker.close()
                assert count_events(db) == 0
                hub.start()
                await panel.wait_acked(1, within=60)
            view = police.view("test-mall")
            await police.wait_for(lambda: len(view.events) == 1, within=30)
            (eid,) = view.events
            assert view.events[eid]["kind"] == "alarm.panic"
            # Give any redelivery a chance to show up before asserting exactly-once.
            await asyncio.sleep(1.0)
            assert view.deliveries[eid] == 1
            assert count_events(db) == 1
        finally:
            hub.stop()
