"""Component tests: the real receiver and the panel simulator over real sockets on port 0."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from adapters.alarm_panels import AccountConfig, ReceiverLimits, SiaReceiver, parse_key
from adapters.device_event import DeviceEvent
from simulators import panel as panel_module
from simulators.panel import PanelSimulator, build_frame, key_from_text, parse_reply, transmitter

WITHIN = 20.0  # generous deadline for conditions; never a speed assertion


class FakeStore:
    """In-memory stand-in for the hub's ingest: records attempts, can be made to fail."""

    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []
        self.attempts: list[DeviceEvent] = []
        self.failing = False

    async def ingest(self, event: DeviceEvent) -> str:
        self.attempts.append(event)
        if self.failing:
            raise RuntimeError("store unavailable")
        self.events.append(event)
        return f"event-{len(self.events)}"

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of_kind(self, kind: str) -> list[DeviceEvent]:
        return [e for e in self.events if e.kind == kind]


async def eventually(predicate: Callable[[], bool], within: float = WITHIN) -> None:
    """Wait for a condition, checking it often, until a deadline."""
    async with asyncio.timeout(within):
        # Polls: the receiver's counters have no change notification (and need none).
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


PANEL = AccountConfig(
    account="1234",
    panel_device_id="panel-1",
    zones={1: "button-1", 2: "button-2", 3: "button-3", 501: "button-501"},
)


@asynccontextmanager
async def receiver(
    store: FakeStore,
    accounts: Sequence[AccountConfig] = (PANEL,),
    **kwargs: Any,
) -> AsyncIterator[SiaReceiver]:
    kwargs.setdefault("udp_port", 0)
    async with SiaReceiver(
        list(accounts), store.ingest, receiver_device_id="receiver-1", **kwargs
    ) as rx:
        yield rx


def panel_for(rx: SiaReceiver, account: str = "1234", **kwargs: Any) -> PanelSimulator:
    port = rx.udp_port if kwargs.get("transport") == "udp" else rx.tcp_port
    assert port is not None
    kwargs.setdefault("ack_timeout", 1.0)
    return PanelSimulator("127.0.0.1", port, account, **kwargs)


async def test_press_and_restore_over_tcp() -> None:
    store = FakeStore()
    async with receiver(store) as rx, panel_for(rx) as panel:
        panel.press(3)
        await panel.wait_acked(1, WITHIN)
        panel.restore(3)
        await panel.wait_acked(2, WITHIN)
        assert [(e.kind, e.device_id) for e in store.events] == [
            ("alarm.panic", "button-3"),
            ("alarm.panic.restore", "button-3"),
        ]
        assert store.events[0].source["code"] == "1120 01 003"
        assert store.events[0].occurred_at.tzinfo is not None
        assert rx.stats.acks["1234"] == 2
        assert rx.stats.frames["1234"] == 2
        assert len(rx.stats.ack_latencies) == 2
        assert rx.stats.ack_latency_count == sum(rx.stats.ack_latency_buckets) == 2


async def test_sia_events_over_udp() -> None:
    store = FakeStore()
    async with (
        receiver(store) as rx,
        panel_for(rx, transport="udp", payload_format="sia") as panel,
    ):
        panel.press(501)
        panel.fire(2)
        panel.ac_loss()
        panel.test(1)
        await panel.wait_idle(WITHIN)
        assert [(e.kind, e.device_id) for e in store.events] == [
            ("alarm.panic", "button-501"),
            ("alarm.fire", "button-2"),
            ("fault.ac_loss", "panel-1"),
            ("info.test", "button-1"),
        ]
        assert all(e.source["format"] == "SIA-DCS" for e in store.events)
        assert panel.acked == 4 and panel.naks == 0


async def test_null_messages_keep_supervision_ok() -> None:
    store = FakeStore()
    supervised = AccountConfig(
        account="1234", panel_device_id="panel-1", supervision_interval=1.0, supervision_grace=1.0
    )
    async with (
        receiver(store, [supervised], supervision_check_period=0.05) as rx,
        panel_for(rx, supervision_every=0.1) as panel,
    ):
        assert rx.supervision_state("1234").state == "unknown"  # type: ignore[union-attr]
        # 25 NULLs span well over interval + grace.
        await panel.wait_acked(25, WITHIN)
        status = rx.supervision_state("1234")
        assert status is not None and status.state == "ok" and status.last_heard is not None
        assert store.events == []


