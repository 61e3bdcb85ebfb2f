"""Properties: whatever the simulator builds is accepted; damaged frames never leak events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.alarm_panels.codes import SIA_CODES, classify_cid, classify_sia
from adapters.alarm_panels.config import AccountConfig
from adapters.alarm_panels.receiver import FrameProcessor
from simulators.panel import build_frame, cid_payload, sia_payload

HEX = "0123456789ABCDEF"
BASE = datetime(2025, 1, 1, tzinfo=UTC)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Expected:
    code: str
    kind: str
    qualifier: str
    zone: int | None
    area: int | None


@dataclass(frozen=True)
class Case:
    frame: bytes
    now: datetime
    config: AccountConfig
    token: str
    expected: tuple[Expected, ...]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    account = draw(st.text(HEX, min_size=3, max_size=16))
    key = draw(
        st.one_of(
            st.none(),
            st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
        )
    )
    seq = draw(st.integers(1, 9999))
    prefix = draw(st.text(HEX, min_size=1, max_size=6))
    receiver = draw(st.one_of(st.none(), st.text(HEX, min_size=1, max_size=6)))
    moment = BASE + timedelta(seconds=draw(st.integers(0, 10 * 365 * 86400)))
    timestamp = moment if key is not None or draw(st.booleans()) else None
    skew = draw(st.integers(-20, 40)) if timestamp is not None else 0
    kind = draw(st.sampled_from(["cid", "sia", "null"]))
    expected: list[Expected] = []
    if kind == "cid":
        token = "ADM-CID"
        q = draw(st.sampled_from([1, 3, 6]))
        code = draw(st.one_of(st.integers(100, 999), st.sampled_from([120, 301, 601, 602, 401])))
        group, zone = draw(st.integers(0, 99)), draw(st.integers(0, 999))
        payload = cid_payload(q, code, group, zone)
        c = classify_cid(q, code)
        expected.append(Expected(payload, c.kind, c.qualifier, zone, group))
    elif kind == "sia":
        token = "SIA-DCS"
        letters = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)
        items = draw(
            st.lists(
                st.tuples(
                    st.one_of(st.sampled_from(sorted(SIA_CODES)), letters),
                    st.one_of(st.none(), st.integers(0, 999)),
                    st.one_of(st.none(), st.integers(0, 99)),
                ),
                min_size=1,
                max_size=4,
            )
        )
        payload = sia_payload(items)
        area: int | None = None
        for code_text, zone_or_none, item_area in items:
            area = item_area if item_area is not None else area
            c = classify_sia(code_text)
            raw = code_text + ("" if zone_or_none is None else f"{zone_or_none:03d}")
            expected.append(Expected(raw, c.kind, c.qualifier, zone_or_none, area))
    else:
        token, payload = "NULL", ""
    data = f"#{account}|{payload}" if payload else ""
    frame = build_frame(
        token=token,
        seq=seq,
        account=account,
        data=data,
        prefix=prefix,
        receiver=receiver,
        key=key,
        timestamp=timestamp,
        pad_style=draw(st.sampled_from(["random", "constant_no_bar"])),
    )
    config = AccountConfig(account=account, panel_device_id="panel", key=key)
    now = moment + timedelta(seconds=skew)
    return Case(frame, now, config, token, tuple(expected))


@SETTINGS
@given(cases())
def test_every_simulator_frame_is_accepted_with_the_same_events(case: Case) -> None:
    verdict = FrameProcessor([case.config]).process(case.frame, case.now)
    assert (verdict.reply_kind, verdict.reason) == ("ack", None)
    got = tuple(
        Expected(
            str(e.source["code"]),
            e.kind,
            str(e.source["qualifier"]),
            e.source["zone"],  # type: ignore[arg-type]
            e.source["area"],  # type: ignore[arg-type]
        )
        for e in verdict.events
    )
    assert got == case.expected
    assert all(e.source["account"] == case.config.account for e in verdict.events)


@SETTINGS
@given(cases(), st.data())
def test_single_byte_mutation_never_leaks_a_corrupted_event(
    case: Case, data: st.DataObject
) -> None:
    processor = FrameProcessor([case.config])
    original = processor.process(case.frame, case.now)
    index = data.draw(st.integers(0, len(case.frame) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != case.frame[index]))
    mutated = case.frame[:index] + bytes([value]) + case.frame[index + 1 :]
    verdict = processor.process(mutated, case.now)
    assert verdict.reply_kind in ("none", "nak", "duh", "ack")
    assert all(event in original.events for event in verdict.events)
    if verdict.reply_kind == "ack":
        assert verdict.events == original.events
