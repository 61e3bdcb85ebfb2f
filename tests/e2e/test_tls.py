"""The police link over TLS with a CA and a client certificate, against Mosquitto."""

from __future__ import annotations

from pathlib import Path

from hub.app import Hub
from hub.broker import LocalMosquitto
from simulators.police import PolicePlatform
from tests.e2e.hubtest import assert_no_violations, event
from tests.support.certs import make_pki
from tests.support.sites import make_site
from tests.support.wait import wait_until


async def test_events_flow_over_mutual_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    broker = LocalMosquitto(
        tmp_path / "mq", tls={"ca": pki["ca"], "cert": pki["server"], "key": pki["server_key"]}
    )
    broker.start()
    try:
        tls = {
            "ca_file": str(pki["ca"]),
            "cert_file": str(pki["client"]),
            "key_file": str(pki["client_key"]),
        }
        cfg = make_site(broker_url=broker.url, data_dir=tmp_path / "d", tls=tls)
        assert cfg.police.use_tls
        async with PolicePlatform(broker.plain_url, site=cfg.site.id) as police:
            await police.connected.wait()
            async with Hub(cfg) as hub:
                await wait_until(lambda: hub.police.state.connected, what="TLS link up")
                stored = await hub.ingest.ingest(event("alarm.panic"))
                view = police.view(cfg.site.id)
                await police.wait_for(lambda: stored.event_id in view.events)
            assert_no_violations(police)

        # Without the client certificate the broker refuses the hub.
        no_cert = make_site(
            broker_url=broker.url, data_dir=tmp_path / "e", tls={"ca_file": str(pki["ca"])}
        )
        async with Hub(no_cert) as hub:
            # The broker drops the handshake; the client sees no CONNACK (MQTT 5 attempt, then
            # the 3.1.1 fallback), each under the 10 s connect timeout.
            await wait_until(lambda: hub.police.state.last_error != "", within=45, what="a refusal")
            assert not hub.police.state.connected
    finally:
        broker.stop()