async def test_silence_raises_supervision_fault_then_restore() -> None:
    store = FakeStore()
    supervised = AccountConfig(
        account="1234", panel_device_id="panel-1", supervision_interval=0.3, supervision_grace=0.2
    )
    async with (
        receiver(store, [supervised], supervision_check_period=0.05) as rx,
        panel_for(rx, supervision_every=0.1) as panel,
    ):
        await panel.wait_acked(1, WITHIN)
        panel.go_silent()
        await eventually(lambda: "fault.supervision" in store.kinds())
        assert rx.supervision_state("1234").state == "lost"  # type: ignore[union-attr]
        panel.resume()
        panel.press(1)
        await eventually(lambda: "alarm.panic" in store.kinds())
        assert rx.supervision_state("1234").state == "ok"  # type: ignore[union-attr]
        kinds = store.kinds()
        assert kinds.count("fault.supervision") == 1
        assert kinds.count("fault.supervision.restore") == 1
        assert kinds.index("fault.supervision") < kinds.index("fault.supervision.restore")
        assert kinds.index("fault.supervision.restore") < kinds.index("alarm.panic")
        assert {e.device_id for e in store.events if e.kind.startswith("fault.")} == {"panel-1"}


async def test_ingest_failure_means_no_ack_and_the_panel_resends() -> None:
    store = FakeStore()
    store.failing = True
    async with receiver(store) as rx, panel_for(rx, ack_timeout=0.3) as panel:
        panel.press(2)
        await eventually(lambda: len(store.attempts) >= 3)
        assert panel.acked == 0
        assert panel.resends >= 2
        assert rx.stats.replies["ack"] == 0
        assert rx.stats.rejections["ingest"] >= 3
        store.failing = False
        await panel.wait_acked(1, WITHIN)
        (event,) = store.events
        assert (event.kind, event.device_id) == ("alarm.panic", "button-2")
        assert {a.dedupe_key for a in store.attempts} == {event.dedupe_key}
        assert event.dedupe_key is not None


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_encrypted_with_ascii_and_hex_keys(transport: str) -> None:
    ascii_text = "MallHubSecret-24-bytes!!"
    hex_text = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"
    accounts = [
        AccountConfig(account="AA1", panel_device_id="p-a", key=parse_key(ascii_text, "ascii")),
        AccountConfig(account="BB2", panel_device_id="p-b", key=parse_key(hex_text, "hex")),
    ]
    store = FakeStore()
    async with receiver(store, accounts) as rx:
        ascii_panel = panel_for(
            rx, "AA1", key=key_from_text(ascii_text, "ascii"), transport=transport
        )
        hex_panel = panel_for(rx, "BB2", key=key_from_text(hex_text, "hex"), transport=transport)
        async with ascii_panel, hex_panel:
            ascii_panel.tamper(4)
            hex_panel.supervision()
            hex_panel.press(5)
            await ascii_panel.wait_idle(WITHIN)
            await hex_panel.wait_idle(WITHIN)
        assert (ascii_panel.acked, hex_panel.acked) == (1, 2)
        assert sorted((e.kind, e.device_id) for e in store.events) == [
            ("alarm.panic", "p-b"),
            ("alarm.tamper", "p-a"),
        ]
        assert all(e.source["encrypted"] is True for e in store.events)


async def test_wrong_key_is_rejected_and_counted() -> None:
    store = FakeStore()
    keyed = AccountConfig(account="1234", panel_device_id="panel-1", key=b"A" * 16)
    async with (
        receiver(store, [keyed]) as rx,
        panel_for(rx, key=b"B" * 16, ack_timeout=0.3) as panel,
    ):
        panel.press(1)
        await panel.wait_for(lambda p: p.naks >= 2, WITHIN)
        assert panel.acked == 0
        assert rx.stats.rejections["decrypt"] >= 2
        assert store.attempts == []


