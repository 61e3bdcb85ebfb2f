"""Hostile input on every subject the patrol workers consume, over a real nats-server.

Whatever a hub (or anyone holding a hub's credentials) publishes under ``mallhub.v1.>``,
a worker must count what it refuses, acknowledge it (or terminate it) so that JetStream
does not redeliver it forever, and go on to store the next good message.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NatsClient
from sqlalchemy import select
from sqlalchemy.exc import DataError, OperationalError

from patrol import consumer
from patrol.consumer import (
    ORPHAN_REASON,
    UPDATE_DELIVERIES,
    ConsumerStats,
    Worker,
    ensure_stream,
)
from patrol.inspections import start_inspection
from patrol.models import InspectionRow, open_store
from patrol.natsnode import NatsCluster
from patrol.queries import list_alarms, list_malls
from patrol.service import PatrolService
from patrol.store import BatchOutcome, Incoming, PatrolStore
from simulators.city import EmulatedHub, MallSpec
from tests.patrol.citytest import patrol_config
from tests.support.hostile import deep_json, hostile_documents, hostile_payloads, to_json
from tests.support.nats import _need_nats_server
from tests.support.wait import wait_until


def _hub(site: str) -> EmulatedHub:
    return EmulatedHub(MallSpec(site, "测试商场", "金水区"), "127.0.0.1", 0)


def _notice(site: str, notice_id: str) -> dict[str, Any]:
    at = "2026-12-03T08:00:00Z"
    step = {"n": 1, "at": at, "action": "issued", "state": "open", "by": "李警官", "via": "police"}
    return {
        "schema": "mallhub/notice/1",
        "site_id": site,
        "notice_id": notice_id,
        "state": "open",
        "overdue": False,
        "finding": "北门摄像机画面被遮挡",
        "deadline": "2026-12-10T10:00:00Z",
        "officer": {"name": "李警官"},
        "issued_at": at,
        "updated_at": at,
        "version": 1,
        "steps": [step],
        "ts": at,
    }


def _valid(site: str, request_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """For every kind of subject a worker consumes: a subject and a valid message on it."""
    hub = _hub(site)
    alarm = hub.event("alarm.panic", 1, "一键报警", "panic", "btn-000")
    p = f"mallhub.v1.{site}"
    return {
        "status": (f"{p}.status", hub.status("online")),
        "event": (f"{p}.events.alarm", alarm),
        "update": (
            f"{p}.updates",
            {
                "event_id": alarm["event_id"],
                "update_seq": 1,
                "state": {"state": "acknowledged", "at": alarm["occurred_at"], "by": "x"},
            },
        ),
        "availability": (
            f"{p}.devices.cam-001.availability",
            hub.availability("cam-001", "offline"),
        ),
        "compliance": (f"{p}.compliance", hub.compliance()),
        "response": (
            f"{p}.responses.{request_id}",
            {"request_id": request_id, "ok": True, "result": {"items": []}},
        ),
        "notice": (f"{p}.notices.ZG-1", _notice(site, "ZG-1")),
    }


async def _publish(nc: NatsClient, subject: str, payload: bytes) -> None:
    # Through JetStream, so that the stream has stored it when this returns.
    await nc.jetstream().publish(subject, payload)


async def _good_alarm_stored(svc: PatrolService, nc: NatsClient, site: str) -> None:
    alarm = _hub(site).event("alarm.panic", 1, "一键报警", "panic", "btn-000")
    alarm["seq"] = 1_000
    await _publish(nc, f"mallhub.v1.{site}.events.alarm", json.dumps(alarm).encode())
    assert svc.store is not None
    engine = svc.store.engine

    async def stored() -> bool:
        return any(a["event_id"] == alarm["event_id"] for a in await list_alarms(engine))

    await wait_until(stored, within=30, what="the good alarm after the hostile ones")


async def _all_settled(svc: PatrolService, received: int) -> None:
    """Every message delivered once and acknowledged: nothing pending, nothing redelivered."""
    assert svc.nc is not None
    js = svc.nc.jetstream()
    await wait_until(lambda: svc.stats.received >= received, within=30, what="all received")

    async def settled() -> bool:
        info = await js.consumer_info(svc.config.nats.stream, svc.config.nats.durable)
        return bool(info.num_ack_pending == 0 and info.num_pending == 0)

    await wait_until(settled, within=30, what="every message acknowledged")
    info = await js.consumer_info(svc.config.nats.stream, svc.config.nats.durable)
    assert info.num_redelivered == 0
    # Only an update whose event never comes is redelivered, a bounded number of times.
    waits = 1 + (UPDATE_DELIVERIES - 1) * svc.stats.orphan_updates
    assert svc.stats.failed_batches == 0 and svc.stats.retried <= waits
    assert all(not t.done() for t in svc._tasks), "a worker task ended"


async def _inspect_request(svc: PatrolService, site: str) -> str:
    """An inspection waiting for its answer: the hostile responses reach its handler."""
    assert svc.store is not None and svc.nc is not None
    inspection_id = await start_inspection(
        svc.store,
        svc.nc,
        svc.config.inspections,
        site,
        officer="李警官",
        known_sites=frozenset({site}),
    )
    async with svc.store.engine.connect() as conn:
        rid = (
            await conn.execute(
                select(InspectionRow.request_id).where(InspectionRow.inspection_id == inspection_id)
            )
        ).scalar_one()
    return str(rid)


SITE = "zz-hostile-001"


def _surrogate(body: dict[str, Any], path: tuple[str, ...]) -> bytes:
    doc = json.loads(json.dumps(body))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = "\ud800"
    return to_json(doc)


async def test_known_hostile_messages_are_counted_acknowledged_and_the_next_is_stored(
    nats_node: NatsCluster, tmp_path: Path
) -> None:
    pc = patrol_config(nats_node, tmp_path, workers=1)
    async with PatrolService(pc, web=False) as svc:
        assert svc.nc is not None
        rid = await _inspect_request(svc, SITE)
        valid = _valid(SITE, rid)
        ev_subject, alarm = valid["event"]
        cases: list[tuple[str, bytes, str]] = [
            (ev_subject, deep_json(150_000, "dict"), "nested too deeply"),
            (ev_subject, deep_json(50, "field"), "nested too deeply"),
            (ev_subject, _surrogate(alarm, ("text", "zh")), "lone surrogate in a string"),
            (ev_subject, _surrogate(alarm, ("device", "id")), "lone surrogate in a string"),
            (ev_subject, to_json({**alarm, "kind": "a\x00b"}), "NUL character in a string"),
            (ev_subject, to_json({**alarm, "priority": 2**64}), "integer out of range"),
            (ev_subject, b"[1, 2]", "payload is not a JSON object"),
            (ev_subject, b"\xff\xfe{}", "payload is not JSON"),
            (ev_subject, b'{"a": NaN}', "payload is not JSON"),
            (ev_subject, b"1" * 5000, "payload is not JSON"),
            (
                ev_subject,
                to_json({**alarm, "site": {**alarm["site"], "id": "zz-other-002"}}),
                "site.id in the payload differs from the topic",
            ),
        ]
        for kind, (subject, body) in valid.items():
            cases.append((subject, deep_json(100_000, "list"), "nested too deeply"))
            cases.append((subject, to_json({**body, "site_id": "zz-other-002"}), "site_id"))
            if kind != "event":
                cases.append((subject, _surrogate(body, ("ts",)), "lone surrogate in a string"))
        # Values the intake lets through but the store cannot hold or must not believe:
        # extreme dates and numbers, wrong types. Counted only when they are refused; in any
        # case acknowledged once and never a failed batch.
        tolerated = [
            (ev_subject, to_json({**alarm, "occurred_at": "0001-01-01T00:00:00+14:00"})),
            (ev_subject, to_json({**alarm, "received_at": "9999-12-31T23:59:59-14:00"})),
            (ev_subject, to_json({**alarm, "seq": 2**62})),
            (ev_subject, to_json({**alarm, "priority": 10**12})),
            (ev_subject, to_json({**alarm, "event_id": ["x"]})),
            (valid["status"][0], to_json({**valid["status"][1], "state": ["online"]})),
            (
                valid["compliance"][0],
                to_json({**valid["compliance"][1], "evaluated_at": "9999-12-31T23:59:59-14:00"}),
            ),
            (
                valid["availability"][0],
                to_json({**valid["availability"][1], "since": "0001-01-01T00:00:00+14:00"}),
            ),
            (valid["update"][0], to_json({**valid["update"][1], "state": {"at": 10**40}})),
            (valid["response"][0], to_json({"request_id": rid, "ok": True, "result": 1e308})),
        ]
        for subject, payload, _ in cases:
            await _publish(svc.nc, subject, payload)
        for subject, payload in tolerated:
            await _publish(svc.nc, subject, payload)
        await _good_alarm_stored(svc, svc.nc, SITE)
        await _all_settled(svc, len(cases) + len(tolerated) + 1)
        assert svc.stats.invalid >= len(cases)
        for _, _, reason in cases:
            assert any(reason in r for r in svc.stats.refused), (reason, svc.stats.refused)
        # No bogus alarm was stored from the hostile ones: only the good one.
        assert svc.store is not None
        assert len(await list_alarms(svc.store.engine)) == 1


# --- the hostile-value strategy over every subject --------------------------------------------


@pytest.fixture(scope="module")
def shared_node() -> Iterator[NatsCluster]:
    """One nats-server for every example of the property below (a fresh store each)."""
    _need_nats_server()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = NatsCluster(Path(tmp) / "nats", 1)
        try:
            cluster.start()
            asyncio.run(cluster.wait_jetstream())
            yield cluster
        finally:
            cluster.stop()


KINDS = ["status", "event", "update", "availability", "compliance", "response", "notice"]
_TEMPLATES = _valid(SITE, "patrol-0000000000000000")


def _payloads_for(kind: str) -> st.SearchStrategy[bytes]:
    return st.one_of(hostile_documents(_TEMPLATES[kind][1]), hostile_payloads())


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(
    batch=st.lists(
        st.sampled_from(KINDS).flatmap(lambda k: st.tuples(st.just(k), _payloads_for(k))),
        min_size=1,
        max_size=12,
    ),
    subject_site=st.sampled_from([SITE, "zz-other-002", "zz.dotted", "x" * 100]),
)
def test_hostile_values_on_every_subject_never_stop_a_worker(
    shared_node: NatsCluster, batch: list[tuple[str, bytes]], subject_site: str
) -> None:
    asyncio.run(_hostile_scenario(shared_node, batch, subject_site))


async def _hostile_scenario(
    cluster: NatsCluster, batch: list[tuple[str, bytes]], subject_site: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pc = patrol_config(cluster, Path(tmp), workers=1)
        async with PatrolService(pc, web=False) as svc:
            assert svc.nc is not None
            rid = await _inspect_request(svc, SITE)
            subjects = {k: s for k, (s, _) in _valid(SITE, rid).items()}
            for kind, payload in batch:
                if len(payload) > svc.nc.max_payload:
                    continue  # the server refuses it: it never reaches a worker
                subject = subjects[kind].replace(f".{SITE}.", f".{subject_site}.", 1)
                await _publish(svc.nc, subject, payload)
            try:
                await _good_alarm_stored(svc, svc.nc, SITE)
                await _all_settled(svc, 2)
                _consistent(svc.stats)
            finally:
                # The next example starts from an empty stream.
                await svc.nc.jetstream().delete_stream(pc.nats.stream)


def _consistent(stats: ConsumerStats) -> None:
    assert stats.invalid == sum(stats.refused.values())


async def test_an_update_whose_event_never_comes_waits_then_is_counted_an_orphan(
    nats_node: NatsCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update for an event that is not stored waits a few deliveries for it, then is
    acknowledged and counted: it is never redelivered for ever, and it stops nothing."""
    monkeypatch.setattr(consumer, "UPDATE_DELIVERIES", 3)
    pc = patrol_config(nats_node, tmp_path, workers=1)
    async with PatrolService(pc, web=False) as svc:
        assert svc.nc is not None
        subject, update = _valid(SITE, "r-1")["update"]
        await _publish(svc.nc, subject, to_json(update))
        await _good_alarm_stored(svc, svc.nc, SITE)
        # While a NAKed message waits out its delay JetStream counts it neither pending nor
        # awaiting an ack: wait for the worker to let it go before asking if all is settled.
        await wait_until(lambda: svc.stats.orphan_updates >= 1, within=30, what="the orphan")
        await _all_settled(svc, 2)
        assert svc.stats.orphan_updates == 1
        # Delivered at most 3 times: waited (at most twice), then let go. JetStream may count
        # a delivery the worker never saw (one to a pull request that had just expired).
        assert 1 <= svc.stats.retried <= 2
        assert svc.stats.refused[ORPHAN_REASON] == 1
        _consistent(svc.stats)


