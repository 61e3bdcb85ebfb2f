"""Alarms first (hub/web/share.py): the console's reads take turns while the alarm path is
busy. The decisions with a clock the tests move; then a real hub over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.broker import LocalMosquitto
from hub.config import ConfigError, parse_config
from hub.ingest import AlarmActivity
from hub.web.api import authenticate
from hub.web.share import POLL_S, ConsoleShare, governed
from tests.support.sites import make_site, site_dict
from tests.support.wait import wait_until
from tests.web.webtest import web_hub


class Flag:
    def __init__(self, value: bool) -> None:
        self.value = value

    def __call__(self) -> bool:
        return self.value


def governor(
    busy: bool = True, share: float = 0.1, max_wait_s: float = 2.0
) -> tuple[ConsoleShare, Flag, list[tuple[float, bool]]]:
    flag = Flag(busy)
    waits: list[tuple[float, bool]] = []
    g = ConsoleShare(
        share,
        flag,
        max_wait_s=max_wait_s,
        clock=lambda: 0.0,
        on_wait=lambda s, o: waits.append((s, o)),
    )
    return g, flag, waits


# --- the decisions -------------------------------------------------------------------------


def test_idle_alarm_path_lets_every_read_start_at_once() -> None:
    g, _, waits = governor(busy=False)
    tickets = [g.arrive(0.0) for _ in range(3)]
    assert [g.turn(t, 0.0) for t in tickets] == [0.0, 0.0, 0.0]
    assert g.running == 3 and g.peak == 3
    assert g.delayed == 0 and waits == []
    for t in tickets:
        g.finish(t, 0.5)
    # Nothing was charged: a read arriving now starts at once even after the alarms begin.
    assert g.running == 0


def test_busy_second_read_waits_until_the_share_allows() -> None:
    g, _, waits = governor(share=0.1)
    a = g.arrive(0.0)
    assert g.turn(a, 0.0) == 0.0
    b = g.arrive(0.001)
    assert g.turn(b, 0.001) > 0  # one at a time
    g.finish(a, 0.010)  # 10 ms of console: the next may start 90 ms later
    assert g.turn(b, 0.050) == pytest.approx(POLL_S)
    assert g.turn(b, 0.080) == pytest.approx(0.020)
    assert g.turn(b, 0.0999) > 0
    assert g.turn(b, 0.100) == 0.0
    assert g.running == 1 and g.peak == 1
    assert g.delayed == 1 and g.delay_s == pytest.approx(0.099)
    assert len(waits) == 1 and waits[0][0] == pytest.approx(0.099) and not waits[0][1]


def test_reads_take_the_turn_in_arrival_order() -> None:
    g, _, _ = governor(share=0.5)
    a, b, c = g.arrive(0.0), g.arrive(0.0), g.arrive(0.0)
    assert g.turn(a, 0.0) == 0.0
    g.finish(a, 0.01)
    assert g.turn(c, 0.5) > 0  # free and due, but b came first
    assert g.turn(b, 0.5) == 0.0
    assert g.turn(c, 0.5) > 0  # b holds the turn
    g.finish(b, 0.51)
    assert g.turn(c, 0.52) == 0.0
    assert g.peak == 1 and g.waiting == 0


def test_after_the_longest_wait_a_read_skips_the_pause_but_still_takes_its_turn() -> None:
    g, _, waits = governor(share=0.1, max_wait_s=2.0)
    a = g.arrive(0.0)
    g.turn(a, 0.0)
    b, c = g.arrive(0.1), g.arrive(0.1)
    g.finish(a, 0.5)  # 0.5 s of console: the pause would be 4.5 s, capped at 2 s
    assert 0 < g.turn(b, 2.0) <= 0.1 + 1e-9  # woken again at its deadline
    assert g.turn(b, 2.1) == 0.0  # waited 2 s: no pause for it
    assert g.turn(c, 2.1) > 0  # but one at a time
    g.finish(b, 2.2)
    assert g.turn(c, 2.2) == 0.0  # also past its deadline: at once, after b
    assert g.peak == 1 and g.overdue == 2
    assert [o for _, o in waits] == [True, True]


def test_a_read_served_too_long_no_longer_holds_the_turn() -> None:
    g, _, _ = governor(share=0.5, max_wait_s=2.0)
    a = g.arrive(0.0)
    g.turn(a, 0.0)  # never answered in time
    b = g.arrive(0.0)
    assert 0 < g.turn(b, 1.99) <= POLL_S + 1e-9
    assert g.turn(b, 2.0) == 0.0
    assert g.running == 2 and g.overdue == 1
    g.finish(a, 3.0)  # the slow one ends: b keeps the turn
    c = g.arrive(3.0)
    assert g.turn(c, 3.0) > 0
    g.finish(b, 3.1)  # 1.1 s: the pause is 1.1 s
    assert g.turn(c, 4.1) > 0
    assert g.turn(c, 4.2) == 0.0 and g.overdue == 1


def test_the_alarm_path_going_idle_frees_the_waiting_reads() -> None:
    g, flag, waits = governor()
    a = g.arrive(0.0)
    g.turn(a, 0.0)
    b, c = g.arrive(0.0), g.arrive(0.0)
    assert g.turn(b, 0.1) > 0 and g.turn(c, 0.1) > 0
    flag.value = False
    assert g.turn(c, 0.2) == 0.0 and g.turn(b, 0.2) == 0.0
    assert g.running == 3 and g.overdue == 0
    assert [w for w, _ in waits] == [pytest.approx(0.2), pytest.approx(0.2)]


def test_share_one_turns_it_off() -> None:
    g, _, _ = governor(share=1.0)
    tickets = [g.arrive(0.0) for _ in range(4)]
    assert [g.turn(t, 0.0) for t in tickets] == [0.0] * 4
    assert g.delayed == 0


@pytest.mark.parametrize("share", [0.0, -0.1, 1.01])
def test_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError):
        ConsoleShare(share, lambda: True)


def test_which_requests_take_turns() -> None:
    for path in ("/", "/console", "/events", "/api/v1/events", "/api/v1/devices", "/metrics"):
        assert governed("GET", path), path
    assert governed("HEAD", "/api/v1/events")
    for path in ("/healthz", "/readyz", "/static/console.js", "/api/v1/live", "/snapshots/7"):
        assert not governed("GET", path), path
    for method, path in (("POST", "/api/v1/session"), ("POST", "/login"), ("POST", "/x/ack")):
        assert not governed(method, path)


def test_alarm_activity_is_busy_while_storing_and_shortly_after() -> None:
    now = [10.0]
    act = AlarmActivity(linger_s=0.5, monotonic=lambda: now[0])
    assert not act.busy()
    with act.working():
        now[0] = 20.0
        assert act.busy()
    assert act.busy()
    now[0] = 20.49
    assert act.busy()
    now[0] = 20.5
    assert not act.busy()


# --- waiting on the loop: cancellation -----------------------------------------------------


def _blocking(gate: asyncio.Event, log: list[str], name: str) -> Callable[[Any], Awaitable[Any]]:
    async def handler(request: Any) -> Any:
        log.append(name)
        await gate.wait()
        return name

    return handler


async def test_a_cancelled_read_hands_its_turn_on() -> None:
    g, _, _ = governor(max_wait_s=60.0)  # the clock stands still: nothing is ever overdue
    gate, log = asyncio.Event(), list[str]()
    a = asyncio.create_task(g.serve(None, _blocking(gate, log, "a")))  # type: ignore[arg-type]
    await wait_until(lambda: log == ["a"])
    b = asyncio.create_task(g.serve(None, _blocking(gate, log, "b")))  # type: ignore[arg-type]
    c = asyncio.create_task(g.serve(None, _blocking(gate, log, "c")))  # type: ignore[arg-type]
    await wait_until(lambda: g.waiting == 2)
    b.cancel()  # gone while waiting: leaves the line
    await wait_until(lambda: g.waiting == 1)
    a.cancel()  # gone while served: hands the turn on
    await wait_until(lambda: log == ["a", "c"])
    assert g.running == 1 and g.peak == 1 and g.overdue == 0
    gate.set()
    assert await c == "c"
    assert a.cancelled() and b.cancelled()
    assert g.running == 0 and g.waiting == 0


# --- a real hub ----------------------------------------------------------------------------


def test_config_share_and_wait_are_checked(tmp_path: Path) -> None:
    cfg = make_site(broker_url="mqtt://127.0.0.1:1883", data_dir=tmp_path)
    assert cfg.http.console_share == 0.1 and cfg.http.console_max_wait_s == 2.0
    for bad in ({"console_share": 0}, {"console_share": 1.5}, {"console_max_wait_s": 0}):
        data = site_dict(broker_url="mqtt://127.0.0.1:1883", data_dir=tmp_path)
        data["http"].update(bad)
        with pytest.raises(ConfigError) as info:
            parse_config(data, env={})
        assert {p for p, _ in info.value.errors} == {f"http.{next(iter(bad))}"}


async def test_while_alarms_come_in_console_reads_take_turns_then_run_together_again(
    broker: LocalMosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = site_dict(broker_url=broker.url, data_dir=tmp_path)
    data["http"].update({"console_share": 0.5, "console_max_wait_s": 60})
    cfg = parse_config(data, env={})
    gate = asyncio.Event()
    gate.set()
    inside: list[str] = []

    async def held(request: Any, st: Any) -> Any:
        # Every API read passes here, inside its turn: the test holds them at will.
        inside.append(request.path)
        await gate.wait()
        return await authenticate(request, st)

    monkeypatch.setattr("hub.web.server.authenticate", held)
    async with web_hub(cfg, broker.url) as w, aiohttp.ClientSession(w.url) as http:
        share = w.hub.web.deps.share
        assert share is not None
        auth = {"Authorization": f"Bearer {w.tokens['viewer']}"}
        paths = ["/api/v1/events", "/api/v1/devices", "/metrics", "/api/v1/compliance"]

        async def get(path: str) -> int:
            async with http.get(path, headers=auth) as r:
                await r.read()
                return r.status

        # Alarms coming in: one read at a time, the others wait, all answered.
        with w.hub.ingest.activity.working():
            gate.clear()
            inside.clear()
            share.reset_peak()
            before = share.delayed
            reads = [asyncio.create_task(get(p)) for p in paths]
            await wait_until(lambda: share.running == 1 and share.waiting == 3 and len(inside) == 1)
            gate.set()
            assert await asyncio.gather(*reads) == [200] * 4
            assert share.peak == 1
            assert share.delayed - before == 3 and share.overdue == 0
            assert len(inside) == 4

        # The burst is over: the reads run together again, and none waits.
        await wait_until(lambda: not w.hub.ingest.activity.busy())
        gate.clear()
        inside.clear()
        before = share.delayed
        reads = [asyncio.create_task(get(p)) for p in paths]
        await wait_until(lambda: share.running == 4)
        assert sorted(inside) == sorted(paths)
        gate.set()
        assert await asyncio.gather(*reads) == [200] * 4
        assert share.delayed == before

        # The waits are counted for Prometheus.
        text = w.hub.metrics.render().decode()
        assert "mallhub_console_delayed_total 3.0" in text
        assert "mallhub_console_overdue_total 0.0" in text