async def test_unknown_account_gets_nak_and_one_fault_event() -> None:
    store = FakeStore()
    async with receiver(store) as rx, panel_for(rx, "BEEF", ack_timeout=0.3) as stranger:
        stranger.press(1)
        await stranger.wait_for(lambda p: p.naks >= 3, WITHIN)
        assert stranger.acked == 0
        (fault,) = store.events
        assert (fault.kind, fault.device_id, fault.source["account"]) == (
            "fault.unknown_account",
            "receiver-1",
            "BEEF",
        )
        assert rx.stats.unknown_accounts["BEEF"] >= 3
        assert rx.stats.rejections["account"] >= 3


async def test_unknown_account_fault_is_rate_limited_per_period() -> None:
    store = FakeStore()
    clock = [0.0]
    async with receiver(
        store, limits=ReceiverLimits(unknown_account_period=300), monotonic=lambda: clock[0]
    ) as rx:
        frame = build_frame(token="NULL", seq=1, account="BEEF", data="")
        async with panel_for(rx) as conn:
            for count, step in enumerate((0.0, 100.0, 299.0, 301.0, 302.0), start=1):
                clock[0] = step
                await conn.send_raw(frame)
                # The lambda is awaited within this iteration, so late binding is harmless.
                await eventually(lambda: rx.stats.unknown_accounts["BEEF"] >= count)  # noqa: B023
        assert len(store.of_kind("fault.unknown_account")) == 2


async def test_faults_on_the_wire_are_survived() -> None:
    store = FakeStore()
    async with receiver(store) as rx, panel_for(rx, ack_timeout=0.4) as panel:
        panel.inject("split")
        panel.press(1)
        panel.inject("joined")
        panel.press(2)
        panel.press(3)
        panel.inject("garbage")
        panel.tamper(1)
        panel.inject("bad_crc")
        panel.fire(2)
        panel.inject("bad_length")
        panel.intrusion(3)
        panel.inject("unknown_account")
        panel.low_battery()
        panel.unknown_code(7)
        await panel.wait_idle(WITHIN)
        assert [(e.kind, e.device_id) for e in store.events if e.device_id != "receiver-1"] == [
            ("alarm.panic", "button-1"),
            ("alarm.panic", "button-2"),
            ("alarm.panic", "button-3"),
            ("alarm.tamper", "button-1"),
            ("alarm.fire", "button-2"),
            ("alarm.intrusion", "button-3"),
            ("fault.battery", "panel-1"),
            ("alarm.unknown", "panel-1"),
        ]
        assert store.of_kind("alarm.unknown")[0].source["code"] == "1999 01 007"
        stats = rx.stats.rejections
        assert stats["crc"] >= 1 and stats["length"] >= 1 and stats["garbage"] >= 1
        assert stats["account"] >= 1 and stats["unknown_code"] == 1
        assert panel.acked == 8 and panel.resends >= 3


async def test_panel_holds_events_until_the_receiver_is_back() -> None:
    store = FakeStore()
    async with receiver(store) as rx:
        port = rx.tcp_port  # free again once this receiver is gone
    async with PanelSimulator("127.0.0.1", port, "1234", ack_timeout=1.0) as panel:
        panel.press(1)
        panel.fire(2)
        await panel.wait_for(lambda p: p.connect_failures >= 2, WITHIN)
        assert (panel.pending, panel.acked) == (2, 0)
        async with receiver(store, tcp_port=port):
            await panel.wait_idle(WITHIN)
    assert [(e.kind, e.device_id) for e in store.events] == [
        ("alarm.panic", "button-1"),
        ("alarm.fire", "button-2"),
    ]


async def test_a_panel_retries_quietly_and_speaks_up_only_when_the_receiver_stays_away(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In the demo the panels start before the hub's receiver listens: retrying then is what a
    # panel does, not news for the person watching the terminal.
    monkeypatch.setattr(transmitter, "UNREACHABLE_TELL_S", 1.0)
    caplog.set_level(logging.DEBUG, logger="simulators.panel")

    def said(level: int) -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "simulators.panel" and r.levelno >= level
        ]

    store = FakeStore()
    async with receiver(store) as rx:
        port = rx.tcp_port
    async with PanelSimulator("127.0.0.1", port, "1234", reconnect_max=0.2) as panel:
        panel.press(1)
        await panel.wait_for(lambda p: p.connect_failures >= 2, WITHIN)
        assert said(logging.INFO) == []
        await eventually(lambda: said(logging.WARNING) != [])
        assert len(said(logging.WARNING)) == 1 and "1 event(s) held" in said(logging.WARNING)[0]
        async with receiver(store, tcp_port=port):
            await panel.wait_idle(WITHIN)
    assert said(logging.INFO)[1:] == [f"panel 1234: reached 127.0.0.1:{port} again"]
    assert store.kinds() == ["alarm.panic"]


