"""A scrape after a scripted scenario carries the hub's series with the right values."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path
from typing import Any, cast

from prometheus_client.parser import text_string_to_metric_families

from hub.broker import LocalMosquitto
from hub.health.service import HealthService
from hub.metrics import Metrics
from simulators.camera import CameraFarm
from tests.e2e.hubtest import assert_no_violations, event, police_and_hub
from tests.health.mall import MANUAL, USER, camera_entry, health
from tests.support.sites import make_site
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: Metrics) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_scrape_after_a_scripted_scenario(broker: LocalMosquitto, tmp_path: Path) -> None:
    password = secrets.token_urlsafe(12)
    async with CameraFarm.uniform(1, username=USER, password=password) as farm:
        cfg = make_site(
            broker_url=broker.url,
            data_dir=tmp_path,
            cameras=[camera_entry("cam-gate-1", farm[0], password)],
            health=health(**MANUAL),
        )
        async with police_and_hub(cfg, broker.url) as (police, hub):
            metrics = hub.metrics
            h = hub.health
            assert isinstance(metrics, Metrics) and isinstance(h, HealthService)

            await h.probe_now(["cam-gate-1"])
            await h.probe_now(["cam-gate-1"])
            await h.scheduler.run_now("video:cam-gate-1")
            for e in (event("alarm.panic"), event("alarm.panic"), event("info.test")):
                await hub.ingest(e)
            view = police.view(cfg.site.id)
            await police.wait_for(lambda: len(view.events) == 3)
            await wait_until(lambda: hub.police.state.receipts >= 3, what="receipts")
            _, writer = await asyncio.open_connection("127.0.0.1", hub.sia.tcp_port)
            writer.write(b'\n00000016"SIA-DCS"0001L0#1234[]\r')  # CRC 0000 is wrong
            await writer.drain()
            await wait_until(lambda: hub.sia.stats.rejections["crc"] == 1)
            writer.close()

            async def drained() -> bool:
                await h.scheduler.run_now("police")
                return metrics.outbox_depth == 0

            await wait_until(drained, what="outbox drained")
            s = scrape(metrics)

            cam = {"device": "cam-gate-1", "type": "camera", "floor": "1F"}
            cam |= {"zone": "main-gate", "role": "gate"}
            assert value(s, "mallhub_device_state", **cam, state="online") == 1
            assert value(s, "mallhub_device_state", **cam, state="offline") == 0
            panel = {"device": "panel-1", "type": "alarm_panel", "floor": "1F"}
            panel |= {"zone": "security-office", "role": "duty_room"}
            assert value(s, "mallhub_device_state", **panel, state="unknown") == 1
            assert value(s, "mallhub_device_up", **cam) == 1

            assert value(s, "mallhub_events_ingested_total", kind="alarm.panic") == 2
            assert value(s, "mallhub_events_ingested_total", kind="info.test") == 1
            assert value(s, "mallhub_events_forwarded_total", kind="alarm.panic") == 2
            assert value(s, "mallhub_events_forwarded_total", kind="info.test") == 1
            assert value(s, "mallhub_police_receipt_latency_seconds_count") == 3
            assert value(s, "mallhub_police_link_up") == 1
            assert value(s, "mallhub_outbox_depth") == 0
            assert value(s, "mallhub_outbox_oldest_age_seconds") == 0
            assert value(s, "mallhub_sia_rejections_total", reason="crc") == 1

            assert (value(s, "mallhub_probe_latency_seconds_count", type="camera") or 0) >= 2
            assert (value(s, "mallhub_probes_total", type="camera", result="ok") or 0) >= 2
            for check in ("covered", "black", "signal_loss"):
                assert value(s, "mallhub_video_check_ok", device="cam-gate-1", check=check) == 1
                score = value(s, "mallhub_video_check_score", device="cam-gate-1", check=check)
                assert score is not None
            rules = {
                (dict(k[1])["rule"], dict(k[1])["status"]): v
                for k, v in s.items()
                if k[0] == "mallhub_compliance_rule_status"
            }
            latest = hub.compliance.latest
            assert latest is not None
            for r in latest.rules:
                assert rules[(r.rule_id, r.status)] == 1
            assert value(s, "mallhub_compliance_overall", status=latest.overall) == 1

            # The Grafana dashboard only charts series the hub exports.
            dashboard = (ROOT / "config/grafana/mallhub-dashboard.json").read_text("utf-8")
            charted = set(re.findall(r"mallhub_[a-z_]+", dashboard))
            assert charted <= {name for name, _ in s}, charted - {name for name, _ in s}
        assert_no_violations(police)


def test_per_event_maps_stay_bounded_when_no_receipt_ever_comes() -> None:
    """A platform that never sends receipts must not grow the hub's memory per event."""
    from datetime import UTC, datetime

    from hub.metrics import _TRACKED_EVENTS, Metrics
    from hub.store.writer import MarkPublished, StoredEvent, StoreEvent

    m = Metrics()
    total = _TRACKED_EVENTS + 500
    now = datetime.now(UTC)
    for i in range(total):
        eid = f"ev-{i}"
        stored = StoredEvent(eid, i + 1, "alarm.panic", "alarm", 1, "btn", now, {})
        m.on_commit([(StoreEvent(cast(Any, None)), stored)])
        m.on_commit([(MarkPublished([i], [eid], now), None)])
    assert len(m._published) == _TRACKED_EVENTS  # the newest, awaiting a receipt
    assert len(m._forwarded_seen) == _TRACKED_EVENTS
    assert not m._kinds  # every kind was taken when its event was published
    assert m.forwarded.labels("alarm.panic")._value.get() == total
