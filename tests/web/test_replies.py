"""Answers the console repeats are kept between requests (``hub.web.replycache``), and a
kept answer is the one the store would give: a change shows on the next request."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from hub.compliance.report import report_json
from hub.store.writer import MarkPublished, StoreEvent
from hub.web import queries
from hub.web.replycache import DEVICES_MAX_AGE_S, METRICS_MAX_AGE_S, ReplyCache
from tests.web.webtest import WebHub


def bearer(wh: WebHub, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {wh.tokens[role]}"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _devices(s: aiohttp.ClientSession, h: dict[str, str]) -> dict[str, Any]:
    async with s.get("/api/v1/devices", headers=h) as r:
        assert r.status == 200 and r.content_type == "application/json"
        return dict(await r.json())


def _by_id(reply: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in reply["items"]}


async def test_the_kept_devices_list_is_the_stores_and_follows_its_changes(wh: WebHub) -> None:
    h = bearer(wh, "technician")
    async with aiohttp.ClientSession(wh.url) as s:
        first = await _devices(s, h)
        again = await _devices(s, h)
        # The same answer as reading the store now, whether kept or not.
        fresh = await queries.devices(wh.hub.engine, wh.hub.index)
        assert first == again
        assert first["items"] == json.loads(json.dumps(fresh, ensure_ascii=False))
        assert _by_id(first)["btn-gate-1"]["test_mode_until"] is None

        # Test mode starts: the very next list shows it; it ends: the next one shows that.
        async with s.post(
            "/api/v1/test-mode", json={"target": "btn-gate-1", "minutes": 10}, headers=h
        ) as r:
            assert r.status == 201, await r.text()
        assert _by_id(await _devices(s, h))["btn-gate-1"]["test_mode_until"] is not None
        async with s.delete("/api/v1/test-mode/btn-gate-1", headers=h) as r:
            assert r.status == 200
        assert _by_id(await _devices(s, h))["btn-gate-1"]["test_mode_until"] is None

        # A probe's outcome (nothing listens on the camera's port) shows once it is stored.
        before = _by_id(await _devices(s, h))["cam-gate-1"]["last_probe_at"]
        async with s.post("/api/v1/devices/cam-gate-1/probe", headers=h) as r:
            assert r.status == 202, await r.text()
        async with asyncio.timeout(15):
            while True:
                cam = _by_id(await _devices(s, h))["cam-gate-1"]
                if cam["last_probe_at"] != before:
                    break
                await asyncio.sleep(0.05)
        stored = await queries.device(wh.hub.engine, wh.hub.index, "cam-gate-1")
        assert stored is not None and cam["last_probe_at"] is not None
        assert stored["last_probe_at"] >= cam["last_probe_at"]
        async with s.get("/api/v1/devices", params={"not_online": "true"}, headers=h) as r:
            filtered = await r.json()
        assert "cam-gate-1" in _by_id(filtered)
        assert all(d["state"] != "online" for d in filtered["items"])
        assert filtered["counts"] == (await _devices(s, h))["counts"]


async def test_the_compliance_reply_is_the_services_latest_result(wh: WebHub) -> None:
    h = bearer(wh, "viewer")
    async with aiohttp.ClientSession(wh.url) as s:
        async with s.get("/api/v1/compliance", headers=h) as r:
            assert r.status == 200
            shown = await r.json()
        latest = wh.hub.compliance.latest
        assert latest is not None
        assert shown == json.loads(json.dumps(report_json(latest), ensure_ascii=False))
        # A new evaluation is a new result: the next reply is its report.
        newer = await wh.hub.compliance.evaluate_now()
        assert newer is not latest and wh.hub.compliance.latest is newer
        async with s.get("/api/v1/compliance", headers=h) as r:
            assert (await r.json())["at"] == report_json(newer)["at"]


def test_metrics_are_rendered_at_most_once_a_second() -> None:
    clock = Clock()
    cache = ReplyCache(clock=clock)
    renders: list[bytes] = []

    def render() -> bytes:
        renders.append(f"mallhub_x {len(renders)}\n".encode())
        return renders[-1]

    assert cache.metrics(render) == b"mallhub_x 0\n"
    clock.now += METRICS_MAX_AGE_S / 2
    assert cache.metrics(render) == b"mallhub_x 0\n"
    clock.now += METRICS_MAX_AGE_S / 2
    assert cache.metrics(render) == b"mallhub_x 1\n"
    assert len(renders) == 2


class _Writer:
    def __init__(self) -> None:
        self.listeners: list[Any] = []

    def add_listener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def commit(self, *ops: Any) -> None:
        for listener in self.listeners:
            listener([(op, None) for op in ops])


def test_kept_devices_end_with_a_device_commit_a_test_mode_or_their_age() -> None:
    clock = Clock()
    cache = ReplyCache(clock=clock)
    writer = _Writer()
    cache.watch(writer)  # type: ignore[arg-type]
    cache.watch(writer)  # type: ignore[arg-type]
    assert len(writer.listeners) == 1
    now = datetime(2026, 1, 1, tzinfo=UTC)
    item = {"id": "cam-1", "state": "online", "test_mode_until": None}
    kept = cache.keep_devices([item], cache.generation)
    assert kept.counts == {"online": 1}
    assert cache.devices(now) is kept

    # Alarms and publication marks do not touch devices; anything else may.
    alarm = StoreEvent.__new__(StoreEvent)
    mark = MarkPublished.__new__(MarkPublished)
    writer.commit(alarm, mark)
    assert cache.devices(now) is kept
    writer.commit(alarm, object())
    assert cache.devices(now) is None

    # Read while a commit was in flight: never served.
    stale = cache.generation
    writer.commit(object())
    cache.keep_devices([item], stale)
    assert cache.devices(now) is None

    until = now + timedelta(minutes=10)
    tested = {**item, "test_mode_until": until.isoformat().replace("+00:00", "Z")}
    kept = cache.keep_devices([tested], cache.generation)
    assert cache.devices(until - timedelta(seconds=1)) is kept
    assert cache.devices(until) is None

    kept = cache.keep_devices([item], cache.generation)
    clock.now += DEVICES_MAX_AGE_S
    assert cache.devices(now) is None
