"""The lower-level platform against the simulated upper platform (its own SIP code).

Registration with Digest, renewal with a fresh Call-ID (the simulator answers a reused one
with 400), unregistration, refusals named with both IDs, keepalive loss and the upper
platform's restart, the catalog and other queries, alarms, subscriptions and controls, and
hostile requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
from datetime import UTC, datetime

import pytest

from adapters.gb28181.manscdp import AlarmNotice, PtzCommand, build_ptz
from adapters.gb28181.model import Channel, LinkState, PlatformHooks
from adapters.gb28181.platform import LowerPlatform
from simulators.gb28181_platform import UpperPlatform

from ..support.wait import wait_until
from .conftest import HUB_ID, SERVER_ID, by_id, channels, platform_config


def hooks(
    chans: list[Channel], states: list[LinkState] | None = None, **more: object
) -> PlatformHooks:
    return PlatformHooks(
        channels=lambda: chans,
        on_link_state=(states.append if states is not None else None),
        **more,  # type: ignore[arg-type]
    )


def notice(key: str = "ev-1", channel: str = "34020000001340000001") -> AlarmNotice:
    return AlarmNotice(
        key, channel, 1, 2, 1, datetime.now(UTC), "紧急按钮报警 2F", ("34020000001320000001",)
    )


async def test_registers_with_digest_and_unregisters_on_stop(upper: UpperPlatform) -> None:
    states: list[LinkState] = []
    async with LowerPlatform(platform_config(upper), hooks(channels(), states)) as platform:
        await wait_until(lambda: platform.registered, what="registration")
        assert HUB_ID in upper.registrations
        assert upper.counters["challenged"] == 1 and upper.counters["auth_failed"] == 0
        assert platform.state.online and platform.state.reason == "registered"
        assert platform.state.server_id_seen == SERVER_ID[:10]  # the challenge's realm
    assert upper.counters["unregistered"] == 1
    assert HUB_ID not in upper.registrations
    assert [s.online for s in states] == [True, False]
    assert states[-1].reason == "stopped"


async def test_renews_before_expiry_with_a_new_call_id_each_cycle() -> None:
    async with UpperPlatform(platform_id=SERVER_ID, password="gb-test-secret", expires=2) as upper:
        cfg = platform_config(upper, register_expires_s=2)
        async with LowerPlatform(cfg, hooks(channels())) as platform:
            await wait_until(lambda: upper.counters["registered"] >= 3, within=15, what="3 cycles")
            assert platform.registered
        registers = [m for m in upper.requests_seen if m.method == "REGISTER"]
        first_of_cycle = [m.get("call-id") for m in registers if m.cseq[0] == 1]
        assert len(first_of_cycle) == len(set(first_of_cycle)) >= 4  # 3 cycles + unregister
        assert upper.counters["reused_call_id"] == 0


async def test_wrong_password_is_a_clear_offline_reason(upper: UpperPlatform) -> None:
    cfg = platform_config(upper, password="not-the-password")
    async with LowerPlatform(cfg, hooks(channels())) as platform:
        await wait_until(lambda: upper.counters["auth_failed"] >= 2, what="retries")
        assert not platform.state.online
        assert platform.state.reason.startswith("REGISTER refused: 403")
    assert "not-the-password" not in repr(cfg)


async def test_refusal_names_the_configured_and_the_answering_ids(upper: UpperPlatform) -> None:
    wrong = "34020000002000000002"
    cfg = platform_config(upper, server_id=wrong)
    async with LowerPlatform(cfg, hooks(channels())) as platform:
        await wait_until(lambda: upper.counters["wrong_platform_id"] >= 1, what="a 404")
        await wait_until(lambda: "404" in platform.state.reason, what="the finding")
        reason = platform.state.reason
    assert f"configured {wrong}" in reason
    assert f"answered as {SERVER_ID}" in reason
    assert f"our ID {HUB_ID}" in reason


async def test_keepalives_lost_then_relinked_after_the_platform_returns(
    upper: UpperPlatform,
) -> None:
    states: list[LinkState] = []
    cfg = platform_config(upper, keepalive_interval_s=0.3)
    async with LowerPlatform(cfg, hooks(channels(), states)) as platform:
        await wait_until(
            lambda: (
                upper.registrations.get(HUB_ID) is not None
                and upper.registrations[HUB_ID].keepalives >= 2
            ),
            what="keepalives",
        )
        await upper.stop()
        await wait_until(lambda: not platform.state.online, within=10, what="offline")
        assert platform.state.reason == "3 keepalives unanswered"
        upper.registrations.clear()
        await upper.start()
        await wait_until(
            lambda: platform.state.online and HUB_ID in upper.registrations,
            within=10,
            what="relinked",
        )
    assert [s.online for s in states[:3]] == [True, False, True]


async def test_platform_restart_is_noticed_by_the_next_keepalive(upper: UpperPlatform) -> None:
    cfg = platform_config(upper, keepalive_interval_s=0.3)
    async with LowerPlatform(cfg, hooks(channels())) as platform:
        await wait_until(lambda: HUB_ID in upper.registrations, what="registration")
        await upper.restart()  # forgets every registration, as a restarted platform does
        await wait_until(
            lambda: HUB_ID in upper.registrations and platform.counters["registered"] >= 2,
            within=10,
            what="re-registration",
        )
        assert upper.counters["unregistered_message"] >= 1  # the keepalive that was refused
        # And the link works: the catalog is answered after the restart.
        assert len(await upper.catalog(HUB_ID)) == 4


async def test_catalog_lists_every_channel_split_into_responses(upper: UpperPlatform) -> None:
    chans = channels(cameras=15, buttons=10)
    cfg = platform_config(upper, catalog_per_message=4, charset="GB2312")
    async with LowerPlatform(cfg, hooks(chans)) as platform:
        await wait_until(lambda: platform.registered, what="registration")
        responses = await upper.query(HUB_ID, "Catalog")
        items = by_id(await upper.catalog(HUB_ID))
    assert len(responses) == 7
    assert {r.findtext("SumNum") for r in responses} == {"25"}
    assert sorted(items) == sorted(c.channel_id for c in chans)
    for channel in chans:
        item = items[channel.channel_id]
        assert item["Name"] == channel.name
        assert item["Address"] == channel.address
        assert item["Status"] == ("ON" if channel.online else "OFF")
        assert item["ParentID"] == HUB_ID
        assert item["CivilCode"] == "340200"


async def test_device_info_status_and_empty_record_info(upper: UpperPlatform) -> None:
    chans = channels()
    async with LowerPlatform(platform_config(upper, charset="UTF-8"), hooks(chans)) as platform:
        await wait_until(lambda: platform.registered, what="registration")
        platform.alarms.send(notice())
        await wait_until(lambda: len(platform.alarms.delivered) == 1, what="alarm")
        (info,) = await upper.query(HUB_ID, "DeviceInfo")
        (status,) = await upper.query(HUB_ID, "DeviceStatus")
        (records,) = await upper.query(HUB_ID, "RecordInfo", target="34020000001320000001")
        (button,) = await upper.query(HUB_ID, "DeviceStatus", target="34020000001340000002")
    assert info.findtext("Result") == "OK" and info.findtext("Channel") == "4"
    assert status.findtext("Online") == "ONLINE"
    duty = {
        i.findtext("DeviceID"): i.findtext("DutyStatus")
        for i in status.iterfind("Alarmstatus/Item")
    }
    assert duty == {"34020000001340000001": "ALARM", "34020000001340000002": "ONDUTY"}
    assert records.findtext("SumNum") == "0"
    assert records.find("RecordList").get("Num") == "0"  # type: ignore[union-attr]
    assert button.findtext("DeviceID") == "34020000001340000002"


async def test_alarm_is_sent_again_until_answered(upper: UpperPlatform) -> None:
    upper.ignore_alarms = 3
    async with LowerPlatform(platform_config(upper), hooks(channels())) as platform:
        await wait_until(lambda: platform.registered, what="registration")
        platform.alarms.send(notice("ev-7"))
        platform.alarms.send(notice("ev-7"))  # the same event twice is one alarm
        await wait_until(
            lambda: len(upper.alarms) == 1 and len(platform.alarms.delivered) == 1, what="delivery"
        )
    assert upper.counters["alarm_ignored"] == 3
    (alarm,) = upper.alarms
    assert alarm.fields["DeviceID"] == "34020000001340000001"
    assert alarm.fields["AlarmPriority"] == "1" and alarm.fields["AlarmMethod"] == "2"
    assert alarm.fields["AlarmType"] == "1"
    assert alarm.fields["AlarmDescription"] == "紧急按钮报警 2F"
    assert alarm.related == ["34020000001320000001"]
    assert platform.alarms.delivered[0].key == "ev-7"
    # The simulator confirmed with Response/Alarm; the platform took note of it.
    await wait_until(
        lambda: platform.alarms.delivered[0].sn in platform.alarms.responses, what="Response/Alarm"
    )


async def test_alarms_queued_while_offline_are_delivered_after_registration(
    upper: UpperPlatform,
) -> None:
    await upper.stop()
    async with LowerPlatform(platform_config(upper), hooks(channels())) as platform:
        platform.alarms.send(notice("ev-a"))
        platform.alarms.send(notice("ev-b", "34020000001340000002"))
        await upper.start()
        await wait_until(lambda: len(upper.alarms) == 2, within=10, what="both alarms")
    assert {a.fields["DeviceID"] for a in upper.alarms} == {
        "34020000001340000001",
        "34020000001340000002",
    }


async def test_alarm_subscription_gets_notify(upper: UpperPlatform) -> None:
    async with LowerPlatform(platform_config(upper), hooks(channels())) as platform:
        await wait_until(lambda: platform.registered, what="registration")
        answer = await upper.subscribe_alarms(HUB_ID, expires=600)
        assert answer.status == 200 and answer.get("expires") == "600"
        platform.alarms.send(notice("ev-s"))
        await wait_until(
            lambda: any(m.method == "NOTIFY" for m in upper.dialog_requests), what="NOTIFY"
        )
    (notify,) = [m for m in upper.dialog_requests if m.method == "NOTIFY"]
    assert notify.get("call-id") == answer.get("call-id")
    assert b"<CmdType>Alarm</CmdType>" in notify.body
    assert notify.get("subscription-state").startswith("active")


async def test_reset_alarm_and_ptz_reach_the_hub(upper: UpperPlatform) -> None:
    resets: list[Channel | None] = []
    moves: list[tuple[str, PtzCommand]] = []

    async def on_reset(channel: Channel | None) -> None:
        resets.append(channel)

    async def on_ptz(channel: Channel, command: PtzCommand) -> None:
        if channel.device_ref == "cam-2":
            raise RuntimeError("camera has no PTZ")
        moves.append((channel.device_ref, command))

    chans = channels()
    async with LowerPlatform(
        platform_config(upper), hooks(chans, on_reset_alarm=on_reset, on_ptz=on_ptz)
    ) as platform:
        await wait_until(lambda: platform.registered, what="registration")
        (ok,) = await upper.control(
            HUB_ID, "34020000001320000001", f"<PTZCmd>{build_ptz(pan=-1)}</PTZCmd>"
        )
        (failed,) = await upper.control(
            HUB_ID, "34020000001320000002", f"<PTZCmd>{build_ptz(tilt=1)}</PTZCmd>"
        )
        (bad,) = await upper.control(HUB_ID, "34020000001320000001", "<PTZCmd>A5FFFF</PTZCmd>")
        (reset,) = await upper.control(
            HUB_ID, "34020000001340000001", "<AlarmCmd>ResetAlarm</AlarmCmd>"
        )
    assert [r.findtext("Result") for r in (ok, failed, bad, reset)] == [
        "OK",
        "ERROR",
        "ERROR",
        "OK",
    ]
    assert [(ref, c.pan) for ref, c in moves] == [("cam-1", -1)]
    assert [c.device_ref if c else None for c in resets] == ["btn-1"]


async def test_hostile_and_foreign_requests(upper: UpperPlatform) -> None:
    async with LowerPlatform(platform_config(upper), hooks(channels())) as platform:
        await wait_until(lambda: platform.registered, what="registration")
        port = platform.local_port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            for junk in (
                b"\x00\xff" * 50,
                b"INVITE\r\n\r\n",
                b"SIP/2.0 200\r\nVia: x\r\n\r\n",
                b"\r\n\r\n",
            ):
                raw.sendto(junk, ("127.0.0.1", port))
        await wait_until(
            lambda: platform.signalling.counters["unparsable"] >= 2, what="junk counted"
        )
        # A MESSAGE whose body is not MANSCDP: 400 with the reason, and the link carries on.
        bad = await upper.request(HUB_ID, "MESSAGE", b"<Query><CmdType>Catalog</CmdType></Query>")
        assert bad.status == 400 and "SN" in bad.start
        unknown = await upper.request(
            HUB_ID, "MESSAGE", upper._xml("Query", "Catalog", 1, "99999999999999999999")
        )
        assert unknown.status == 404
        # A request from another host is refused, whatever it asks.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as foreign:
            foreign.bind(("127.0.0.2", 0))
            foreign.settimeout(5)
            via = f"SIP/2.0/UDP 127.0.0.2:{foreign.getsockname()[1]};branch=z9hG4bKf1"
            request = (
                f"MESSAGE sip:{HUB_ID}@127.0.0.1 SIP/2.0\r\nVia: {via}\r\nFrom: <sip:1@2>;tag=a\r\n"
                f"To: <sip:{HUB_ID}@3402000000>\r\nCall-ID: foreign1\r\nCSeq: 1 MESSAGE\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
            foreign.sendto(request, ("127.0.0.1", port))
            answer = await asyncio.to_thread(foreign.recv, 2000)
        assert answer.startswith(b"SIP/2.0 403")
        assert len(await upper.catalog(HUB_ID)) == 4


@pytest.mark.parametrize("charset", ["GB2312", "UTF-8"])
async def test_over_tcp(upper: UpperPlatform, charset: str) -> None:
    cfg = platform_config(upper, transport="TCP", keepalive_interval_s=0.3, charset=charset)
    async with LowerPlatform(cfg, hooks(channels())) as platform:
        await wait_until(lambda: platform.registered, what="registration over TCP")
        assert upper.registrations[HUB_ID].transport == "TCP"
        assert len(await upper.catalog(HUB_ID)) == 4
        await wait_until(lambda: upper.registrations[HUB_ID].keepalives >= 1, what="keepalive")
        platform.alarms.send(notice())
        await wait_until(lambda: len(upper.alarms) == 1, what="alarm")
        assert upper.alarms[0].charset == charset
        await upper.restart()  # closes the connection: the platform reconnects and registers
        await wait_until(lambda: HUB_ID in upper.registrations, within=10, what="re-registration")
    assert upper.counters["unregistered"] == 1  # over the new connection, on the clean stop


HOSTILE_BODIES = [
    b"",
    b"\xff\xfe\x00garbage",
    b"<Query><CmdType>Catalog</CmdType><SN>99999999999</SN><DeviceID>x</DeviceID></Query>",
    b'<?xml version="1.0" encoding="GB2312"?><Control><CmdType>DeviceControl</CmdType><SN>1</SN>'
    b"<DeviceID>34020000001320000001</DeviceID><PTZCmd>A5\xff</PTZCmd></Control>",
    b"<Query>" + b"<a>" * 5000 + b"</Query>",
    "v=0\r\ns=播放\r\nc=IN IP4 127.0.0.1\r\nm=video 9 RTP/AVP 96\r\ny=1\r\n".encode(),
    b"v=0\r\nc=IN IP4 999.1.1.1\r\nm=video 1 TCP/RTP/AVP 96\r\na=setup:bogus\r\n",
]


def hostile_requests(port: int, count: int) -> list[bytes]:
    """Requests from the upper platform's address with broken headers, bodies and methods."""
    rng = random.Random(28181)
    methods = ["MESSAGE", "INVITE", "SUBSCRIBE", "BYE", "CANCEL", "ACK", "NOTIFY", "INFO", "X"]
    out = []
    for n in range(count):
        method = rng.choice(methods)
        body = rng.choice(HOSTILE_BODIES)
        headers = [
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKh{n}",
            f"From: <sip:34020000002000000001@3402000000>;tag=h{n}",
            f"To: <sip:{rng.choice([HUB_ID, '34020000001320000001', 'x'])}@3402000000>",
            f"Call-ID: hostile-{rng.randrange(5)}",
            f"CSeq: {rng.choice(['1', '2', 'x'])} {method}",
            f"Expires: {rng.choice(['0', '60', 'abc', '99999999999'])}",
            "Content-Type: Application/MANSCDP+xml",
        ]
        rng.shuffle(headers)
        if rng.random() < 0.2:
            headers.pop()
        target = rng.choice(["34020000001320000001", HUB_ID, "", "\u4e2d"])
        head = f"{method} sip:{target}@127.0.0.1 SIP/2.0\r\n" + "\r\n".join(headers)
        out.append(head.encode() + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


async def test_hostile_requests_from_the_platform_address_never_end_it(
    upper: UpperPlatform,
) -> None:
    async with LowerPlatform(platform_config(upper), hooks(channels())) as platform:
        await wait_until(lambda: platform.registered, what="registration")
        counters = platform.signalling.counters
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            raw.setblocking(False)
            answers: list[bytes] = []

            def drain() -> None:
                with contextlib.suppress(BlockingIOError):
                    while True:
                        answers.append(raw.recv(65536))

            requests = hostile_requests(raw.getsockname()[1], 150)
            for data in requests:
                before = counters["received"]
                raw.sendto(data, ("127.0.0.1", platform.local_port))
                # One at a time, so the socket's buffer never overflows and drops some.
                await wait_until(lambda: counters["received"] > before, what="received")  # noqa: B023
                drain()
            await wait_until(lambda: not platform._incoming, what="every request handled")
            drain()
        handled = counters["request"]
        assert handled + counters["unparsable"] + counters["retransmission"] == 150
        assert handled >= 80
        # Every handled request but an ACK is answered (each has its own branch).
        acks = sum(1 for d in requests if d.startswith(b"ACK "))
        branches = {re.search(rb"branch=(z9hG4bKh\d+)", a).group(1) for a in answers}  # type: ignore[union-attr]
        assert len(branches) >= handled - acks
        statuses = {int(a[8:11]) for a in answers}
        assert statuses <= {100, 200, 400, 403, 404, 480, 481, 486, 488, 489, 501}, statuses
        assert platform._runner is not None and not platform._runner.done()
        assert all(a.startswith(b"SIP/2.0 ") for a in answers)
        assert platform.counters["handler_error"] == 0
        # Still registered and answering.
        assert platform.registered
        assert len(await upper.catalog(HUB_ID)) == 4
