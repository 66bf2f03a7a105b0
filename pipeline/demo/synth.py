"""Test signals with known pitch (or none), for the accuracy tests and the measure benchmark.

Every generator returns float32[samples] at sr Hz, peak about 0.5, deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

__all__ = ["tone", "harmonic_tone", "vibrato_tone", "noise", "add_noise", "accuracy_set"]


def tone(f0_hz: float, duration_s: float, sr: int, phase: float = 0.0) -> np.ndarray:
    """A pure sine at f0_hz."""
    t = np.arange(int(duration_s * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * f0_hz * t + phase)).astype(np.float32)


def harmonic_tone(f0_hz: float, duration_s: float, sr: int, n_harmonics: int = 8, fundamental_gain: float = 1.0, seed: int = 0,
                  rolloff: float = 1.0) -> np.ndarray:
    """Harmonics 1..n (below Nyquist) with 1/k**rolloff amplitudes and random phases; fundamental_gain scales
    harmonic 1 (0.03 = a weak fundamental, about -30 dB)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * sr)) / sr
    y = np.zeros_like(t)
    for k in range(1, n_harmonics + 1):
        if k * f0_hz >= sr / 2:
            break
        amp = (fundamental_gain if k == 1 else 1.0) / k**rolloff
        y += amp * np.sin(2 * np.pi * k * f0_hz * t + rng.uniform(0, 2 * np.pi))
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


def vibrato_tone(f0_hz: float, duration_s: float, sr: int, depth_cents: float = 50.0, rate_hz: float = 5.5, n_harmonics: int = 4) -> np.ndarray:
    """A harmonic tone whose f0 swings +-depth_cents around f0_hz at rate_hz."""
    t = np.arange(int(duration_s * sr)) / sr
    inst = f0_hz * 2 ** (depth_cents / 1200 * np.sin(2 * np.pi * rate_hz * t))
    phase = 2 * np.pi * np.cumsum(inst) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, n_harmonics + 1) if k * f0_hz * 1.1 < sr / 2)
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


def noise(kind: str, duration_s: float, sr: int, seed: int = 0, band_hz: tuple[float, float] | None = None) -> np.ndarray:
    """Unpitched noise: kind white | pink | brown | band (band-passed white noise, band_hz = (low, high), 4th order);
    pink and brown noise are cut to band_hz when it is given."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * sr)
    w = rng.standard_normal(n)
    if kind == "white":
        y = w
    elif kind in ("pink", "brown"):
        spec = np.fft.rfft(w)
        f = np.fft.rfftfreq(n, 1 / sr)
        f[0] = f[1]
        spec /= np.sqrt(f) if kind == "pink" else f
        if band_hz is not None:  # band-limited: e.g. engine rumble, brown from 30 Hz
            spec[(f < band_hz[0]) | (f > band_hz[1])] = 0.0
        y = np.fft.irfft(spec, n)
    elif kind == "band":
        lo, hi = band_hz or (500.0, 1000.0)
        y = sosfilt(butter(4, [lo, hi], btype="band", fs=sr, output="sos"), w)
    else:
        raise ValueError(f"unknown noise kind {kind!r} (white, pink, brown, band)")
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


def add_noise(y: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """y plus white noise at snr_db dB below y's power, rescaled to peak 0.5."""
    rng = np.random.default_rng(seed)
    p = float(np.mean(y.astype(np.float64) ** 2))
    out = y + rng.standard_normal(len(y)) * np.sqrt(p / 10 ** (snr_db / 10))
    return (0.5 * out / np.max(np.abs(out))).astype(np.float32)


def accuracy_set(sr: int, duration_s: float = 1.0, seed: int = 0) -> list[tuple[str, np.ndarray, float]]:
    """The accuracy bar's clips: (name, audio, true f0 in Hz or NaN for noise).

    Pitched: pure, harmonic, vibrato, weak-fundamental and noisy (20 dB and 10 dB SNR) tones at f0 from 40 to
    2000 Hz; unpitched: white, pink, brown and band-passed noise (several bands)."""
    f0s = [40.0, 55.0, 82.4, 110.0, 146.8, 220.0, 311.1, 440.0, 622.3, 880.0, 1244.5, 1760.0, 2000.0]
    clips: list[tuple[str, np.ndarray, float]] = []
    for i, f in enumerate(f0s):
        clips.append((f"pure_{f:g}", tone(f, duration_s, sr, phase=i), f))
        clips.append((f"harmonic_{f:g}", harmonic_tone(f, duration_s, sr, seed=seed + i), f))
        clips.append((f"vibrato_{f:g}", vibrato_tone(f, duration_s, sr), f))
        if f >= 80:
            clips.append((f"weakfund_{f:g}", harmonic_tone(f, duration_s, sr, fundamental_gain=0.03, seed=seed + 100 + i), f))
        snr = 20.0 if i % 2 else 10.0
        clips.append((f"noisy{snr:g}dB_{f:g}", add_noise(harmonic_tone(f, duration_s, sr, seed=seed + 200 + i), snr, seed + i), f))
    bands = [(100, 200), (200, 400), (300, 3000), (500, 1000), (1000, 2000), (2000, 4000), (150, 300), (700, 1400)]
    for j in range(3):
        for kind in ("white", "pink", "brown"):
            clips.append((f"{kind}_{j}", noise(kind, duration_s, sr, seed=seed + 300 + j), float("nan")))
    for j, band in enumerate(bands):
        clips.append((f"band_{band[0]}_{band[1]}", noise("band", duration_s, sr, seed=seed + 400 + j, band_hz=band), float("nan")))
    return clips
