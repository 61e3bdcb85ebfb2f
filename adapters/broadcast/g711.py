"""G.711 µ-law and A-law companding of 16-bit linear PCM, vectorised with numpy.

The segment tables follow ITU-T G.711: µ-law works on the top 14 bits of a sample, A-law on
the top 13 bits. Encoding then decoding a sample never moves it by more than half a
quantisation step of its segment.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

Pcm16 = npt.NDArray[np.int16]
Codes = npt.NDArray[np.uint8]

_ULAW_SEG_END: Final = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], np.int32)
_ALAW_SEG_END: Final = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], np.int32)
_ULAW_CLIP: Final = 8159
_ULAW_BIAS: Final = 0x21  # 0x84 scaled to 14 bits

ULAW_SILENCE: Final = 0xFF
"""µ-law code of a zero sample."""
ALAW_SILENCE: Final = 0xD5
"""A-law code of a zero sample."""


def _as_int32(samples: npt.ArrayLike) -> npt.NDArray[np.int32]:
    array = np.asarray(samples)
    if array.dtype.kind not in "iu":
        raise TypeError(f"expected integer PCM samples, got {array.dtype}")
    return np.clip(array.astype(np.int32), -32768, 32767)


def ulaw_encode(samples: npt.ArrayLike) -> Codes:
    """µ-law codes of 16-bit linear samples (0 → 0xFF, 32767 → 0x80, -32768 → 0x00)."""
    pcm = _as_int32(samples) >> 2
    negative = pcm < 0
    magnitude = np.minimum(np.where(negative, -pcm, pcm), _ULAW_CLIP) + _ULAW_BIAS
    seg = np.searchsorted(_ULAW_SEG_END, magnitude, side="left").astype(np.int32)
    mask = np.where(negative, 0x7F, 0xFF)
    mantissa = (magnitude >> (np.minimum(seg, 7) + 1)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (seg << 4) | mantissa)
    return (code ^ mask).astype(np.uint8)


def ulaw_decode(codes: npt.ArrayLike) -> Pcm16:
    """16-bit linear samples of µ-law codes (0xFF → 0, 0x80 → 32124, 0x00 → -32124)."""
    u = ~np.asarray(codes, dtype=np.uint8).astype(np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def alaw_encode(samples: npt.ArrayLike) -> Codes:
    """A-law codes of 16-bit linear samples (0 → 0xD5, 32767 → 0xAA, -32768 → 0x2A)."""
    pcm = _as_int32(samples) >> 3
    negative = pcm < 0
    magnitude = np.where(negative, -pcm - 1, pcm)
    seg = np.searchsorted(_ALAW_SEG_END, magnitude, side="left").astype(np.int32)
    mask = np.where(negative, 0x55, 0xD5)
    shift = np.where(seg < 2, 1, np.minimum(seg, 7))
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((magnitude >> shift) & 0x0F))
    return (code ^ mask).astype(np.uint8)


def alaw_decode(codes: npt.ArrayLike) -> Pcm16:
    """16-bit linear samples of A-law codes (0xD5 → 8, 0xAA → 32256, 0x2A → -32256)."""
    a = np.asarray(codes, dtype=np.uint8).astype(np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


ENCODERS: Final = {"PCMU": ulaw_encode, "PCMA": alaw_encode}
SILENCE: Final = {"PCMU": ULAW_SILENCE, "PCMA": ALAW_SILENCE}
