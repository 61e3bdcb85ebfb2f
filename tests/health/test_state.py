"""The debounced device state machine (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hub.health.state import DeviceHealth, Level, Observation

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OK = Observation("ok")
FAIL = Observation("failed", "unreachable")
COVERED = Observation("degraded", "View covered", "fault.video_quality")


def state_of(m: DeviceHealth) -> str:
    # A function call, so the type checker does not narrow the state across observations.
    return m.state


def run(m: DeviceHealth, *obs: Observation) -> list[tuple[str, str, str]]:
    changes: list[tuple[str, str, str]] = []
    for i, o in enumerate(obs):
        t = m.observe(o, T0 + timedelta(seconds=i))
        if t is not None:
            changes.append((t.old, t.new, t.fault_kind))
    return changes


def test_needs_n_failures_to_go_offline_and_m_successes_to_recover() -> None:
    m = DeviceHealth("cam", fail_threshold=3, recover_threshold=2)
    assert run(m, OK, OK) == [("unknown", "online", "fault.device_degraded")]
    assert run(m, FAIL, FAIL) == []
    assert state_of(m) == "online" and m.fail_count == 2
    assert run(m, FAIL) == [("online", "offline", "fault.device_degraded")]
    assert m.reason == "unreachable"
    assert run(m, OK) == []
    assert state_of(m) == "offline"
    assert run(m, OK) == [("offline", "online", "fault.device_degraded")]
    assert m.reason == ""


def test_single_failure_between_successes_never_flaps() -> None:
    m = DeviceHealth("cam", fail_threshold=2, recover_threshold=2)
    run(m, OK, OK)
    assert run(m, FAIL, OK, FAIL, OK, FAIL, OK, OK) == []
    assert state_of(m) == "online"


def test_last_seen_is_the_last_answer() -> None:
    m = DeviceHealth("cam", fail_threshold=1, recover_threshold=1)
    run(m, OK, FAIL)
    assert m.last_seen == T0
    assert m.since == T0 + timedelta(seconds=1)


def test_degraded_and_back_carries_the_fault_kind() -> None:
    m = DeviceHealth("cam", fail_threshold=2, recover_threshold=2)
    run(m, OK, OK)
    assert run(m, COVERED, COVERED) == [("online", "degraded", "fault.video_quality")]
    assert m.reason == "View covered"
    assert run(m, OK, OK) == [("degraded", "online", "fault.video_quality")]


def test_offline_device_that_answers_degraded_comes_back_degraded() -> None:
    m = DeviceHealth("cam", fail_threshold=1, recover_threshold=2)
    run(m, FAIL)
    assert state_of(m) == "offline"
    assert run(m, COVERED, COVERED) == [("offline", "degraded", "fault.video_quality")]


levels = st.sampled_from(["ok", "degraded", "failed"])


@given(st.lists(levels, max_size=60), st.integers(1, 4), st.integers(1, 4))
def test_every_change_is_backed_by_a_run_of_observations(seq: list[Level], n: int, m_: int) -> None:
    m = DeviceHealth("d", fail_threshold=n, recover_threshold=m_)
    for i, level in enumerate(seq):
        t = m.observe(Observation(level, "r"), T0 + timedelta(seconds=i))
        if t is None:
            continue
        window = seq[max(0, i + 1 - (n if t.new in ("offline", "degraded") else m_)) : i + 1]
        if t.new == "offline":
            assert len(window) == n and all(x == "failed" for x in window)
        elif t.new == "degraded" and t.old == "online":
            assert len(window) == n and all(x != "ok" for x in window)
        elif t.new == "online" and t.old == "degraded":
            assert len(window) == m_ and all(x == "ok" for x in window)
        else:  # back from offline or unknown: answers in a row, the last one decides
            back = seq[max(0, i + 1 - m_) : i + 1]
            assert len(back) == m_ and all(x != "failed" for x in back)
            assert t.new == ("online" if level == "ok" else "degraded")
