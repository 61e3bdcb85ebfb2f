"""Audio for the broadcast drivers: stored messages, WAV loading and text-to-speech.

Everything that goes out over RTP is 8 kHz mono 16-bit linear PCM before G.711 companding.
WAV files at another rate or with more channels are mixed down and resampled here.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import tempfile
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from adapters.broadcast.g711 import Pcm16

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 8000
MESSAGES_DIR: Final = Path(__file__).with_name("messages")
DEFAULT_LANGUAGE: Final = "zh"
TTS_TIMEOUT_S: Final = 20.0

_CJK: Final = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# espeak-ng's plain "zh" voice needs MBROLA; "cmn" is its built-in Mandarin voice.
_TTS_VOICES: Final = {"zh": "cmn", "en": "en"}


class AudioError(Exception):
    """An audio file could not be read or produced."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A recorded message shipped as files: ``<name>.wav`` and its text ``<name>.txt``."""

    name: str
    wav: Path
    text: str


def load_wav(path: Path) -> Pcm16:
    """Samples of a PCM WAV file as 8 kHz mono 16-bit, whatever its rate and channel count."""
    try:
        with wave.open(str(path), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            raw = reader.readframes(reader.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioError(f"cannot read {path.name}: {exc}") from exc
    if width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float64)
    elif width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    else:
        raise AudioError(f"{path.name}: {8 * width}-bit samples are not supported (8 or 16)")
    if channels > 1:
        samples = samples[: len(samples) - len(samples) % channels]
        samples = samples.reshape(-1, channels).mean(axis=1)
    if rate != SAMPLE_RATE:
        samples = resample(samples, rate, SAMPLE_RATE)
    return np.clip(np.rint(samples), -32768, 32767).astype(np.int16)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling through the spectrum (messages are seconds long, not hours).

    Going down, everything above the new Nyquist frequency is dropped, which is the
    anti-aliasing filter; going up, the spectrum is padded with zeros.
    """
    if rate_in <= 0 or rate_out <= 0:
        raise AudioError(f"invalid sample rates {rate_in} → {rate_out}")
    n_in = len(samples)
    n_out = round(n_in * rate_out / rate_in)
    if n_in == 0 or n_out == 0:
        return np.zeros(0, dtype=np.float64)
    spectrum = np.fft.rfft(samples)
    bins = n_out // 2 + 1
    if len(spectrum) >= bins:
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(bins - len(spectrum), dtype=complex)])
    out: np.ndarray = np.fft.irfft(spectrum, n_out) * (n_out / n_in)
    return out


def wav_duration_s(path: Path) -> float:
    """Duration of a WAV file from its header."""
    try:
        with wave.open(str(path), "rb") as reader:
            return reader.getnframes() / float(reader.getframerate())
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioError(f"cannot read {path.name}: {exc}") from exc


class MessageCatalog:
    """Stored messages by name, with language-neutral aliases.

    ``evacuation`` and ``test`` (any stem with a ``_zh`` / ``_en`` variant) resolve to the
    site's language, Chinese by default. A site's own directory may add or replace messages.
    """

    def __init__(
        self,
        language: str = DEFAULT_LANGUAGE,
        extra_dirs: tuple[Path, ...] = (),
    ) -> None:
        self.language = language
        self._messages: dict[str, StoredMessage] = {}
        for directory in (MESSAGES_DIR, *extra_dirs):
            for wav in sorted(directory.glob("*.wav")):
                text_file = wav.with_suffix(".txt")
                text = text_file.read_text("utf-8").strip() if text_file.exists() else ""
                self._messages[wav.stem] = StoredMessage(wav.stem, wav, text)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._messages))

    def get(self, name: str) -> StoredMessage | None:
        """The stored message called ``name`` (or its variant in the site's language)."""
        key = name.strip()
        found = self._messages.get(key)
        if found is None:
            found = self._messages.get(f"{key}_{self.language}")
        return found


def tts_voice(text: str, voices: Mapping[str, str] | None = None) -> str:
    """espeak-ng voice for ``text``: Mandarin when it contains Chinese characters."""
    table = {**_TTS_VOICES, **(voices or {})}
    return table["zh"] if _CJK.search(text) else table["en"]


async def render_text(text: str, voice: str, within: float = TTS_TIMEOUT_S) -> Pcm16 | None:
    """Speak ``text`` with espeak-ng; ``None`` when espeak-ng is not installed.

    Raises ``AudioError`` when espeak-ng fails or takes longer than ``within`` seconds.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory(prefix="mallhub-tts-") as tmp:
        out = Path(tmp) / "speech.wav"
        proc = await asyncio.create_subprocess_exec(
            exe,
            "-v",
            voice,
            "-w",
            str(out),
            "--stdin",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(within):
                _, err = await proc.communicate(text.encode("utf-8"))
        except TimeoutError as exc:
            raise AudioError(f"espeak-ng took longer than {within} s") from exc
        finally:
            # Also on cancellation: never leave the synthesiser running.
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if proc.returncode != 0 or not out.exists():
            detail = err.decode("utf-8", "replace").strip()[:200]
            raise AudioError(f"espeak-ng failed ({proc.returncode}): {detail}")
        return await asyncio.to_thread(load_wav, out)
