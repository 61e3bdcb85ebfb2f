"""Trying to lose an alarm with the broker and the hub process: restarts, kills, a link cut.

The hub runs as a real ``mallhub run`` process; 20 panels send over TCP; the police platform
simulator (which validates every message) records every delivery. After each scenario:
every event a panel got an ACK for is stored once and reached the platform, ``seq`` has no
gap, a repeat carries the same event_id and the same content, and where the link was down,
the priority-1 events queued meanwhile left before everything else queued with them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from hub.broker import LocalMosquitto, free_port
from simulators.panel import PanelSimulator
from simulators.police import PolicePlatform
from tests.reliability.conftest import Scale, SecretScan
from tests.support.fleet import (
    SITE,
    DeliveryLog,
    count_events,
    panels,
    stored_between,
    stored_events,
    write_fleet,
)
from tests.support.hubproc import HubProcess
from tests.support.wait import wait_until

PANELS = 20


def _hub(tmp_path: Path, broker: LocalMosquitto, secrets: SecretScan) -> tuple[HubProcess, Path]:
    config = write_fleet(
        tmp_path / "site.yaml",
        broker_url=broker.url,
        data_dir=tmp_path / "data",
        sia_port=free_port(),
        panels=PANELS,
        cameras=[],
        panel_key=secrets.secret("0123456789ABCDEF0123456789ABCDEF"),
    )
    hub = HubProcess(config, tmp_path / "hub.log")
    secrets.file(hub.log)
    return hub, tmp_path / "data" / "mallhub.db"


def _sia_port(hub: HubProcess) -> int:
    import yaml

    return int(yaml.safe_load(hub.config.read_text())["alarm_receiver"]["tcp_port"])


def _alive(hub: HubProcess) -> bool:
    assert hub.alive(), f"the hub exited: {hub.log.read_text()[-2000:]}"
    return True


def _load(sims: list[PanelSimulator], per_panel: int, panic_every: int = 10) -> None:
    """Queue ``per_panel`` events on each panel: intrusions with a panic every so often."""
    for k, p in enumerate(sims):
        for i in range(per_panel):
            if i % panic_every == panic_every // 2:
                p.press(15 if k == 0 else 1)  # priority 1
            else:
                p.intrusion(15 if k == 0 else i % 8 + 1)  # priority 2


def _key() -> bytes:
    return bytes.fromhex("0123456789ABCDEF0123456789ABCDEF")


async def test_broker_restarted_three_times_during_a_burst(
    tmp_path: Path, scale: Scale, secrets: SecretScan
) -> None:
    total = scale.count(10_000, minimum=400) // PANELS * PANELS
    outage = scale.seconds(5, minimum=1.0)
    broker = LocalMosquitto(tmp_path / "mosquitto")
    broker.start()
    hub, db = _hub(tmp_path, broker, secrets)
    log = DeliveryLog()
    try:
        async with PolicePlatform(broker.url, site=SITE, on_message=log, receipts=False) as police:
            secrets.police(police)
            await police.connected.wait()
            hub.start()
            windows: list[tuple[datetime, datetime]] = []
            async with panels(_sia_port(hub), PANELS, first_key=_key()) as sims:
                # The burst is fed in parts. Half of a part is sent and stored, the broker
                # stops, and the other half is sent during the outage: every outage has events
                # of both priorities queued behind it, however fast the hub stores.
                per_panel = total // PANELS
                part = per_panel // 4
                before = part // 2
                loaded = 0
                for _ in range(3):
                    _load(sims, before)
                    loaded += before * PANELS
                    await wait_until(
                        lambda n=loaded: _alive(hub) and count_events(db) >= n,  # type: ignore[misc]
                        within=300,
                        what=f"{loaded} events stored",
                    )
                    broker.stop()
                    down = datetime.now(UTC)
                    _load(sims, part - before, panic_every=4)
                    loaded += (part - before) * PANELS
                    await asyncio.gather(
                        asyncio.sleep(outage),  # the outage lasts at least this long
                        wait_until(
                            lambda n=loaded: _alive(hub) and count_events(db) >= n,  # type: ignore[misc]
                            within=300,
                            what=f"{loaded} events stored during the outage",
                        ),
                    )
                    up = datetime.now(UTC)
                    broker.start()
                    windows.append((down, up))
                assert count_events(db) < total, "the burst was over before the last restart"
                _load(sims, per_panel - 3 * part)
                for p in sims:
                    await p.wait_idle(within=120)
                acked = sum(p.acked for p in sims)
            assert acked == total
            stored = stored_events(db)
            assert len(stored) == total  # every ACKed event stored once, resends deduplicated
            await police.wait_for(lambda: set(stored) <= set(log.first_arrival), within=120)
            log.assert_complete(stored, acked)
            for down, up in windows:
                log.assert_priority_first(stored_between(db, down, up))
            assert police.violations == [], police.violations[:3]
    finally:
        hub.stop()
        broker.stop()


async def test_hub_sigkilled_twice_during_a_burst(
    tmp_path: Path, scale: Scale, secrets: SecretScan
) -> None:
    total = scale.count(10_000, minimum=400) // PANELS * PANELS
    broker = LocalMosquitto(tmp_path / "mosquitto")
    broker.start()
    hub, db = _hub(tmp_path, broker, secrets)
    log = DeliveryLog()
    try:
        async with PolicePlatform(broker.url, site=SITE, on_message=log, receipts=False) as police:
            secrets.police(police)
            await police.connected.wait()
            hub.start()
            async with panels(_sia_port(hub), PANELS, first_key=_key()) as sims:
                _load(sims, total // PANELS)
                for fraction in (0.3, 0.6):
                    await wait_until(
                        lambda f=fraction: _alive(hub) and count_events(db) >= f * total,  # type: ignore[misc]
                        within=300,
                        what=f"{fraction:.0%} of the burst stored",
                    )
                    hub.kill()
                    assert count_events(db) < total, "the burst was over before the kill"
                    hub.start()
                for p in sims:
                    await p.wait_idle(within=120)
                acked = sum(p.acked for p in sims)
            assert acked == total
            stored = stored_events(db)
            assert len(stored) == total
            await police.wait_for(lambda: set(stored) <= set(log.first_arrival), within=120)
            log.assert_complete(stored, acked)
            assert police.violations == [], police.violations[:3]
    finally:
        hub.stop()
        broker.stop()


async def test_police_link_cut_under_load(
    tmp_path: Path, scale: Scale, secrets: SecretScan
) -> None:
    outage = scale.seconds(120, minimum=5.0)
    broker = LocalMosquitto(tmp_path / "mosquitto")
    broker.start()
    hub, db = _hub(tmp_path, broker, secrets)
    log = DeliveryLog()
    try:
        async with PolicePlatform(broker.url, site=SITE, on_message=log, receipts=False) as police:
            secrets.police(police)
            await police.connected.wait()
            hub.start()
            async with panels(_sia_port(hub), PANELS, first_key=_key()) as sims:
                _load(sims, 10)
                for p in sims:
                    await p.wait_idle(within=120)
                before = stored_events(db)
                await police.wait_for(lambda: set(before) <= set(log.first_arrival), within=60)

                broker.stop()  # the police broker becomes unreachable
                started = asyncio.get_running_loop().time()
                waves = 0
                # Load all through the outage: every panel keeps reporting, and the hub keeps
                # storing and acknowledging while it cannot forward anything.
                while asyncio.get_running_loop().time() - started < outage:
                    for k, p in enumerate(sims):
                        p.ac_loss()  # priority 4
                        p.intrusion(15 if k == 0 else 2)  # priority 2
                        p.press(15 if k == 0 else 3)  # priority 1
                    waves += 1
                    await asyncio.sleep(1.0)  # the pace of the load, not a synchronisation
                for p in sims:
                    await p.wait_idle(within=120)
                during = stored_events(db)
                assert len(during) - len(before) == 3 * PANELS * waves
                assert not (set(during) - set(before)) & set(log.first_arrival)
                broker.start()
                acked = sum(p.acked for p in sims)
            await police.wait_for(lambda: set(during) <= set(log.first_arrival), within=120)
            log.assert_complete(during, acked)
            log.assert_priority_first(set(during) - set(before))
            assert police.violations == [], police.violations[:3]
    finally:
        hub.stop()
        broker.stop()
