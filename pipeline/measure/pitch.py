"""Pitch estimators and the clip-level pitch summary.

An estimator maps `audio: float32[samples] at sr Hz` to a `PitchTrack` (per frame: f0 in Hz, NaN = unvoiced;
voiced flag; confidence 0..1). `summarise_track` turns a track into the clip's pitch figures and the
pitched/unpitched decision (thresholds in params.yaml `measure.pitched`).

Estimators (registry `ESTIMATORS`):
- `yin`: YIN (de Cheveigné & Kawahara 2002) with parabolic interpolation, vectorised with FFTs; a frame is voiced
  when its aperiodicity (the CMNDF minimum) is below `yin.voicing_threshold`. The fast CPU default.
- `pyin`: librosa's probabilistic YIN (HMM-smoothed; slower, f0 quantised to `pyin.resolution` semitones).
- `crepe-tiny`, `crepe-full`: CREPE through torchcrepe (see pipeline.measure.crepe).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.fft

from benchmark.errors import UnknownNameError

__all__ = [
    "PitchTrack",
    "ESTIMATORS",
    "get_estimator",
    "estimate_pitch_yin",
    "estimate_pitch_pyin",
    "estimate_pitch_high",
    "find_fast_periodicity",
    "summarise_track",
    "cents_between",
]


@dataclass(frozen=True)
class PitchTrack:
    """Per-frame pitch of one clip: f0_hz float[frames] (NaN = unvoiced), voiced bool[frames],
    confidence float[frames] in 0..1, frame hop hop_s seconds (frame i centred near i * hop_s)."""

    f0_hz: np.ndarray
    voiced: np.ndarray
    confidence: np.ndarray
    hop_s: float


def cents_between(f_hz: float | np.ndarray, ref_hz: float | np.ndarray) -> float | np.ndarray:
    """Signed interval from ref_hz to f_hz in cents (1200 per octave)."""
    return 1200.0 * np.log2(np.asarray(f_hz, dtype=np.float64) / np.asarray(ref_hz, dtype=np.float64))


def _frames(audio: np.ndarray, frame_len: int, hop: int) -> np.ndarray:
    """float32[samples] -> float64[frames, frame_len], frame i starting at i*hop - frame_len//2 (zero-padded ends)."""
    pad = frame_len // 2
    x = np.pad(audio.astype(np.float64), (pad, pad + frame_len))
    n = 1 + len(audio) // hop
    view = np.lib.stride_tricks.sliding_window_view(x, frame_len)[::hop]
    return view[:n]


