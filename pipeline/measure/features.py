"""Non-pitch figures of a clip: spectral centroid (brightness), loudness (LUFS, RMS and peak dBFS), durations.

All take `audio: float32[samples] at sr Hz` (mono, full scale 1.0).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

__all__ = ["spectral_centroid_hz", "loudness_lufs", "rms_dbfs", "peak_dbfs", "k_weighting"]


def spectral_centroid_hz(audio: np.ndarray, sr: int, active: np.ndarray | None = None, n_fft: int = 1024) -> float:
    """Centroid in Hz of the power spectrum averaged over frames (hop n_fft/2, Hann), counting only frames
    marked in `active` (bool per frame, frame i starting at i*n_fft/2) when given; NaN for no usable frame."""
    hop = n_fft // 2
    if len(audio) < n_fft:
        audio = np.pad(audio, (0, n_fft - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), n_fft)[::hop]
    if active is not None:
        keep = active[: len(frames)]
        frames = frames[: len(keep)][keep]
    if len(frames) == 0:
        return float("nan")
    power = (np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2).mean(axis=0)
    total = power.sum()
    if total <= 0:
        return float("nan")
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    return float((freqs * power).sum() / total)


def k_weighting(sr: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """ITU-R BS.1770 K-weighting as two biquads (b, a) designed for sr Hz (high shelf, then high pass)."""
    # Shelf: the BS.1770 pre-filter, re-derived for any rate from its analogue parameters.
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sr)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf_b = np.array([(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0])
    shelf_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    # High pass (RLB weighting).
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sr)
    a0 = 1 + k / q + k * k
    hp_b = np.array([1.0, -2.0, 1.0])
    hp_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    return [(shelf_b, shelf_a), (hp_b, hp_a)]


def loudness_lufs(audio: np.ndarray, sr: int) -> float:
    """Integrated loudness in LUFS (BS.1770-4, mono: 400 ms blocks, 75 % overlap, gates at -70 LUFS and -10 LU);
    -inf-free: returns NaN when no block passes the absolute gate. Clips shorter than a block count as one block."""
    y = audio.astype(np.float64)
    for b, a in k_weighting(sr):
        y = lfilter(b, a, y)
    block, step = int(round(0.4 * sr)), int(round(0.1 * sr))
    if len(y) <= block:
        ms = np.array([np.mean(y**2)]) if len(y) else np.array([0.0])
    else:
        csum = np.concatenate([[0.0], np.cumsum(y**2)])
        starts = np.arange(0, len(y) - block + 1, step)
        ms = (csum[starts + block] - csum[starts]) / block
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10 * np.log10(ms)
    gated = ms[block_lufs > -70.0]
    if len(gated) == 0:
        return float("nan")
    rel = -0.691 + 10 * np.log10(gated.mean()) - 10.0
    gated = ms[block_lufs > max(rel, -70.0)]
    return float(-0.691 + 10 * np.log10(gated.mean()))


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level in dBFS (a full-scale sine reads -3.01); NaN for empty audio, -inf-free floor at -200."""
    if len(audio) == 0:
        return float("nan")
    return float(10 * np.log10(max(float(np.mean(audio.astype(np.float64) ** 2)), 1e-20)))


def peak_dbfs(audio: np.ndarray) -> float:
    """Sample peak in dBFS (no oversampling); NaN for empty audio, floor at -200."""
    if len(audio) == 0:
        return float("nan")
    return float(20 * np.log10(max(float(np.max(np.abs(audio))), 1e-10)))
