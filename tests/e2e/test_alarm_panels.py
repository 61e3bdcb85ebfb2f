"""Alarm panels end to end: panel simulator → SIA receiver → store → Mosquitto → police."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from hub.app import GC_THRESHOLDS
from hub.broker import LocalMosquitto
from simulators.panel import PanelSimulator
from tests.e2e.hubtest import assert_no_violations, police_and_hub
from tests.support.sites import make_site
from tests.support.wait import wait_until

ASCII_KEY = "0123456789abcdef"  # test-only key, never a default
HEX_KEY = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"


async def test_gate_button_press_and_restore_reach_police(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        port = hub.sia.tcp_port
        view = police.view(cfg.site.id)
        async with PanelSimulator("127.0.0.1", port, "1234") as panel:
            panel.press(15)
            await panel.wait_acked(1, within=10)
            await police.wait_for(lambda: len(view.events) == 1)
            alarm = view.events[view.event_order[0]]
            assert alarm["kind"] == "alarm.panic" and alarm["priority"] == 1
            assert alarm["category"] == "alarm"
            assert alarm["device"]["id"] == "btn-gate-1"
            assert alarm["device"]["location"]["role"] == "gate"
            assert alarm["source"]["protocol"] == "sia-dc09"
            assert alarm["source"]["zone"] == 15
            assert alarm["cameras"][0]["id"] == "cam-gate-1"
            panel.restore(15)
            await panel.wait_acked(2, within=10)
            await police.wait_for(lambda: len(view.events) == 2)
            restore = view.events[view.event_order[1]]
            assert restore["kind"] == "alarm.panic.restore"
            assert restore["category"] == "info" and restore["priority"] == 4
    assert_no_violations(police)


async def test_start_up_heap_is_frozen_while_the_hub_runs_and_alarms_still_flow(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    """Full collections skip what start-up built (gc.freeze), so they cannot stall the alarm
    path for long; alarms still go through; a process that outlives its hub gets its
    collector back as it was."""
    before = gc.get_threshold()
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        assert gc.get_freeze_count() > 10_000  # modules, config, ORM and drivers
        assert gc.get_threshold() == GC_THRESHOLDS
        view = police.view(cfg.site.id)
        async with PanelSimulator("127.0.0.1", hub.sia.tcp_port, "1234") as panel:
            for _ in range(3):
                panel.press(15)
            await panel.wait_acked(3, within=10)
            await police.wait_for(lambda: len(view.events) == 3)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
    assert_no_violations(police)


async def test_supervision_lost_and_restored(broker: LocalMosquitto, tmp_path: Path) -> None:
    cfg = make_site(
        broker_url=broker.url, data_dir=tmp_path, supervision_interval_s=1, supervision_grace_s=1
    )
    async with police_and_hub(cfg, broker.url) as (police, hub):
        port = hub.sia.tcp_port
        view = police.view(cfg.site.id)

        def kinds() -> list[str]:
            return [view.events[e]["kind"] for e in view.event_order]

        async with PanelSimulator(
            "127.0.0.1", port, "1234", supervision_every=0.3, periodic_test_every=0.7
        ) as panel:
            # NULLs and periodic tests keep the panel supervised for several intervals.
            await police.wait_for(lambda: kinds().count("info.periodic_test") >= 4, within=15)
            assert "fault.supervision" not in kinds()
            panel.go_silent()
            await police.wait_for(lambda: "fault.supervision" in kinds(), within=10)
            fault = next(
                view.events[e]
                for e in view.event_order
                if view.events[e]["kind"] == "fault.supervision"
            )
            assert fault["device"]["id"] == "panel-1" and fault["priority"] == 3
            # Raised only once the silence exceeded interval + grace (the receiver's own
            # measurement; the deadline arithmetic itself is unit-tested on a fake clock).
            d = fault["detail"]
            assert (d["interval"], d["grace"]) == (1, 1)
            assert d["silent_for"] >= d["interval"] + d["grace"]
            panel.resume()
            await police.wait_for(lambda: "fault.supervision.restore" in kinds(), within=10)
    assert_no_violations(police)


@pytest.mark.parametrize(("key_text", "fmt"), [(ASCII_KEY, "ascii"), (HEX_KEY, "hex")])
async def test_encrypted_accounts_with_ascii_and_hex_keys(
    broker: LocalMosquitto, tmp_path: Path, key_text: str, fmt: str
) -> None:
    from adapters.alarm_panels import parse_key

    cfg = make_site(
        broker_url=broker.url, data_dir=tmp_path, panel_key=key_text, panel_key_format=fmt
    )
    key = parse_key(key_text, fmt)  # type: ignore[arg-type]
    async with police_and_hub(cfg, broker.url) as (police, hub):
        port = hub.sia.tcp_port
        view = police.view(cfg.site.id)
        async with PanelSimulator("127.0.0.1", port, "1234", key=key) as panel:
            panel.press(16)
            await panel.wait_acked(1, within=10)
            await police.wait_for(lambda: len(view.events) == 1)
            assert view.events[view.event_order[0]]["device"]["id"] == "btn-duty-1"
        wrong = bytes(reversed(key))
        async with PanelSimulator("127.0.0.1", port, "1234", key=wrong, ack_timeout=0.3) as bad:
            bad.press(16)
            await wait_until(lambda: bad.naks >= 1, what="NAK for a wrong key")
            assert bad.acked == 0
        assert hub.sia.stats.rejections["decrypt"] >= 1
        assert len(view.events) == 1  # the wrongly keyed press was not stored
    assert_no_violations(police)
