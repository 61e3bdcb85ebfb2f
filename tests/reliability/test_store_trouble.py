"""The store refuses writes during ingest: panels get no ACK and keep their events, the hub
raises ``fault.store``, and once the store recovers everything flows without loss.

The two troubles are made by SQLite itself, so the hub sees the very errors a real one
causes: ``PRAGMA query_only`` gives SQLITE_READONLY ("attempt to write a readonly
database", as for a read-only file) and ``PRAGMA max_page_count`` pinned at the current size
gives SQLITE_FULL ("database or disk is full", as for a full disk). A chmod would not do:
the hub already holds the file open, and tests may run as root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from hub.app import Hub
from hub.broker import LocalMosquitto
from simulators.police import PolicePlatform
from tests.reliability.conftest import Scale, SecretScan
from tests.support.fleet import SITE, DeliveryLog, panels, write_fleet
from tests.support.wait import wait_until


@pytest.mark.parametrize("trouble", ["readonly", "full"])
async def test_store_trouble_during_ingest(
    broker: LocalMosquitto, tmp_path: Path, scale: Scale, secrets: SecretScan, trouble: str
) -> None:
    from hub.config import load_config

    path = write_fleet(
        tmp_path / "site.yaml",
        broker_url=broker.url,
        data_dir=tmp_path / "data",
        sia_port=0,
        panels=4,
        cameras=[],
    )
    hub = Hub(load_config(path, env={}))
    mode: dict[str, str | None] = {"trouble": None}

    def _on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        cur = dbapi_conn.cursor()
        if mode["trouble"] == "readonly":
            cur.execute("PRAGMA query_only = 1")
        elif mode["trouble"] == "full":
            cur.execute("PRAGMA page_count")
            pages = int(cur.fetchone()[0])
            cur.execute(f"PRAGMA max_page_count = {pages}")
        else:
            cur.execute("PRAGMA query_only = 0")
            cur.execute("PRAGMA max_page_count = 1073741823")
        cur.close()

    # Both of the writer's paths: the general one and SQLite's fast path for alarms.
    assert hub.writer.fast is not None
    for engine in (hub.engine.sync_engine, hub.writer.fast.engine):
        event.listen(engine, "checkout", _on_checkout)

    log = DeliveryLog()
    per_panel = scale.count(250, minimum=20)
    async with PolicePlatform(broker.url, site=SITE, on_message=log, receipts=False) as police:
        secrets.police(police)
        await police.connected.wait()
        async with hub:
            await wait_until(lambda: hub.police.state.connected, within=30, what="link up")
            port = hub.sia.tcp_port
            async with panels(port, 4) as sims:
                for p in sims:
                    for i in range(per_panel // 2):
                        p.intrusion(15 if p is sims[0] else i % 8 + 1)
                await wait_until(lambda: hub.writer.seq >= per_panel, within=60, what="ingest")
                mode["trouble"] = trouble
                acked_before = [p.acked for p in sims]
                # Every panel presses during the trouble; the store refuses the writes.
                for p in sims:
                    p.press(15 if p is sims[0] else 1)
                await wait_until(lambda: not hub.writer.healthy, within=60, what="store fault")
                held = [p.acked for p in sims]
                await wait_until(
                    lambda: all(p.resends >= 2 for p in sims), within=60, what="resends"
                )
                # No panel got an ACK while the store refused to commit: they keep resending.
                assert [p.acked for p in sims] == held
                assert all(p.pending > 0 for p in sims)
                assert sum(held) <= sum(acked_before) + 4 * per_panel

                mode["trouble"] = None
                for p in sims:
                    for i in range(per_panel // 2):
                        p.intrusion(15 if p is sims[0] else i % 8 + 1)
                for p in sims:
                    await p.wait_idle(within=120)
                acked = sum(p.acked for p in sims)
            assert hub.writer.healthy
            # The outage is reported once the store has worked again for a while.
            await police.wait_for(
                lambda: {"fault.store", "fault.store.restore"} <= {d.kind for d in log.deliveries},
                within=30,
            )
            async with hub.engine.connect() as c:
                from sqlalchemy import select

                from hub.store.models import Event

                rows = (await c.execute(select(Event.event_id, Event.seq, Event.priority))).all()
            stored = {eid: (seq, prio) for eid, seq, prio in rows}
            await police.wait_for(lambda: set(stored) <= set(log.first_arrival), within=120)
        # Count events, not deliveries: a redelivery (receipts are required here and this
        # platform sends none) carries the same event_id.
        kinds = [k for _, k in {(d.event_id, d.kind) for d in log.deliveries}]
        assert kinds.count("fault.store") == 1 and kinds.count("fault.store.restore") == 1
        fault = next(b for b in police.view(SITE).events.values() if b["kind"] == "fault.store")
        assert fault["detail"]["error"]  # says what went wrong
        assert acked == 4 * (per_panel // 2 * 2 + 1)
        log.assert_complete(stored, acked)
        assert police.violations == [], police.violations[:3]
