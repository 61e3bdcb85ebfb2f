"""Event topics, parsers and the PullPoint subscription manager against the simulator."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from adapters.device_event import DeviceEvent
from adapters.onvif.driver import OnvifCamera
from adapters.onvif.events import (
    OnvifMessage,
    PullPointSubscriber,
    SubscriptionHealth,
    SubscriptionStatus,
    find_rule,
    message_from_notification,
    normalise_topic,
    parse_message,
)
from simulators.camera import SimCamera
from tests.onvif.conftest import Collector

# --- pure parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "tns1:RuleEngine/CellMotionDetector/Motion",
        "tns1:RuleEngine/CellMotionDetector/Motion/",
        "tns1:RuleEngine/CellMotionDetector/Motion//.",
        "tns1:RuleEngine/tns1:CellMotionDetector/tns1:Motion",
        " RuleEngine/CellMotionDetector/Motion ",
    ],
)
def test_normalise_topic(raw: str) -> None:
    assert normalise_topic(raw) == "RuleEngine/CellMotionDetector/Motion"


def test_wildcard_rules_match_subtopics_only_under_their_prefix() -> None:
    rule = find_rule("VideoSource/GlobalSceneChange/ImagingService")
    assert rule is not None and rule.kind == "alarm.tamper"
    assert find_rule("VideoSource/GlobalSceneChange") == rule
    too_dark = find_rule("VideoSource/ImageTooDark/AnalyticsService")
    assert too_dark is not None and too_dark.kind == "fault.video_quality"
    assert find_rule("VideoSource/Unrelated") is None


def _message(
    topic: str, data: dict[str, str], source: dict[str, str] | None = None
) -> OnvifMessage:
    return OnvifMessage(topic, None, "Changed", source or {"Source": "VS1"}, data)


@pytest.mark.parametrize(
    ("topic", "data", "kind", "active"),
    [
        ("tns1:RuleEngine/CellMotionDetector/Motion", {"IsMotion": "true"}, "info.motion", True),
        ("tns1:VideoSource/MotionAlarm", {"State": "false"}, "info.motion", False),
        ("tns1:RuleEngine/TamperDetector/Tamper", {"IsTamper": "true"}, "alarm.tamper", True),
        (
            "tns1:VideoSource/GlobalSceneChange/AnalyticsService",
            {"State": "1"},
            "alarm.tamper",
            True,
        ),
        (
            "tns1:VideoSource/ImageTooBright/ImagingService",
            {"State": "true"},
            "fault.video_quality",
            True,
        ),
        (
            "tns1:VideoSource/ImageTooBlurry/ImagingService",
            {"State": "true"},
            "fault.video_quality",
            True,
        ),
        ("tns1:VideoSource/SignalLoss", {"State": "true"}, "fault.video_loss", True),
        (
            "tns1:Device/Trigger/DigitalInput",
            {"LogicalState": "active"},
            "alarm.digital_input",
            True,
        ),
        ("tns1:Device/HardwareFailure/StorageFailure", {"Failed": "true"}, "fault.storage", True),
    ],
)
def test_parse_message(topic: str, data: dict[str, str], kind: str, active: bool) -> None:
    parsed = parse_message(_message(topic, data))
    assert parsed is not None
    assert (parsed.kind, parsed.active, parsed.token) == (kind, active, "VS1")


def test_parse_message_rejects_unknown_topic_and_unreadable_state() -> None:
    assert parse_message(_message("tns1:Vendor/HeartBeat", {"State": "true"})) is None
    assert parse_message(_message("tns1:VideoSource/SignalLoss", {"State": "maybe"})) is None
    assert parse_message(_message("tns1:VideoSource/SignalLoss", {})) is None


def test_message_from_unparsed_xml_element() -> None:
    body = ET.fromstring(
        '<tt:Message xmlns:tt="http://www.onvif.org/ver10/schema" UtcTime="2024-05-01T10:00:00"'
        ' PropertyOperation="Changed"><tt:Source><tt:SimpleItem Name="InputToken" Value="DI_3"/>'
        '</tt:Source><tt:Data><tt:SimpleItem Name="LogicalState" Value="true"/></tt:Data>'
        "</tt:Message>"
    )
    notification = SimpleNamespace(
        Topic=SimpleNamespace(_value_1="tns1:Device/Trigger/DigitalInput//."),
        Message=SimpleNamespace(_value_1=body),
    )
    message = message_from_notification(notification)
    assert message.utc_time == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    parsed = parse_message(message)
    assert parsed is not None
    assert (parsed.kind, parsed.active, parsed.token) == ("alarm.digital_input", True, "DI_3")


# --- against the simulator ------------------------------------------------------------------


@pytest.fixture
async def subscriber(
    camera: OnvifCamera, collector: Collector
) -> AsyncIterator[PullPointSubscriber]:
    async with PullPointSubscriber(
        camera, collector, pull_timeout_s=5.0, backoff_initial_s=0.05, backoff_max_s=0.2
    ) as sub:
        await _wait_status(sub, lambda s: s.health is SubscriptionHealth.OK)
        yield sub


async def _wait_status(
    sub: PullPointSubscriber, predicate: object, within_s: float = 10.0
) -> SubscriptionStatus:
    async with asyncio.timeout(within_s):
        return await sub.wait_for_status(predicate)  # type: ignore[arg-type]


def _of(events: list[DeviceEvent], kind: str) -> list[DeviceEvent]:
    return [e for e in events if e.kind == kind]


EXPECTED = [
    ("motion", "info.motion", "RuleEngine/CellMotionDetector/Motion", "VideoSourceConfig_1"),
    ("motion_alarm", "info.motion", "VideoSource/MotionAlarm", "VideoSource_1"),
    ("tamper", "alarm.tamper", "RuleEngine/TamperDetector/Tamper", "VideoSourceConfig_1"),
    (
        "scene_change",
        "alarm.tamper",
        "VideoSource/GlobalSceneChange/ImagingService",
        "VideoSource_1",
    ),
    ("too_dark", "fault.video_quality", "VideoSource/ImageTooDark/ImagingService", "VideoSource_1"),
    (
        "too_bright",
        "fault.video_quality",
        "VideoSource/ImageTooBright/ImagingService",
        "VideoSource_1",
    ),
    (
        "too_blurry",
        "fault.video_quality",
        "VideoSource/ImageTooBlurry/ImagingService",
        "VideoSource_1",
    ),
    ("signal_loss", "fault.video_loss", "VideoSource/SignalLoss", "VideoSource_1"),
    ("digital_input", "alarm.digital_input", "Device/Trigger/DigitalInput", "DigitalInput_1"),
    ("storage_failure", "fault.storage", "Device/HardwareFailure/StorageFailure", "Storage_1"),
]


@pytest.mark.parametrize("quirk", [None, "topic_suffix", "times_without_z"])
@pytest.mark.parametrize(("sim_kind", "kind", "topic", "token"), EXPECTED)
async def test_each_topic_becomes_a_device_event(
    sim: SimCamera,
    subscriber: PullPointSubscriber,
    collector: Collector,
    quirk: str | None,
    sim_kind: str,
    kind: str,
    topic: str,
    token: str,
) -> None:
    if quirk:
        sim.set_faults([quirk])
    sim.emit(sim_kind, True)
    sim.emit(sim_kind, False)
    events = await collector.wait_for(lambda ev: len(ev) >= 2)
    assert [(e.kind, e.state) for e in events] == [(kind, "start"), (kind, "stop")]
    start = events[0]
    assert start.device_id == subscriber.device_id
    assert start.source["protocol"] == "onvif"
    assert start.source["topic"] == topic
    assert start.source["token"] == token
    assert start.source["property_op"] == "Changed"
    assert start.occurred_at.tzinfo is not None
    assert abs((start.occurred_at - datetime.now(UTC)).total_seconds()) < 60
    assert subscriber.active_states == []


async def test_unknown_topics_are_counted_not_ingested(
    sim: SimCamera, subscriber: PullPointSubscriber, collector: Collector
) -> None:
    sim.emit("vendor_unknown", True)
    sim.emit("vendor_unknown", False)
    sim.emit("motion", True)
    await collector.wait_for(lambda ev: len(ev) >= 1)
    assert [e.kind for e in collector.events] == ["info.motion"]
    assert subscriber.status.unknown_topics == {"Vendor/Private/HeartBeat": 2}


async def test_burst_is_delivered_in_order(
    sim: SimCamera, subscriber: PullPointSubscriber, collector: Collector
) -> None:
    sim.burst("digital_input", 50)
    events = await collector.wait_for(lambda ev: len(ev) >= 100)
    assert [e.state for e in events] == ["start", "stop"] * 50
    assert subscriber.status.events_ingested == 100


async def test_subscription_loss_resets_states_and_recovers(
    sim: SimCamera, subscriber: PullPointSubscriber, collector: Collector
) -> None:
    sim.emit("motion", True)
    sim.emit("digital_input", True)
    await collector.wait_for(lambda ev: len(ev) >= 2)
    assert len(subscriber.active_states) == 2

    sim.set_faults(["subscription_loss"])
    events = await collector.wait_for(lambda ev: len(ev) >= 4)
    resets = events[2:]
    assert {(e.kind, e.state) for e in resets} == {
        ("info.motion", "stop"),
        ("alarm.digital_input", "stop"),
    }
    assert all(e.source["property_op"] == "Reset" for e in resets)
    lost = await _wait_status(subscriber, lambda s: s.health is not SubscriptionHealth.OK)
    assert lost.last_error is not None and lost.loss_count == 1
    assert subscriber.active_states == []
    # While the camera refuses new subscriptions the manager keeps retrying.
    await _wait_status(subscriber, lambda s: s.health is SubscriptionHealth.RETRYING)

    sim.set_faults(clear=["subscription_loss"])
    status = await _wait_status(
        subscriber, lambda s: s.health is SubscriptionHealth.OK and s.recreate_count >= 1
    )
    assert status.recreate_count == 1
    # The camera restates its properties on the new subscription: motion is still on.
    await collector.wait_for(lambda ev: len(ev) >= 6)
    assert {(e.kind, e.state) for e in collector.events[4:6]} == {
        ("info.motion", "start"),
        ("alarm.digital_input", "start"),
    }
    sim.emit("motion", False)
    events = await collector.wait_for(lambda ev: len(ev) >= 7)
    assert (events[6].kind, events[6].state) == ("info.motion", "stop")


async def test_camera_reboot_drops_subscription(
    sim: SimCamera, subscriber: PullPointSubscriber, collector: Collector
) -> None:
    sim.emit("tamper", True)
    await collector.wait_for(lambda ev: len(ev) >= 1)
    sim.drop_subscriptions()
    await _wait_status(subscriber, lambda s: s.recreate_count >= 1 and s.health == "ok")
    events = await collector.wait_for(lambda ev: len(ev) >= 3)
    # stop (subscription lost) then start again (the camera still reports tamper).
    assert [(e.kind, e.state) for e in events[:3]] == [
        ("alarm.tamper", "start"),
        ("alarm.tamper", "stop"),
        ("alarm.tamper", "start"),
    ]
    sim.emit("motion", True)
    await collector.wait_for(lambda ev: any(e.kind == "info.motion" for e in ev))


async def test_subscription_is_renewed_before_it_expires(
    camera: OnvifCamera, sim: SimCamera, collector: Collector
) -> None:
    async with PullPointSubscriber(camera, collector, lifetime_s=2, pull_timeout_s=5) as sub:
        await _wait_status(sub, lambda s: s.renew_count >= 2)
        assert sub.status.health is SubscriptionHealth.OK
        assert sub.status.recreate_count == 0
        assert sim.subscriptions[0].renewals >= 2
        sim.emit("motion", True)
        await collector.wait_for(lambda ev: len(ev) >= 1)
    # Leaving the context unsubscribes.
    assert sim.subscriptions == []


async def test_offline_camera_reports_lost_subscription(
    sim: SimCamera, subscriber: PullPointSubscriber
) -> None:
    sim.set_faults(["offline"])
    status = await _wait_status(subscriber, lambda s: s.loss_count >= 1)
    assert status.last_error_type == "DeviceUnreachable"
    sim.set_faults(clear=["offline"])
    await _wait_status(subscriber, lambda s: s.health == "ok" and s.recreate_count >= 1)


async def test_ingest_failure_is_retried_without_losing_events(
    sim: SimCamera, camera: OnvifCamera
) -> None:
    stored: list[DeviceEvent] = []
    failures = 2

    async def flaky(event: DeviceEvent) -> str:
        nonlocal failures
        if failures:
            failures -= 1
            raise RuntimeError("database is busy")
        stored.append(event)
        return "id"

    async with PullPointSubscriber(camera, flaky, pull_timeout_s=5) as sub:
        await _wait_status(sub, lambda s: s.health == "ok")
        sim.emit("motion", True)
        sim.emit("motion", False)
        await _wait_status(sub, lambda s: s.events_ingested >= 2)
    assert [e.state for e in stored] == ["start", "stop"]


async def test_status_callback_sees_health_changes(
    sim: SimCamera, camera: OnvifCamera, collector: Collector
) -> None:
    seen: list[str] = []
    async with PullPointSubscriber(
        camera, collector, backoff_initial_s=0.05, on_status=lambda s: seen.append(s.health)
    ) as sub:
        await _wait_status(sub, lambda s: s.health == "ok")
        sim.drop_subscriptions()
        await _wait_status(sub, lambda s: s.recreate_count >= 1 and s.health == "ok")
    assert seen[-1] == "stopped"
    compact = [h for i, h in enumerate(seen) if i == 0 or seen[i - 1] != h]
    assert compact == ["ok", "lost", "retrying", "ok", "stopped"]