async def test_an_update_that_comes_before_its_event_is_applied(
    nats_node: NatsCluster, tmp_path: Path
) -> None:
    """The wait is for the legitimate case: the update is applied once its event is there."""
    pc = patrol_config(nats_node, tmp_path, workers=1)
    async with PatrolService(pc, web=False) as svc:
        assert svc.nc is not None and svc.store is not None
        valid = _valid(SITE, "r-2")
        (up_subject, update), (ev_subject, event) = valid["update"], valid["event"]
        await _publish(svc.nc, up_subject, to_json(update))
        await wait_until(lambda: svc.stats.retried >= 1, within=30, what="the update waiting")
        await _publish(svc.nc, ev_subject, to_json(event))
        engine = svc.store.engine

        async def acknowledged() -> bool:
            rows = {a["event_id"]: a for a in await list_alarms(engine, state="all")}
            row = rows.get(event["event_id"])
            return row is not None and row["state"] == "acknowledged"

        await wait_until(acknowledged, within=30, what="the early update applied")
        assert svc.stats.orphan_updates == 0


async def test_hostile_retained_messages_do_not_stop_the_start(
    nats_node: NatsCluster, tmp_path: Path
) -> None:
    """What a hub left retained is read at every start: hostile copies are refused and the
    service starts, with the good ones applied."""
    bad_site, good_site = "zz-retained-bad", "zz-retained-good"
    bad = _hub(bad_site)
    status = bad.status("online")
    avail = bad.availability("cam-001", "offline")
    # One per retained topic (only the latest copy of a topic is kept).
    hostile: list[tuple[str, bytes]] = [
        ("status", _surrogate(status, ("version",))),
        ("compliance", deep_json(100_000, "list")),
        ("devices/cam-001/availability", to_json({**avail, "device_type": "\x00"})),
        ("devices/cam-002/availability", to_json({**avail, "since": "9999-12-31T23:59:59-14:00"})),
        ("notices/ZG-1", _surrogate(_notice(bad_site, "ZG-1"), ("finding",))),
        ("notices/ZG-2", deep_json(20_000, "field")),
    ]
    good = _hub(good_site).status("online")
    host, port = nats_node.mqtt_urls[0].removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port), identifier="hostile-hub") as c:
        for suffix, payload in hostile:
            await c.publish(f"mallhub/v1/{bad_site}/{suffix}", payload, qos=1, retain=True)
        await c.publish(f"mallhub/v1/{good_site}/status", json.dumps(good), qos=1, retain=True)
    pc = patrol_config(nats_node, tmp_path, workers=1)
    async with PatrolService(pc, web=False) as svc:
        assert svc.store is not None
        malls = {m["site_id"]: m for m in await list_malls(svc.store.engine)}
        assert malls[good_site]["state"] == "online"
        assert bad_site not in malls or malls[bad_site]["state"] != "online"
        assert svc.nc is not None
        await _good_alarm_stored(svc, svc.nc, good_site)


