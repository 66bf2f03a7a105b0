"""The default pitch path on real sampled-instrument notes and real unpitched sounds (tests/real_notes.py), and
why crepe-full failed on the GPU (its weights in fp16)."""

import math

import numpy as np
import pytest
import torch

from benchmark.errors import InputError
from pipeline.demo.synth import harmonic_tone, tone
from pipeline.measure.crepe import check_crepe_weights, estimate_pitch_crepe, load_crepe
from pipeline.measure.measurement import measure_audio_bytes
from pipeline.measure.pitch import cents_between
from pipeline.params import stage_params
from tests.real_notes import INSTRUMENTS, flac_bytes, real_note_set


@pytest.fixture(scope="module")
def params():
    return stage_params("measure")


def test_real_note_set_covers_the_families():
    families = {family for _, _, family, _ in INSTRUMENTS}
    assert len(INSTRUMENTS) >= 20
    assert {"organ", "reed", "brass", "low bass", "plucked", "pitched percussion", "voice-like", "strings", "keyboard"} <= families


def test_default_meets_the_bar_on_real_notes_and_noise(params):
    """Every 3rd key of each instrument (72 notes, 36 instruments) and all 30 unpitched clips, through the stage's
    decoding path (16-bit stereo FLAC at 44.1/48 kHz)."""
    clips = real_note_set(every=3)
    errors, noise_unpitched = [], []
    for clip in clips:
        m = measure_audio_bytes(flac_bytes(clip), params)
        if math.isnan(clip.f0_hz):
            noise_unpitched.append(not m["pitched"])
        else:
            errors.append(abs(float(cents_between(m["f0_hz"], clip.f0_hz))) if m["pitched"] else math.inf)
    errors = np.array(errors)
    assert len(errors) >= 70 and len(noise_unpitched) >= 30
    assert np.mean(errors <= 50.0) >= 0.97, sorted(zip(errors, [c.name for c in clips]))[-5:]
    assert np.median(errors) <= 5.0
    assert np.mean(noise_unpitched) >= 0.95


def test_fp16_weights_are_refused_and_explain_the_crepe_full_misses(params):
    sr = 16000
    model = load_crepe("full", "cpu")
    fp32 = {k: v.clone() for k, v in model.state_dict().items()}
    rounded = {k: v.half() if v.is_floating_point() else v for k, v in fp32.items()}
    assert int((~torch.isfinite(rounded["conv2_BN.running_var"])).sum()) == 64  # beyond fp16's 65504
    with pytest.raises(InputError, match="conv2_BN.running_var|float16"):
        check_crepe_weights(rounded, "full.pth as fp16")  # the guard load_crepe applies
    check_crepe_weights(fp32, "full.pth")
    y = tone(440.0, 0.3, sr)
    good = estimate_pitch_crepe(y, sr, params, capacity="full")
    try:  # the GPU run's weights: fp16 on the wire, upcast on the device
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in rounded.items()})
        bad = estimate_pitch_crepe(y, sr, params, capacity="full")
    finally:
        model.load_state_dict(fp32)
    assert good.voiced.mean() > 0.9 and abs(cents_between(np.nanmedian(good.f0_hz), 440.0)) <= 25.0
    assert bad.voiced.mean() < 0.5


def test_crepe_full_agrees_with_tiny_and_the_truth_on_cpu(params):
    sr = 16000
    for f0, seed in ((98.0, 0), (261.6, 2), (880.0, 4)):
        y = harmonic_tone(f0, 0.3, sr, seed=seed)
        got = {cap: estimate_pitch_crepe(y, sr, params, capacity=cap) for cap in ("tiny", "full")}
        for cap, track in got.items():
            assert track.voiced.mean() > 0.9, (cap, f0)
            assert abs(cents_between(np.nanmedian(track.f0_hz), f0)) <= 25.0, (cap, f0)
