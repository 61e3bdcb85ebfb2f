"""Panels' dialects end to end: frames written by hand and framed by pysiaalarm, over TCP to
a real hub, through a real Mosquitto, to the police simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pysiaalarm.event import SIAEvent

from hub.broker import LocalMosquitto
from tests.e2e.hubtest import assert_no_violations, police_and_hub
from tests.support.sites import make_site


def _frame(seq: int, token: str, data: str) -> bytes:
    body = f'"{token}"{seq:04d}L0#1234[{data}]'
    return f"\n{SIAEvent._crc_calc(body)}{len(body):04X}{body}\r".encode("ascii")


async def _send(port: int, frame: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(frame)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r"), 15)
    finally:
        writer.close()


async def test_text_blocks_and_status_reports_reach_the_police_as_what_they_are(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    async with police_and_hub(cfg, broker.url) as (police, hub):
        port = hub.sia.tcp_port
        view = police.view(cfg.site.id)
        reply = await _send(port, _frame(1, "SIA-DCS", "#1234|Nri1/PA015|Agate panic"))
        assert b'"ACK"0001' in reply
        await police.wait_for(lambda: len(view.events) == 1)
        panic = view.events[view.event_order[0]]
        assert (panic["kind"], panic["priority"], panic["category"]) == ("alarm.panic", 1, "alarm")
        assert panic["source"]["zone"] == 15 and panic["source"]["text"] == "gate panic"
        assert panic["device"]["id"] == "btn-gate-1"
        # Contact ID qualifier 6: "zone 15 still in panic" is state, not a second panic.
        reply = await _send(port, _frame(2, "ADM-CID", "#1234|6120 01 015"))
        assert b'"ACK"0002' in reply
        await police.wait_for(lambda: len(view.events) == 2)
        status = view.events[view.event_order[1]]
        assert (status["kind"], status["category"], status["priority"]) == (
            "info.status",
            "info",
            4,
        )
        assert status["detail"]["status_of"] == "alarm.panic"
        alarms = [e for e in view.events.values() if e["category"] == "alarm"]
        assert len(alarms) == 1
        # Undecodable data from a known panel: stored and forwarded, ACKed (never DUH).
        reply = await _send(port, _frame(3, "SIA-DCS", "#1234|Nri1/??"))
        assert b'"ACK"0003' in reply
        await police.wait_for(lambda: len(view.events) == 3)
        unknown = view.events[view.event_order[2]]
        assert unknown["kind"] == "alarm.unknown" and unknown["source"]["code"] == "Nri1/??"
    assert_no_violations(police)
