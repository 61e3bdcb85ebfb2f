"""Stored messages, WAV loading and resampling, text-to-speech."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from adapters.broadcast.audio import (
    MESSAGES_DIR,
    AudioError,
    MessageCatalog,
    load_wav,
    render_text,
    resample,
    tts_voice,
    wav_duration_s,
)

from .conftest import write_tone

SHIPPED = ("evacuation_zh", "evacuation_en", "test_zh", "test_en")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_messages_are_small_8k_mono_16bit_with_text(name: str) -> None:
    wav = MESSAGES_DIR / f"{name}.wav"
    assert wav.stat().st_size < 160_000
    with wave.open(str(wav), "rb") as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (8000, 1, 2)
        assert reader.getnframes() > 8000  # more than a second of speech
    text = (MESSAGES_DIR / f"{name}.txt").read_text("utf-8").strip()
    assert text
    samples = load_wav(wav)
    assert len(samples) == round(wav_duration_s(wav) * 8000)
    assert np.abs(samples.astype(np.int32)).max() > 3000  # not silence


def test_catalog_resolves_language_neutral_names() -> None:
    zh = MessageCatalog()
    evacuation = zh.get("evacuation")
    assert evacuation is not None and evacuation.name == "evacuation_zh"
    assert "疏散" in evacuation.text
    test_message = zh.get("test")
    assert test_message is not None and test_message.name == "test_zh"
    english = MessageCatalog(language="en").get("evacuation")
    assert english is not None and english.name == "evacuation_en"
    assert "nearest exit" in english.text
    assert zh.get("evacuation_en") is not None
    assert zh.get("Please leave the building") is None
    assert set(SHIPPED) <= set(zh.names)


def test_catalog_takes_site_messages(tmp_path: Path) -> None:
    write_tone(tmp_path / "evacuation_zh.wav")
    catalog = MessageCatalog(extra_dirs=(tmp_path,))
    replaced = catalog.get("evacuation")
    assert replaced is not None and replaced.wav == tmp_path / "evacuation_zh.wav"
    assert replaced.text == ""


def test_load_wav_mixes_down_and_resamples(tmp_path: Path) -> None:
    rate, hz, seconds = 22050, 1000.0, 1.0
    t = np.arange(int(rate * seconds)) / rate
    left = np.sin(2 * np.pi * hz * t) * 10000
    stereo = np.stack([left, left], axis=1).astype("<i2")
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(stereo.tobytes())
    samples = load_wav(path)
    assert samples.dtype == np.int16
    assert len(samples) == 8000
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    assert np.argmax(spectrum) == pytest.approx(hz * len(samples) / 8000, abs=1)
    assert np.abs(samples).max() == pytest.approx(10000, rel=0.05)


def test_resample_removes_what_the_new_rate_cannot_carry() -> None:
    rate = 16000
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 6000 * t) * 10000  # above 4 kHz: must vanish, not alias
    out = resample(tone, rate, 8000)
    assert len(out) == 8000
    assert np.abs(out).max() < 100


def test_load_wav_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    with pytest.raises(AudioError):
        load_wav(bad)
    with pytest.raises(AudioError):
        load_wav(tmp_path / "missing.wav")


def test_tts_voice_by_script() -> None:
    assert tts_voice("请立即疏散") == "cmn"
    assert tts_voice("Please leave") == "en"
    assert tts_voice("Please leave", {"en": "en-us"}) == "en-us"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
async def test_render_text_speaks() -> None:
    pcm = await render_text("Fire drill", "en")
    assert pcm is not None
    assert len(pcm) > 2000
    assert np.abs(pcm.astype(np.int32)).max() > 1000


async def test_render_text_without_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    assert await render_text("Fire drill", "en") is None
