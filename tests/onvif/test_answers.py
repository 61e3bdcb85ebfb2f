"""What the driver does with hostile ONVIF answers: a size cap, refused envelopes, and
answers that are not well-formed XML named as such when they break a probe."""

from __future__ import annotations

import tracemalloc
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from adapters.errors import ProtocolViolation
from adapters.onvif.transport import (
    CHUNK_BYTES,
    DEFAULT_MAX_ANSWER_BYTES,
    AnswerRefused,
    judge_answer,
    read_capped,
)
from simulators.camera import CameraFarm, SimCamera
from simulators.onvif_soap import malformed, padded, q, response, sub, wrong_namespace
from tests.onvif.conftest import USER, make_camera

# --- reading an answer -----------------------------------------------------------------------


class Endless:
    """A body that never ends; counts what was taken from it."""

    def __init__(self) -> None:
        self.taken = 0

    async def read(self, n: int = -1) -> bytes:
        assert n > 0, "an answer must never be read whole"
        self.taken += n
        return b"A" * n


class Finite:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, n: int = -1) -> bytes:
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


@pytest.mark.parametrize("announced", [None, 1000])  # no length, or a length that lies
async def test_an_endless_answer_is_refused_after_the_cap_and_a_chunk(
    announced: int | None,
) -> None:
    body = Endless()
    with pytest.raises(AnswerRefused) as info:
        await read_capped(body, announced, 100_000)
    assert info.value.violation == "too_large"
    assert "larger than 100000 bytes" in str(info.value)
    assert body.taken <= 100_000 + CHUNK_BYTES


async def test_an_announced_length_over_the_cap_is_refused_unread() -> None:
    body = Endless()
    with pytest.raises(AnswerRefused):
        await read_capped(body, 100_001, 100_000)
    assert body.taken == 0


async def test_an_answer_of_exactly_the_cap_is_read_whole() -> None:
    data = bytes(range(256)) * 1000
    assert await read_capped(Finite(data), len(data), len(data)) == data


# --- judging an answer (bytes made by the simulator's own serialiser) ------------------------


def _answer() -> bytes:
    out = ET.Element(q("tds", "GetDeviceInformationResponse"))
    sub(out, "tds:Manufacturer", "Mallsim")
    return response(out)


def test_a_soap_12_answer_passes_and_hostile_ones_are_named() -> None:
    good = _answer()
    assert judge_answer(good) is None
    assert judge_answer(b"".join(padded(good, 100_000))) is None  # well-formed, only big
    verdict = judge_answer(malformed(good))
    assert verdict is not None and verdict[0] == "not_xml"
    verdict = judge_answer(wrong_namespace(good))
    assert verdict is not None and verdict[0] == "wrong_namespace"
    assert "urn:mallsim:not-an-onvif-namespace" in verdict[1]
    verdict = judge_answer(b"<html><body>Login</body></html>")
    assert verdict is not None and verdict[0] == "not_soap"


# --- the real driver against the simulator --------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "violation", "words"),
    [
        ("malformed_xml", "not_xml", "unreadable camera clock"),
        ("wrong_namespace", "wrong_namespace", "SOAP envelope in namespace"),
        ("huge_body", "too_large", f"larger than {DEFAULT_MAX_ANSWER_BYTES} bytes"),
        ("huge_answer", "too_large", f"larger than {DEFAULT_MAX_ANSWER_BYTES} bytes"),
    ],
)
@pytest.mark.parametrize("connected", [False, True])
async def test_probe_names_what_is_wrong_with_the_answer(
    sim: SimCamera, password: str, fault: str, violation: str, words: str, connected: bool
) -> None:
    async with make_camera(sim, password, lazy=not connected) as cam:
        sim.set_faults([fault])
        probe = await cam.probe()
        assert probe.reachable
        assert probe.error_type == "ProtocolViolation"
        assert probe.violation == violation
        assert probe.error is not None and words in probe.error
        assert len(probe.error) < 600  # a reason is stored and sent on; never the answer
        sim.set_faults(clear=[fault])
        probe = await cam.probe()
        assert probe.error is None and probe.violation is None


@pytest.mark.parametrize("hour_minute", [(1, 1), (10, 10)])
async def test_a_broken_clock_answer_is_named_alike_wherever_it_is_cut(
    sim: SimCamera, password: str, monkeypatch: pytest.MonkeyPatch, hour_minute: tuple[int, int]
) -> None:
    """The answer's length moves with the camera's time (its numbers are not zero-padded),
    and so does where the broken answer is cut: inside a name (the library fails while
    reading) or elsewhere (it fails after). The finding must not depend on the time of day."""
    fixed = datetime(2026, 12, 3, *hour_minute, 7, tzinfo=UTC)
    monkeypatch.setattr(sim, "now", lambda: fixed)
    async with make_camera(sim, password) as cam:
        sim.set_faults(["malformed_xml"])
        probe = await cam.probe()
    assert probe.violation == "not_xml"
    assert probe.error is not None and "unreadable camera clock" in probe.error


async def test_a_well_formed_answer_over_the_cap_is_refused_and_under_it_accepted(
    password: str,
) -> None:
    """The simulator streams the answer without a length, in chunks, so what the Python heap
    holds at its peak is what the client kept of it."""
    size = 8 * 1024 * 1024
    async with CameraFarm.uniform(
        1, username=USER, password=password, huge_body_bytes=size
    ) as farm:
        sim = farm[0]
        async with make_camera(sim, password):
            pass  # the WSDL documents are parsed once per process: not part of the measure
        sim.set_faults(["huge_answer"])
        tracemalloc.start()
        try:
            async with make_camera(sim, password, lazy=True) as cam:
                tracemalloc.reset_peak()
                with pytest.raises(ProtocolViolation) as info:
                    await cam.connect()
                capped_peak = tracemalloc.get_traced_memory()[1]
            assert info.value.violation == "too_large"
            # The same answers with a cap above their size: parsed and accepted, so only the
            # cap stands between a well-formed huge answer and the hub's memory.
            tracemalloc.reset_peak()
            async with make_camera(sim, password, max_answer_bytes=2 * size) as cam:
                uncapped_peak = tracemalloc.get_traced_memory()[1]
                probe = await cam.probe()
        finally:
            tracemalloc.stop()
        assert probe.error is None, probe.error
        assert probe.manufacturer == sim.config.manufacturer
        assert uncapped_peak >= size  # the baseline: an accepted answer is held whole
        assert capped_peak < DEFAULT_MAX_ANSWER_BYTES + size // 4, capped_peak


async def test_an_answer_the_library_can_recover_still_works(sim: SimCamera, password: str) -> None:
    """Firmware that sends a stray '&' is not well-formed but readable: it keeps working."""
    sim.set_faults(["raw_ampersand"])
    async with make_camera(sim, password) as cam:
        probe = await cam.probe()
        assert probe.error is None, probe.error
        assert cam.device_info is not None
        assert cam.device_info.model == sim.config.model