async def test_clock_skew_is_corrected_from_the_nak() -> None:
    store = FakeStore()
    async with receiver(store) as rx, panel_for(rx) as panel:
        panel.clock_skew(-600)
        panel.press(1)
        await panel.wait_acked(1, WITHIN)
        assert panel.naks >= 1
        assert rx.stats.rejections["timestamp"] >= 1
        assert store.kinds() == ["alarm.panic"]


async def test_slow_connections_do_not_starve_a_real_panel() -> None:
    store = FakeStore()
    attackers: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    stop = asyncio.Event()

    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(b"\n6")
        while not stop.is_set():
            # Pacing of the attack, not synchronisation: one byte every 200 ms, never a CR.
            try:
                async with asyncio.timeout(0.2):
                    await stop.wait()
            except TimeoutError:
                writer.write(b"9")
                await writer.drain()

    async with receiver(store) as rx:
        for _ in range(200):
            attackers.append(await asyncio.open_connection("127.0.0.1", rx.tcp_port))
        async with asyncio.TaskGroup() as tg:
            for _, writer in attackers:
                tg.create_task(trickle(writer))
            await eventually(lambda: rx.stats.connections_open >= 200)
            async with panel_for(rx) as panel:
                panel.press(1)
                await panel.wait_acked(1, WITHIN)
                # The ACK arrived while every attacker is still connected.
                assert rx.stats.connections_open >= 201
                assert not any(reader.at_eof() for reader, _ in attackers)
            stop.set()
        for _, writer in attackers:
            writer.close()
        assert store.kinds() == ["alarm.panic"]


async def test_connection_limit_and_timeouts() -> None:
    store = FakeStore()
    limits = ReceiverLimits(max_connections=2, idle_timeout=0.3, frame_timeout=0.3)
    async with receiver(store, limits=limits) as rx:
        first = await asyncio.open_connection("127.0.0.1", rx.tcp_port)
        second = await asyncio.open_connection("127.0.0.1", rx.tcp_port)
        await eventually(lambda: rx.stats.connections_open == 2)
        third = await asyncio.open_connection("127.0.0.1", rx.tcp_port)
        async with asyncio.timeout(WITHIN):
            assert await third[0].read() == b""
        assert rx.stats.rejections["connection_limit"] == 1
        second[1].write(b"\n1234")  # a frame that never ends
        async with asyncio.timeout(WITHIN):
            assert await first[0].read() == b""
            assert await second[0].read() == b""
        assert rx.stats.rejections["idle"] == 1
        assert rx.stats.rejections["frame_timeout"] == 1
        for _, writer in (first, second, third):
            writer.close()


async def test_oversize_frame_then_valid_frame_on_same_connection() -> None:
    store = FakeStore()
    async with receiver(store, limits=ReceiverLimits(max_frame_bytes=256)) as rx:
        reader, writer = await asyncio.open_connection("127.0.0.1", rx.tcp_port)
        frame = build_frame(token="ADM-CID", seq=9, account="1234", data="#1234|1120 01 001")
        writer.write(b"\n" + b"A" * 1000 + b"\r" + frame)
        async with asyncio.timeout(WITHIN):
            reply = parse_reply(await reader.readuntil(b"\r"), None)
        assert reply is not None and (reply.kind, reply.seq) == ("ACK", 9)
        assert rx.stats.rejections["oversize"] == 1
        assert store.kinds() == ["alarm.panic"]
        writer.close()


async def test_cli_run_delivers_events() -> None:
    store = FakeStore()
    async with receiver(store) as rx:
        parser = argparse.ArgumentParser()
        panel_module.configure_parser(parser)
        args = parser.parse_args(
            [
                "--target",
                f"127.0.0.1:{rx.tcp_port}",
                "--account",
                "1234",
                "--press",
                "1",
                "--format",
                "sia",
                "--timeout",
                str(WITHIN),
            ]
        )
        assert await panel_module.run(args) == 0
    assert [(e.kind, e.device_id) for e in store.events] == [("alarm.panic", "button-1")]
