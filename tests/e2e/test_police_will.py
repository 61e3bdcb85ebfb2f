"""The Last Will: what its ``ts`` means, and how the police tell how long a mall is dark."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from hub.broker import LocalMosquitto
from tests.e2e.hubtest import assert_no_violations, police_and_hub
from tests.support.sites import make_site
from tests.support.wait import wait_until


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_the_will_is_dated_at_connect_and_heartbeats_bound_the_dark_time(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path, heartbeat_s=0.5)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        await police.wait_for(lambda: len([r for r in police.received if r.kind == "status"]) >= 4)
        online = [r.body for r in police.received if r.kind == "status"]
        assert all(s["state"] == "online" and s["heartbeat_s"] == 0.5 for s in online)
        first_online = _at(online[0]["ts"])
        # Cut the hub's connection without a DISCONNECT: the broker publishes the will.
        client = hub.police._client
        assert client is not None
        sock = client._client.socket()
        assert sock is not None
        sock.close()
        await police.wait_for(
            lambda: any(
                r.kind == "status" and r.body["state"] == "offline" for r in police.received
            ),
            within=30,
        )
        statuses = [r.body for r in police.received if r.kind == "status"]
        will = next(s for s in statuses if s["state"] == "offline")
        assert will["reason"] == "connection lost" and will["heartbeat_s"] == 0.5
        before = [s for s in statuses[: statuses.index(will)] if s["state"] == "online"]
        # The will's ts is the time the lost connection began (as documented), not the
        # time of the loss: the last online ts is the last sign of life.
        assert abs((_at(will["ts"]) - first_online).total_seconds()) < 2
        assert _at(before[-1]["ts"]) > _at(will["ts"])
        await wait_until(lambda: hub.police.state.connects >= 2, within=30, what="reconnect")
    assert_no_violations(police)
