"""The patrol service's /metrics: guarded by a bearer token from the environment (404 while
none is configured, 401 without the right one), Prometheus text that parses, the workers'
counters of this process, refusals under a short fixed reason whatever a hub sent, and the
store's gauges read at most once per second."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.config import ConfigError
from patrol.config import PatrolConfig, parse_patrol_config
from patrol.consumer import MAX_REASONS, OTHER_REASONS, ConsumerStats
from patrol.metrics import REFUSED_LABELS, STORE_MAX_AGE_S, refused_label
from patrol.natsnode import NatsCluster
from patrol.service import PatrolService
from simulators.city import EmulatedHub, MallSpec
from tests.support.wait import wait_until

SITE = "zz-metrics-001"
QUIET = "zz-metrics-002"
TOKEN_ENV = "PATROL_TEST_METRICS_TOKEN"
EVIL = 'evil"} 1\n# HELP'
"""A marker that must never reach the exposition (it would break or forge series)."""


def _config(cluster: NatsCluster, tmp_path: Path, token: str | None) -> PatrolConfig:
    data: dict[str, Any] = {
        "nats": {"servers": cluster.urls, "replicas": len(cluster.nodes)},
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'patrol.db'}",
        "http": {"port": 0},
        "malls": [
            {"site_id": SITE, "name": "指标商场", "district": "中原区"},
            {"site_id": QUIET, "name": "未联网商场", "district": "中原区"},
        ],
    }
    if token is None:
        return parse_patrol_config(data, env={})
    return parse_patrol_config({**data, "metrics_token_env": TOKEN_ENV}, env={TOKEN_ENV: token})


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    value = secrets.token_urlsafe(24)
    monkeypatch.setenv(TOKEN_ENV, value)
    return value


@pytest.fixture
async def service(
    nats_node: NatsCluster, tmp_path: Path, token: str
) -> AsyncIterator[PatrolService]:
    async with PatrolService(_config(nats_node, tmp_path, token)) as svc:
        yield svc


def _families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name → {sorted labels: value}, samples of every family (counters as ``…_total``)."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


async def _scrape(url: str, token: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        return r.status, await r.text()


async def test_metrics_show_stored_events_and_refusals_by_fixed_reason(
    service: PatrolService, token: str
) -> None:
    assert service.nc is not None and service.web is not None
    js = service.nc.jetstream()
    alarm = EmulatedHub(MallSpec(SITE, "指标商场", "中原区"), "127.0.0.1", 0).event(
        "alarm.panic", 1, "一键报警", "panic", "btn-000"
    )
    await js.publish(f"mallhub.v1.{SITE}.events.alarm", json.dumps(alarm).encode())
    await js.publish(f"mallhub.v1.{SITE}.events.alarm", b"{not json")
    hostile_notice = {"notice_id": "ZG-1", "site_id": SITE, EVIL: EVIL}
    await js.publish(f"mallhub.v1.{SITE}.notices.ZG-1", json.dumps(hostile_notice).encode())
    url = service.web.url

    async def counted() -> bool:
        status, text = await _scrape(url, token)
        assert status == 200, text
        f = _families(text)
        refused = f.get("patrol_messages_refused_total", {})
        return (
            f.get("patrol_events_stored_total", {}).get((), 0) >= 1
            and refused.get((("reason", "not_json"),), 0) >= 1
            and refused.get((("reason", "schema_invalid"),), 0) >= 1
            and f["patrol_open_alarms"][(("priority", "1"),)] == 1
        )

    await wait_until(counted, within=30, what="the alarm and the refusals in /metrics")
    status, text = await _scrape(url, token)
    assert status == 200
    assert EVIL.splitlines()[0] not in text and "evil" not in text
    f = _families(text)
    assert f["patrol_workers"][()] == service.n_workers >= 1
    assert f["patrol_store_up"][()] == 1
    assert f["patrol_messages_received_total"][()] >= 3
    assert f["patrol_messages_invalid_total"][()] >= 2
    assert {dict(k)["reason"] for k in f["patrol_messages_refused_total"]} == set(REFUSED_LABELS)
    assert (
        sum(f["patrol_messages_refused_total"].values()) == (f["patrol_messages_invalid_total"][()])
    )
    # The mall that sent the alarm is known to the store; the configured one that never
    # sent anything counts as unknown.
    malls = {dict(k)["state"]: v for k, v in f["patrol_malls"].items()}
    assert malls["unknown"] >= 1 and sum(malls.values()) == 2


async def test_metrics_need_the_bearer_token(service: PatrolService, token: str) -> None:
    assert service.web is not None
    url = service.web.url
    wrong = [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {token}x"},
        {"Authorization": f"Bearer {token[:-1]}"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": token},
    ]
    async with aiohttp.ClientSession() as http:
        for headers in wrong:
            async with http.get(f"{url}/metrics", headers=headers) as r:
                assert r.status == 401, headers
                body = await r.json()
                assert body["error"] == "unauthenticated"
                assert token not in json.dumps(body)
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
        async with http.get(f"{url}/metrics", headers={"Authorization": f"bearer  {token}"}) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
    assert token not in text
    assert "patrol_workers" in _families(text)


async def test_metrics_answer_404_when_no_token_is_configured(
    nats_node: NatsCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, secrets.token_urlsafe(24))  # set, but not named
    async with PatrolService(_config(nats_node, tmp_path, None)) as svc:
        assert svc.web is not None
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": f"Bearer {secrets.token_urlsafe(24)}"}):
                async with http.get(f"{svc.web.url}/metrics", headers=headers) as r:
                    assert r.status == 404
                    assert (await r.json())["error"] == "not_found"


async def test_a_web_only_process_serves_no_worker_counters(
    nats_node: NatsCluster, tmp_path: Path, token: str
) -> None:
    async with PatrolService(_config(nats_node, tmp_path, token), workers=0) as svc:
        assert svc.web is not None
        status, text = await _scrape(svc.web.url, token)
    assert status == 200
    f = _families(text)
    assert f["patrol_workers"][()] == 0
    assert "patrol_events_stored_total" not in f and "patrol_messages_refused_total" not in f
    assert f["patrol_store_up"][()] == 1 and "patrol_malls" in f


async def test_the_store_is_read_at_most_once_per_interval(
    nats_node: NatsCluster, tmp_path: Path, token: str
) -> None:
    clock = [1000.0]
    async with PatrolService(_config(nats_node, tmp_path, token), workers=0) as svc:
        assert svc.metrics is not None
        m = svc.metrics
        m.clock = lambda: clock[0]
        for _ in range(5):
            await m.render()
        assert m.store_reads == 1
        clock[0] += STORE_MAX_AGE_S / 2
        await m.render()
        assert m.store_reads == 1
        clock[0] += STORE_MAX_AGE_S
        await m.render()
        assert m.store_reads == 2


def test_a_metrics_token_env_that_is_unset_or_short_is_a_config_error(
    nats_node: NatsCluster, tmp_path: Path
) -> None:
    data = {
        "nats": {"servers": nats_node.urls},
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        "metrics_token_env": TOKEN_ENV,
    }
    for env in ({}, {TOKEN_ENV: "tok-9f3a"}):
        with pytest.raises(ConfigError) as exc:
            parse_patrol_config(data, env=env)
        assert exc.value.errors[0][0] == "metrics_token_env"
        assert "tok-9f3a" not in str(exc.value.errors)
    with pytest.raises(ConfigError):
        parse_patrol_config({**data, "metrics_token_env": "NOT A NAME"}, env={})


@pytest.mark.parametrize(
    "reason",
    [
        EVIL,
        "payload is not JSON" + EVIL,
        "notice schema: (root): 'x' is not valid" + EVIL,
        "not storable: " + EVIL,
        "",
        "\x00",
    ],
)
def test_any_reason_becomes_one_of_the_fixed_labels(reason: str) -> None:
    assert refused_label(reason) in REFUSED_LABELS
    assert all(label.replace("_", "").isalpha() for label in REFUSED_LABELS)


def test_known_reasons_have_their_own_labels() -> None:
    assert refused_label("payload is not JSON") == "not_json"
    assert refused_label("notice schema: (root): 'schema' is a required property") == (
        "schema_invalid"
    )
    assert refused_label("not storable: IntegrityError") == "not_storable"
    assert refused_label("something new") == "other"


def test_distinct_reasons_kept_apart_are_bounded() -> None:
    stats = ConsumerStats()
    for i in range(MAX_REASONS + 50):
        stats.count_refused(f"notice schema: {i}")
    assert len(stats.refused) == MAX_REASONS + 1
    assert stats.refused[OTHER_REASONS] == 50
    assert stats.invalid == sum(stats.refused.values()) == MAX_REASONS + 50
