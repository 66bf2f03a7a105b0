"""Bad audio is quarantined with its reason (AudioRejected), never measured into a made-up number."""

import io

import numpy as np
import pytest
import soundfile as sf

from benchmark.errors import InputError
from pipeline.demo.synth import tone
from pipeline.measure import AudioRejected, load_audio_bytes, measure_audio_bytes
from pipeline.params import stage_params


def encode(audio: np.ndarray, sr: int, fmt: str = "FLAC", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.fixture(scope="module")
def params():
    return stage_params("measure")


def reason_of(data: bytes, params: dict) -> str:
    with pytest.raises(AudioRejected) as e:
        measure_audio_bytes(data, params)
    assert isinstance(e.value, InputError) and str(e.value).startswith(e.value.reason)
    return e.value.reason


def test_each_bad_audio_reason(params):
    flac = encode(tone(440.0, 1.0, 48000), 48000)
    assert reason_of(b"", params) == "empty"
    assert reason_of(encode(np.zeros(0, np.float32), 48000), params) == "empty"
    assert reason_of(b"fLaC" + bytes(range(256)) * 8, params) == "unreadable"
    assert reason_of(b"this is not audio at all" * 50, params) == "unreadable"
    assert reason_of(flac[: len(flac) // 2], params) == "truncated"
    assert reason_of(encode(np.zeros(48000, np.float32), 48000), params) == "silent"
    nan_wav = encode(np.where(np.arange(16000) % 100 == 0, np.nan, tone(300.0, 1.0, 16000)).astype(np.float32), 16000, "WAV", "FLOAT")
    assert reason_of(nan_wav, params) == "nonfinite"
    inf_wav = encode(np.where(np.arange(16000) == 5, np.inf, tone(300.0, 1.0, 16000)).astype(np.float32), 16000, "WAV", "FLOAT")
    assert reason_of(inf_wav, params) == "nonfinite"
    assert reason_of(flac, {**params, "max_duration_s": 0.5}) == "too_long"
    assert reason_of(encode(tone(440.0, 1.0, 4000), 4000), params) == "low_sample_rate"


def test_good_audio_loads_mono_at_the_analysis_rate(params):
    stereo = np.stack([tone(440.0, 1.0, 44100), tone(440.0, 1.0, 44100, phase=0.3)], axis=1)
    audio, sr, info = load_audio_bytes(encode(stereo, 44100), 16000)
    assert sr == 44100 and audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) <= 1 and info["channels"] == 2 and not info["was_mono"]
    assert info["duration_s"] == pytest.approx(1.0)
    m = measure_audio_bytes(encode(stereo, 44100), params)
    assert m["channels"] == 2 and m["pitched"] and abs(m["f0_hz"] - 440.0) < 3.0