def _differences(frames: np.ndarray, win: int, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """YIN's difference function of each frame, integration window win samples, lags 0..max_lag, two ways:
    (cmndf, tilted), both float[frames, max_lag + 1].

    cmndf is YIN's cumulative mean normalised difference. tilted is the plain normalised difference
    d(tau) / (energy(0) + energy(tau)), in 0..2 (1 - McLeod's NSDF), of the first difference of the frame
    (a +6 dB/octave tilt, from the same correlations): it does not drift with the lag, and rumble under the
    fundamental does not dominate it, so it compares a period with its multiples fairly.
    """
    n_fft = scipy.fft.next_fast_len(frames.shape[1] + win, real=True)
    spec_all = scipy.fft.rfft(frames, n_fft, axis=1)
    spec_win = scipy.fft.rfft(frames[:, :win], n_fft, axis=1)
    corr = scipy.fft.irfft(spec_all * np.conj(spec_win), n_fft, axis=1)[:, : max_lag + 2]  # sum_j x[j+tau] x[j], j < win
    csum = np.concatenate([np.zeros((frames.shape[0], 1)), np.cumsum(frames**2, axis=1)], axis=1)
    lags = np.arange(max_lag + 1)
    energy = csum[:, lags + win] - csum[:, lags]  # energy of x[tau : tau + win]
    diff = np.maximum(energy[:, :1] + energy - 2.0 * corr[:, : max_lag + 1], 0.0)
    diff[:, 0] = 0.0
    cum = np.cumsum(diff[:, 1:], axis=1)
    cmndf = np.ones_like(diff)
    cmndf[:, 1:] = diff[:, 1:] * lags[1:] / np.maximum(cum, 1e-12)
    # y = x[n] - x[n-1]: its correlation is 2 r(tau) - r(tau-1) - r(tau+1) (to one sample at the window's edge)
    dx = np.diff(frames, axis=1, prepend=frames[:, :1])
    dsum = np.concatenate([np.zeros((frames.shape[0], 1)), np.cumsum(dx**2, axis=1)], axis=1)
    d_energy = dsum[:, lags + win] - dsum[:, lags]
    r_prev = np.concatenate([corr[:, 1:2], corr[:, : max_lag]], axis=1)  # r(-1) = r(1) for the 0 lag
    d_corr = 2.0 * corr[:, : max_lag + 1] - r_prev - corr[:, 1 : max_lag + 2]
    total = d_energy[:, :1] + d_energy
    tilted = np.clip((total - 2.0 * d_corr) / np.maximum(total, 1e-12), 0.0, 2.0)
    return cmndf, tilted


def _descend(seg: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per row, walk from column idx to the nearest local minimum of seg (downhill, either side)."""
    rows = np.arange(seg.shape[0])
    last = seg.shape[1] - 1
    for _ in range(seg.shape[1]):
        right = np.minimum(idx + 1, last)
        left = np.maximum(idx - 1, 0)
        go_r = seg[rows, right] < seg[rows, idx]
        go_l = ~go_r & (seg[rows, left] < seg[rows, idx])
        if not (go_r.any() or go_l.any()):
            break
        idx = np.where(go_r, right, np.where(go_l, left, idx))
    return idx


def estimate_pitch_yin(audio: np.ndarray, sr: int, params: dict) -> PitchTrack:
    """YIN f0 track of float32[samples] at sr Hz between params fmin_hz and fmax_hz (params `yin`: threshold,
    voicing_threshold, window_s, octave_tol); hop params hop_s seconds.

    The period is YIN's first dip under the threshold (else the deepest dip), then checked one octave and a twelfth
    up: a dip at tau/2 or tau/3 whose plain normalised difference is within yin.octave_tol of tau's is the period
    (noise under the fundamental, such as engine rumble, otherwise makes the cumulative normalisation favour 2*tau).
    """
    cfg = params.get("yin", {})
    hop = max(1, int(round(params["hop_s"] * sr)))
    min_lag = max(2, int(np.floor(sr / params["fmax_hz"])))
    max_lag = int(np.ceil(sr / params["fmin_hz"])) + 1
    win = max(int(round(cfg.get("window_s", 0.064) * sr)), max_lag)
    frames = _frames(audio, win + max_lag + 2, hop)
    d, nd = _differences(frames, win, max_lag + 1)
    seg = d[:, min_lag : max_lag + 1]
    below = seg < cfg.get("threshold", 0.2)
    # The first dip under the threshold (YIN's absolute threshold), followed down to its local minimum;
    # frames without such a dip take the global minimum.
    first = np.where(below.any(axis=1), below.argmax(axis=1), seg.argmin(axis=1))
    idx = _descend(seg, first)
    rows = np.arange(seg.shape[0])
    voicing = cfg.get("voicing_threshold", 0.3)
    tol = cfg.get("octave_tol", 0.0)
    if tol > 0:
        for k in (2, 3):  # octave, then twelfth: the shortest period that explains the frame as well
            tau = idx + min_lag
            cand = np.rint(tau / k).astype(np.int64) - min_lag
            ok = cand >= 1
            c = _descend(seg, np.clip(cand, 0, seg.shape[1] - 1))
            near = np.abs(c + min_lag - tau / k) <= np.maximum(1.0, 0.03 * tau / k)
            better = ok & near & (nd[rows, c + min_lag] <= nd[rows, tau] + tol) & (nd[rows, c + min_lag] < voicing)
            idx = np.where(better, c, idx)
    tau = idx + min_lag
    aperiodicity = d[rows, tau]
    # Parabolic interpolation of the dip (tau +- 1 exist: d has max_lag + 2 columns).
    left, mid, right = d[rows, tau - 1], aperiodicity, d[rows, tau + 1]
    denom = left - 2.0 * mid + right
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    period = tau + np.clip(shift, -1.0, 1.0)
    f0 = sr / period
    energy = (frames[:, :win] ** 2).mean(axis=1)
    voiced = (aperiodicity < voicing) & (energy > 1e-10)
    voiced &= (f0 >= params["fmin_hz"]) & (f0 <= params["fmax_hz"])
    conf = np.clip(1.0 - aperiodicity, 0.0, 1.0)
    return PitchTrack(np.where(voiced, f0, np.nan), voiced, conf, hop / sr)


def find_fast_periodicity(audio: np.ndarray, sr: int, params: dict) -> np.ndarray:
    """bool[frames] (hop params hop_s): frames periodic faster than params fmax_hz, i.e. whose YIN difference
    (window high.detect_window_s) dips under yin.voicing_threshold at a lag of 2..sr/fmax_hz samples. Such a frame's
    true period is below the range of the base pass, which could only report a multiple of it (an octave error)."""
    hop = max(1, int(round(params["hop_s"] * sr)))
    top = max(2, int(np.floor(sr / params["fmax_hz"])))
    win = max(int(round(params["high"].get("detect_window_s", 0.008) * sr)), 4 * top)
    frames = _frames(audio, win + top + 3, hop)
    d, _ = _differences(frames, win, top + 1)
    energy = (frames[:, :win] ** 2).mean(axis=1)
    return (d[:, 2 : top + 1].min(axis=1) < params.get("yin", {}).get("voicing_threshold", 0.3)) & (energy > 1e-10)


def estimate_pitch_high(audio: np.ndarray, sr: int, params: dict) -> PitchTrack:
    """YIN f0 track over the high range (params `high`: fmin_hz..fmax_hz, window_s) of float32[samples] at sr Hz,
    analysed at the higher rate high.sr Hz (the window is upsampled; a period of a few samples at sr Hz cannot be
    timed to the cent). Frames and hop as the base pass, so one activity mask serves both."""
    from pipeline.measure.audio import resample

    hi = params["high"]
    up = int(hi["sr"])
    sub = {**params, "fmin_hz": hi["fmin_hz"], "fmax_hz": hi["fmax_hz"],
           "yin": {**params.get("yin", {}), "window_s": hi.get("window_s", 0.016)}}
    return estimate_pitch_yin(resample(audio, sr, up) if up != sr else audio, up, sub)


def estimate_pitch_pyin(audio: np.ndarray, sr: int, params: dict) -> PitchTrack:
    """librosa.pyin f0 track of float32[samples] at sr Hz (params `pyin`: frame_length, resolution in semitones);
    confidence = pYIN's voiced probability."""
    import librosa

    cfg = params.get("pyin", {})
    hop = max(1, int(round(params["hop_s"] * sr)))
    f0, voiced, prob = librosa.pyin(
        audio,
        sr=sr,
        fmin=params["fmin_hz"],
        fmax=params["fmax_hz"],
        frame_length=int(cfg.get("frame_length", 2048)),
        hop_length=hop,
        resolution=float(cfg.get("resolution", 0.1)),
    )
    voiced = np.asarray(voiced, dtype=bool) & np.isfinite(f0)
    return PitchTrack(np.where(voiced, f0, np.nan), voiced, np.nan_to_num(prob), hop / sr)


def _crepe(capacity: str) -> Callable[[np.ndarray, int, dict], PitchTrack]:
    def estimate(audio: np.ndarray, sr: int, params: dict) -> PitchTrack:
        from pipeline.measure.crepe import estimate_pitch_crepe

        return estimate_pitch_crepe(audio, sr, params, capacity=capacity)

    estimate.__name__ = f"estimate_pitch_crepe_{capacity}"
    return estimate


ESTIMATORS: dict[str, Callable[[np.ndarray, int, dict], PitchTrack]] = {
    "yin": estimate_pitch_yin,
    "pyin": estimate_pitch_pyin,
    "crepe-tiny": _crepe("tiny"),
    "crepe-full": _crepe("full"),
}


def get_estimator(name: str) -> Callable[[np.ndarray, int, dict], PitchTrack]:
    """The estimator registered under name; an unknown name errors with the closest names."""
    if name not in ESTIMATORS:
        close = difflib.get_close_matches(name, list(ESTIMATORS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"unknown pitch estimator {name!r} (known: {', '.join(ESTIMATORS)}){hint}")
    return ESTIMATORS[name]


def summarise_track(track: PitchTrack, active: np.ndarray, params: dict, min_confidence: float = 0.0) -> dict:
    """Clip-level pitch from a track and bool[frames] activity (frames that are not silence).

    Returns f0_hz (median over voiced active frames; NaN unless pitched), voiced_frac (of active frames),
    f0_confidence (median confidence of voiced active frames, 0 when none), f0_iqr_cents (IQR of voiced f0 in
    cents; NaN when fewer than 2 voiced frames) and pitched: voiced_frac >= pitched.min_voiced_frac and
    f0_iqr_cents <= pitched.max_iqr_cents and f0_confidence >= min_confidence (the estimator's own scale).
    Also voiced_median_hz (the median even when unpitched; NaN without voiced frames) and unpitched_reason:
    "" when pitched, else the first test failed: no_voiced | few_voiced | unstable | low_confidence.
    """
    cfg = params["pitched"]
    n = min(len(track.f0_hz), len(active))
    voiced = track.voiced[:n] & active[:n] & np.isfinite(track.f0_hz[:n])
    n_active = int(active[:n].sum())
    voiced_frac = float(voiced.sum() / n_active) if n_active else 0.0
    f0s = track.f0_hz[:n][voiced]
    if len(f0s) >= 2:
        median = float(np.median(f0s))
        q75, q25 = np.percentile(cents_between(f0s, median), [75, 25])
        iqr = float(q75 - q25)
        conf = float(np.median(track.confidence[:n][voiced]))
    else:
        median, iqr, conf = float("nan"), float("nan"), 0.0
    if len(f0s) < 2:
        reason = "no_voiced"
    elif voiced_frac < cfg["min_voiced_frac"]:
        reason = "few_voiced"
    elif iqr > cfg["max_iqr_cents"]:
        reason = "unstable"
    elif conf < min_confidence:
        reason = "low_confidence"
    else:
        reason = ""
    pitched = reason == ""
    return {
        "f0_hz": median if pitched else float("nan"),
        "voiced_frac": voiced_frac,
        "f0_confidence": conf,
        "f0_iqr_cents": iqr,
        "pitched": pitched,
        "voiced_median_hz": median,
        "unpitched_reason": reason,
    }
