"""A camera whose answers break the ONVIF protocol is degraded with a finding, not offline;
cameras that do not answer, or refuse the hub's password, still go offline (debounced)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.onvif.driver import CameraProbe, ProfileSummary
from hub.config import Camera, Compliance
from hub.health.probes import camera_result
from hub.health.state import DeviceHealth

AT = datetime(2026, 1, 1, tzinfo=UTC)
CAM = Camera.model_validate(
    {
        "id": "cam-1",
        "name": "Gate",
        "host": "127.0.0.1",
        "location": {"floor": "1F", "zone": "gate", "role": "gate"},
    }
)


def failed_probe(error_type: str, error: str, violation: str | None = None) -> CameraProbe:
    return CameraProbe(
        "cam-1",
        reachable=error_type != "DeviceUnreachable",
        error=error,
        error_type=error_type,
        violation=violation,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("violation", "error", "en", "zh", "fix_words"),
    [
        (
            "too_large",
            "devicemgmt.GetProfiles: answer larger than 1048576 bytes",
            "ONVIF answer too large: devicemgmt.GetProfiles: answer larger than 1048576 bytes",
            "ONVIF 应答过大",
            "max_answer_bytes",
        ),
        (
            "not_xml",
            "Premature end of data, line 1, column 80 (unreadable camera clock)",
            "ONVIF answer is not well-formed XML: Premature end of data",
            "ONVIF 应答不是格式正确的 XML",
            "firmware",
        ),
        (
            "wrong_namespace",
            "devicemgmt.GetSystemDateAndTime: SOAP envelope in namespace 'urn:x'",
            "ONVIF answer in the wrong XML namespace: devicemgmt.GetSystemDateAndTime",
            "ONVIF 应答的 XML 命名空间错误",
            "ONVIF port",
        ),
        (
            "not_soap",
            "devicemgmt.GetSystemDateAndTime: root element 'html' is not a SOAP envelope",
            "ONVIF answer is not a SOAP message: ",
            "ONVIF 应答不是 SOAP 消息",
            "ONVIF port",
        ),
        (
            None,  # a ProtocolViolation from before violations were named
            "GetStreamUri returned no Uri",
            "ONVIF answer does not follow the protocol: GetStreamUri returned no Uri",
            "ONVIF 应答不符合协议",
            "firmware",
        ),
    ],
)
def test_an_answer_that_breaks_the_protocol_degrades_with_a_finding(
    violation: str | None, error: str, en: str, zh: str, fix_words: str
) -> None:
    r = camera_result(
        failed_probe("ProtocolViolation", error, violation), CAM, Compliance(), AT, None
    )
    assert r.level == "degraded"
    assert r.reason.startswith(en), r.reason
    assert error in r.reason  # the details stay: which operation, which limit
    [problem] = r.problems
    assert problem.check == "onvif_answer" and not problem.warning
    assert problem.message_en == r.reason
    assert problem.message_zh.startswith(zh)
    assert fix_words in r.fix and problem.fix == r.fix
    assert r.fault_kind == "fault.device_degraded"
    assert r.detail == {"error_type": "ProtocolViolation", "violation": violation or "invalid"}


@pytest.mark.parametrize(
    ("error_type", "reason", "fix_words"),
    [
        ("DeviceUnreachable", "unreachable: ", "network"),
        ("AuthFailed", "authentication failed: ", "password"),
    ],
)
def test_no_answer_or_a_refused_password_still_fails(
    error_type: str, reason: str, fix_words: str
) -> None:
    r = camera_result(failed_probe(error_type, "x"), CAM, Compliance(), AT, None)
    assert r.level == "failed"
    assert r.reason.startswith(reason) and fix_words in r.fix


def test_protocol_violations_are_debounced_into_one_change_to_degraded_and_back() -> None:
    bad = camera_result(
        failed_probe("ProtocolViolation", "x: answer larger than 10 bytes", "too_large"),
        CAM,
        Compliance(),
        AT,
        None,
    ).observation()
    good = camera_result(
        CameraProbe(
            "cam-1",
            reachable=True,
            clock_offset_s=0.1,
            profiles=(ProfileSummary("P1", "main", "H264", 1920, 1080, 25.0),),
        ),
        CAM,
        Compliance(),
        AT,
        None,
    ).observation()
    assert bad is not None and good is not None and good.level == "ok"
    machine = DeviceHealth("cam-1", fail_threshold=2, recover_threshold=2, state="online")
    seen = [bad, bad, bad, good, good]
    t = [machine.observe(o, AT + timedelta(minutes=i)) for i, o in enumerate(seen)]
    assert t[0] is None  # a single bad answer never flaps the state
    assert t[1] is not None and (t[1].old, t[1].new) == ("online", "degraded")
    assert t[1].fault_kind == "fault.device_degraded"
    assert t[1].reason.startswith("ONVIF answer too large")
    assert t[2] is None and t[3] is None  # one change however long it lasts; debounced back
    assert t[4] is not None and (t[4].old, t[4].new) == ("degraded", "online")
    assert t[4].fault_kind == "fault.device_degraded"  # its restore ends that fault