class FaultyStore(PatrolStore):
    """The real store with a fault switch: a message whose event_id is in ``poison`` makes
    the write fail as a value the database refuses would; ``outage`` fails the next writes
    as a lost database connection does."""

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.poison: set[str] = set()
        self.outage = 0

    async def write(self, items: Sequence[Incoming]) -> BatchOutcome:
        if self.outage:
            self.outage -= 1
            raise OperationalError("INSERT", {}, ConnectionError("the database went away"))
        if any(m.body.get("event_id") in self.poison for m in items):
            raise DataError("INSERT", {}, ValueError("value out of range for the column"))
        return await super().write(items)


async def test_a_message_the_store_refuses_is_terminated_alone_and_an_outage_is_retried(
    nats_node: NatsCluster, tmp_path: Path
) -> None:
    pc = patrol_config(nats_node, tmp_path, workers=1, batch=50)
    engine = await open_store(pc.database_url.get_secret_value())
    nc = await nats.connect(nats_node.urls[0])
    worker_task: asyncio.Task[None] | None = None
    try:
        await ensure_stream(nc.jetstream(), pc)
        store = FaultyStore(engine)
        hub = _hub(SITE)
        alarms = [hub.event("alarm.panic", 1, "一键报警", "panic", "btn-000") for _ in range(6)]
        store.poison = {alarms[2]["event_id"]}
        store.outage = 1
        for a in alarms:
            await _publish(nc, f"mallhub.v1.{SITE}.events.alarm", json.dumps(a).encode())
        worker = Worker(pc, store, nc)
        worker_task = asyncio.create_task(worker.run(), name="worker-under-test")

        async def others_stored() -> bool:
            return len(await list_alarms(engine)) == 5

        await wait_until(others_stored, within=60, what="the five good alarms stored")
        stored = {a["event_id"] for a in await list_alarms(engine)}
        assert alarms[2]["event_id"] not in stored
        assert stored == {a["event_id"] for a in alarms} - store.poison
        # The outage failed one batch, redelivered; the poisoned message was refused alone.
        assert worker.stats.failed_batches == 1
        assert worker.stats.refused["not storable: ValueError"] == 1

        async def settled() -> bool:
            info = await nc.jetstream().consumer_info(pc.nats.stream, pc.nats.durable)
            return bool(info.num_ack_pending == 0 and info.num_pending == 0)

        await wait_until(settled, within=30, what="every message acknowledged or terminated")
    finally:
        if worker_task is not None:
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
        await nc.close()
        await engine.dispose()
