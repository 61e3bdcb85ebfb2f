"""G.711 companding against the reference values of the ITU-T tables."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from adapters.broadcast.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode


def test_ulaw_reference_values() -> None:
    samples = np.array([0, 32767, -32768, 8, -8, 1000, -1000], dtype=np.int16)
    assert ulaw_encode(samples).tolist() == [0xFF, 0x80, 0x00, 0xFE, 0x7E, 0xCE, 0x4E]
    assert ulaw_decode(np.array([0xFF, 0x80, 0x00, 0x7F], np.uint8)).tolist() == [
        0,
        32124,
        -32124,
        0,
    ]


def test_alaw_reference_values() -> None:
    samples = np.array([0, 32767, -32768, -1, 1000, -1000], dtype=np.int16)
    assert alaw_encode(samples).tolist() == [0xD5, 0xAA, 0x2A, 0x55, 0xFA, 0x7A]
    assert alaw_decode(np.array([0xD5, 0xAA, 0x2A, 0x55], np.uint8)).tolist() == [
        8,
        32256,
        -32256,
        -8,
    ]


def test_every_code_survives_decode_then_encode() -> None:
    codes = np.arange(256, dtype=np.uint8)
    assert (alaw_encode(alaw_decode(codes)) == codes).all()
    # µ-law has two zeros; 0x7F (negative zero) comes back as 0xFF.
    ulaw = ulaw_encode(ulaw_decode(codes))
    assert (ulaw[codes != 0x7F] == codes[codes != 0x7F]).all()
    assert ulaw[0x7F] == 0xFF


def test_encoding_is_monotonic() -> None:
    ramp = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
    for encode, decode in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        levels = decode(encode(ramp)).astype(np.int32)
        assert (np.diff(levels) >= 0).all()


@given(st.integers(min_value=-32768, max_value=32767))
def test_quantisation_error_is_bounded_by_the_segment_step(sample: int) -> None:
    x = np.array([sample], dtype=np.int16)
    for encode, decode in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        error = abs(int(decode(encode(x))[0]) - sample)
        # Half the largest step (1024 in the top segment), plus the clipping at the ends.
        assert error <= max(0.07 * abs(sample), 16) + 650
        if abs(sample) < 1000:
            # Half the step there (64 / 2), plus the 4-unit grain of the 14-bit value µ-law
            # encodes: the reference codec itself is 35 off at e.g. -955 and -891.
            assert error <= 32 + 4
