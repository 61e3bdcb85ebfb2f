"""Hostile input on every MQTT subscription of a real hub, through a real Mosquitto.

Nothing that arrives on ``<p>/receipts`` or ``<p>/commands/<name>`` may take the link
down: each such message is counted and, for commands, answered, and events keep flowing.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import aiomqtt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.app import Hub
from hub.broker import LocalMosquitto
from simulators.police import PolicePlatform
from tests.e2e.hubtest import assert_no_violations, event, police_and_hub
from tests.support.hostile import deep_json, hostile_documents, hostile_payloads, to_json
from tests.support.sites import make_site
from tests.support.wait import wait_until


async def _publish(broker: LocalMosquitto, topic: str, payload: bytes, retain: bool) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="hostile-peer") as c:
        await c.publish(topic, payload, qos=1, retain=retain)


def _counting(hub: Hub) -> list[dict[str, Any]]:
    """Register a ``count`` command that records every run (the observable of 'ran')."""
    runs: list[dict[str, Any]] = []

    async def count(body: dict[str, Any]) -> dict[str, Any]:
        runs.append(body)
        return {"runs": len(runs)}

    hub.police.register("count", count)
    return runs


def _rejected(hub: Hub, topic: str, reason: str) -> int:
    return hub.police.inbox.rejections.counts[(topic, reason)]


async def _still_flowing(hub: Hub, police: PolicePlatform, site: str) -> None:
    alarm = await hub.ingest.ingest(event("alarm.panic"))
    view = police.view(site)
    await police.wait_for(lambda: alarm.event_id in view.events, within=15)
    assert hub.police.state.connected and hub.police.state.connects == 1


async def test_retained_deep_receipt_and_surrogate_receipt_leave_the_link_up(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    site = cfg.site.id
    async with police_and_hub(cfg, broker.url) as (police, hub):
        first = await hub.ingest.ingest(event("alarm.panic"))
        await police.wait_for(lambda: first.event_id in police.view(site).events)
        topic = f"{hub.prefix}/receipts"
        # 400 KB of nesting, retained: today's RecursionError, replayed at every reconnect.
        await _publish(broker, topic, deep_json(200_000, "dict"), retain=True)
        await wait_until(lambda: _rejected(hub, "receipt", "too_large") >= 1, what="rejected")
        # Under the size limit, the nesting itself.
        await _publish(broker, topic, deep_json(20_000, "field"), retain=False)
        await wait_until(lambda: _rejected(hub, "receipt", "too_deep") >= 1, what="rejected")
        surrogate = {"event_id": first.event_id, "received_at": "2026-11-22T08:00:00Z"}
        surrogate["by"] = "\ud800"
        await _publish(broker, topic, to_json(surrogate), retain=False)
        await wait_until(lambda: _rejected(hub, "receipt", "bad_text") >= 1, what="rejected")
        await _still_flowing(hub, police, site)
        # The rejections are on /metrics, by reason.
        text = hub.metrics.render().decode()
        assert 'mallhub_police_rejected_total{reason="too_deep",topic="receipt"} 1.0' in text
        await _publish(broker, topic, b"", retain=True)  # clear the retained receipt
    assert_no_violations(police)


async def test_commands_nested_other_site_retained_and_repeated(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    site = cfg.site.id
    async with police_and_hub(cfg, broker.url) as (police, hub):
        runs = _counting(hub)
        nested = await police.command(site, "ack", deep_json(100_000, "field"))
        assert nested["ok"] is False and nested["error"]["code"] == "malformed"
        shallow = await police.command(
            site, "count", b'{"request_id": "n", "x": [[[[[[[[[]]]]]]]]]}'
        )
        assert shallow["error"]["code"] == "malformed"
        wrong = await police.command(site, "count", {"site_id": "zz-other-site-002"})
        assert wrong["ok"] is False and wrong["error"]["code"] == "invalid"
        wrong2 = await police.command(site, "count", {"site": {"id": "zz-other-site-002"}})
        assert wrong2["error"]["code"] == "invalid"
        assert runs == []
        ours = await police.command(site, "count", {"site_id": site})
        assert ours["ok"] is True and len(runs) == 1

        # The same request_id twice: it runs once, and both times gets the same answer.
        once = await police.command(site, "count", {"request_id": "rep-1"})
        again = await police.command(site, "count", {"request_id": "rep-1"})
        assert len(runs) == 2 and once == again

        # A retained command: runs when it arrives live, never again on a reconnect.
        topic = f"{hub.prefix}/commands/count"
        await _publish(broker, topic, json.dumps({"request_id": "ret-1"}).encode(), True)
        await wait_until(lambda: len(runs) == 3, what="the live command ran")
        repeats = _rejected(hub, "command", "repeat")
        broker.stop()
        await wait_until(lambda: not hub.police.state.connected, what="link down")
        broker.start()
        await wait_until(lambda: hub.police.state.connects >= 2, within=30, what="reconnect")
        # The broker replays its retained copy at subscription: seen, not run.
        await wait_until(lambda: _rejected(hub, "command", "repeat") > repeats, what="replay")
        assert len(runs) == 3
        await _publish(broker, topic, b"", True)  # clear it
    assert_no_violations(police)


async def test_a_command_retained_before_the_hub_started_is_answered_and_never_run(
    broker: LocalMosquitto, tmp_path: Path
) -> None:
    cfg = make_site(broker_url=broker.url, data_dir=tmp_path)
    site = cfg.site.id
    topic = f"{cfg.topic_prefix}/commands/count"
    await _publish(broker, topic, json.dumps({"request_id": "old-1"}).encode(), True)
    async with PolicePlatform(broker.url, site=site) as police:
        await police.connected.wait()
        async with Hub(cfg) as hub:
            runs = _counting(hub)
            # The command is registered after the hub subscribed: reconnect to be sure the
            # retained copy meets the handler.
            broker.stop()
            await wait_until(lambda: not hub.police.state.connected, what="link down")
            broker.start()
            await wait_until(lambda: hub.police.state.connected, within=30, what="link up")
            view = police.view(site)
            await police.wait_for(lambda: "old-1" in view.responses, within=15)
            answer = view.responses["old-1"]
            assert answer["ok"] is False and answer["error"]["code"] == "invalid"
            assert runs == []


def _topics(hub: Hub) -> dict[str, list[str]]:
    """The topics to feed for every subscription of the hub: a subscription this test does
    not know fails it, so a new one cannot go without hostile input."""
    fed = {
        f"{hub.prefix}/receipts": ("receipts", [f"{hub.prefix}/receipts"]),
        # every command a service registered, and one nobody did
        f"{hub.prefix}/commands/+": (
            "commands",
            [f"{hub.prefix}/commands/{n}" for n in [*sorted(hub.police.inbox.handlers), "nope"]],
        ),
    }
    assert set(hub.police.subscriptions) == set(fed), hub.police.subscriptions
    return dict(fed.values())


COMMAND = {"request_id": "h-1", "event_id": "0193a9c2-7f1e-7c3a-9a57-2f4b8e1d6a10", "by": "x"}
RECEIPT = {"event_id": "0193a9c2-7f1e-7c3a-9a57-2f4b8e1d6a10", "received_at": "x", "by": "p"}


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    receipts=st.lists(st.one_of(hostile_documents(RECEIPT), hostile_payloads()), max_size=8),
    commands=st.lists(st.one_of(hostile_documents(COMMAND), hostile_payloads()), max_size=8),
    retain=st.booleans(),
)
def test_hostile_values_on_every_subscription_never_stop_forwarding(
    receipts: list[bytes], commands: list[bytes], retain: bool
) -> None:
    asyncio.run(_hostile_scenario(receipts, commands, retain))


async def _hostile_scenario(receipts: list[bytes], commands: list[bytes], retain: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = LocalMosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            cfg = make_site(broker_url=broker.url, data_dir=Path(tmp))
            site = cfg.site.id
            async with police_and_hub(cfg, broker.url) as (police, hub):
                fed = _topics(hub)
                async with aiomqtt.Client("127.0.0.1", broker.port) as peer:
                    for payload in receipts:
                        await peer.publish(fed["receipts"][0], payload, qos=1, retain=retain)
                    for i, payload in enumerate(commands):
                        topic = fed["commands"][i % len(fed["commands"])]
                        await peer.publish(topic, payload, qos=1, retain=retain)
                    # A well-formed command after them is still answered...
                    await peer.publish(
                        f"{hub.prefix}/commands/compliance",
                        json.dumps({"request_id": "after-the-storm"}),
                        qos=1,
                    )
                view = police.view(site)
                await police.wait_for(lambda: "after-the-storm" in view.responses, within=30)
                # ...and events still flow on the same connection.
                await _still_flowing(hub, police, site)
            assert_no_violations(police)
        finally:
            broker.stop()
