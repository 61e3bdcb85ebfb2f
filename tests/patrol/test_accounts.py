"""NATS users per mall on a real nats-server: a real hub works with its own credentials,
and a mall's credentials can neither publish as another mall, nor publish commands or
receipts, nor read another mall's commands."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import aiomqtt
import nats
from nats.aio.msg import Msg

from hub.app import Hub
from patrol.accounts import mall_user, patrol_user
from tests.e2e.hubtest import event
from tests.support.nats import running_cluster
from tests.support.sites import make_site
from tests.support.wait import wait_until


async def test_a_mall_cannot_publish_as_another_mall(tmp_path: Path) -> None:
    pw_a, pw_b, pw_p = (secrets.token_urlsafe(16) for _ in range(3))
    users = [mall_user("mall-a", pw_a), mall_user("mall-b", pw_b), patrol_user("patrol", pw_p)]
    async with running_cluster(tmp_path / "nats", 1, users=users) as cluster:
        await cluster.wait_jetstream(user="patrol", password=pw_p)
        nc = await nats.connect(cluster.urls, user="patrol", password=pw_p)
        seen: list[tuple[str, bytes]] = []

        async def on_msg(m: Msg) -> None:
            seen.append((m.subject, m.data))

        await nc.subscribe("mallhub.v1.>", cb=on_msg)
        await nc.flush()
        # Anonymous and wrong passwords are refused.
        for user, password in ((None, None), ("mall-a", pw_b)):
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    cluster.nodes[0].mqtt_port,
                    username=user,
                    password=password,
                    protocol=aiomqtt.ProtocolVersion.V311,
                    timeout=5,
                ):
                    refused = False
            except aiomqtt.MqttError:
                refused = True
            assert refused, user

        # A real hub logs in as mall-a: its alarm arrives, and a command reaches it.
        cfg = make_site(
            broker_url=cluster.mqtt_urls[0],
            data_dir=tmp_path / "hub",
            site_id="mall-a",
            protocol="3.1.1",
            username="mall-a",
            password=pw_a,
        )
        async with Hub(cfg) as hub:
            await wait_until(lambda: hub.police.state.connected, within=30, what="link up")
            stored = await hub.ingest.ingest(event("alarm.panic"))
            await wait_until(
                lambda: any(stored.event_id.encode() in d for _, d in seen), what="alarm"
            )
            request = {"request_id": "r-1", "event_id": stored.event_id, "by": "警官"}
            await nc.publish("mallhub.v1.mall-a.commands.ack", json.dumps(request).encode())
            await wait_until(
                lambda: any(s == "mallhub.v1.mall-a.responses.r-1" for s, _ in seen),
                what="the hub's response to the command",
            )

        # mall-a's credentials, used by someone else: publishing under mall-b, or on its
        # own commands and receipts, goes nowhere; its own topics still work.
        async with aiomqtt.Client(
            "127.0.0.1",
            cluster.nodes[0].mqtt_port,
            identifier="intruder",
            username="mall-a",
            password=pw_a,
            protocol=aiomqtt.ProtocolVersion.V311,
        ) as intruder:
            for topic in (
                "mallhub/v1/mall-b/events/alarm",
                "mallhub/v1/mall-b/status",
                "mallhub/v1/mall-a/commands/ack",
                "mallhub/v1/mall-a/receipts",
            ):
                await intruder.publish(topic, b'{"forged": true}', qos=0)
            await intruder.publish("mallhub/v1/mall-a/events/alarm", b'{"own": true}', qos=0)
        await wait_until(lambda: any(d == b'{"own": true}' for _, d in seen), what="own topic")
        await nc.flush()
        assert not any(b"forged" in d for _, d in seen), [s for s, d in seen if b"forged" in d]

        # Nor can it read mall-b's commands.
        async with aiomqtt.Client(
            "127.0.0.1",
            cluster.nodes[0].mqtt_port,
            identifier="reader",
            username="mall-a",
            password=pw_a,
            protocol=aiomqtt.ProtocolVersion.V311,
        ) as reader:
            await reader.subscribe("mallhub/v1/mall-b/commands/+", qos=0)
            await reader.subscribe("mallhub/v1/mall-a/receipts", qos=0)
            got: list[str] = []

            async def read() -> None:
                async for m in reader.messages:
                    got.append(m.topic.value)

            task = asyncio.create_task(read())
            # From one publisher NATS keeps the order: had the first been delivered, it
            # would arrive before the second, which the reader may receive.
            await nc.publish("mallhub.v1.mall-b.commands.ack", b'{"request_id": "secret"}')
            await nc.publish("mallhub.v1.mall-a.receipts", b'{"event_id": "e"}')
            await nc.flush()
            await wait_until(lambda: bool(got), what="the allowed message")
            task.cancel()
            assert got == ["mallhub/v1/mall-a/receipts"]
        await nc.close()
