"""Pitch estimators and the clip-level pitch summary.

An estimator maps `audio: float32[samples] at sr Hz` to a `PitchTrack` (per frame: f0 in Hz, NaN = unvoiced;
voiced flag; confidence 0..1). `summarise_track` turns a track into the clip's pitch figures and the
pitched/unpitched decision (thresholds in params.yaml `measure.pitched`).

Estimators (registry `ESTIMATORS`):
- `yin`: YIN (de Cheveigné & Kawahara 2002) with parabolic interpolation, vectorised with FFTs, plus an octave
  check; a frame is voiced when its aperiodicity (the CMNDF minimum) is below `yin.voicing_threshold`. The fast CPU
  default. Pitch above `fmax_hz` is measured by a second YIN pass at a higher rate where a clip needs it
  (`estimate_pitch_high`, `find_fast_periodicity`; the decision is pipeline.measure.measurement's).
- `pyin`: librosa's probabilistic YIN (HMM-smoothed; slower, f0 quantised to `pyin.resolution` semitones).
- `crepe-tiny`, `crepe-full`: CREPE through torchcrepe (see pipeline.measure.crepe).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import numpy as np
import scipy.fft

from benchmark.errors import UnknownNameError
from pipeline.measure.track import PitchTrack

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


def cents_between(f_hz: float | np.ndarray, ref_hz: float | np.ndarray) -> float | np.ndarray:
    """Signed interval from ref_hz to f_hz in cents (1200 per octave)."""
    return 1200.0 * np.log2(np.asarray(f_hz, dtype=np.float64) / np.asarray(ref_hz, dtype=np.float64))


def _frames(audio: np.ndarray, frame_len: int, hop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32[samples] -> (x, starts, frames): x the float64 signal zero-padded by frame_len//2 in front (and a
    frame behind), starts int[frames] = i*hop, frames the strided view float64[frames, frame_len] of x, frame i =
    x[starts[i] : starts[i] + frame_len], i.e. audio from i*hop - frame_len//2."""
    pad = frame_len // 2
    x = np.pad(audio.astype(np.float64), (pad, pad + frame_len))
    n = 1 + len(audio) // hop
    view = np.lib.stride_tricks.sliding_window_view(x, frame_len)[::hop][:n]
    return x, np.arange(n, dtype=np.int64) * hop, view


def _window_sums(csum: np.ndarray, starts: np.ndarray, lags: np.ndarray, win: int) -> np.ndarray:
    """float[frames, lags]: sum of the signal behind csum (its cumulative sum, csum[0] = 0) over
    [start + lag, start + lag + win) for each frame start and lag."""
    at = starts[:, None] + lags[None, :]
    return csum[at + win] - csum[at]


def _differences(frames: np.ndarray, csum2: np.ndarray, starts: np.ndarray, win: int, max_lag: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YIN's difference function of each frame, integration window win samples, lags 0..max_lag.

    csum2: cumulative sum of the padded signal's squares (csum2[0] = 0). Returns (cmndf, diff, corr): cmndf the
    cumulative mean normalised difference (for choosing the dip and for voicing), diff the raw difference,
    symmetric about a period, so a parabola through it times the period to well under a cent where the cmndf's
    lag-dependent normalisation skews it (10+ cents at 10 samples per period), each float[frames, max_lag + 1];
    corr float[frames, max_lag + 2] the correlations sum_j x[j+tau] x[j], j < win.
    """
    n_fft = scipy.fft.next_fast_len(frames.shape[1], real=True)  # j + tau < frame length: no circular wrap
    spec_all = scipy.fft.rfft(frames, n_fft, axis=1)
    spec_win = scipy.fft.rfft(frames[:, :win], n_fft, axis=1)
    corr = scipy.fft.irfft(spec_all * np.conj(spec_win), n_fft, axis=1)[:, : max_lag + 2]
    lags = np.arange(max_lag + 1)
    energy = _window_sums(csum2, starts, lags, win)  # energy of x[tau : tau + win]
    diff = np.maximum(energy[:, :1] + energy - 2.0 * corr[:, : max_lag + 1], 0.0)
    diff[:, 0] = 0.0
    cum = np.cumsum(diff[:, 1:], axis=1)
    cmndf = np.ones_like(diff)
    cmndf[:, 1:] = diff[:, 1:] * lags[1:] / np.maximum(cum, 1e-12)
    return cmndf, diff, corr


def _tilted_difference(corr: np.ndarray, dsum2: np.ndarray, starts: np.ndarray, win: int, lag: np.ndarray) -> np.ndarray:
    """float[frames]: the plain normalised difference d(lag) / (energy(0) + energy(lag)), in 0..2 (1 - McLeod's
    NSDF), of the frame's first difference x[n] - x[n-1] (a +6 dB/octave tilt), at one lag per frame.

    Unlike the cmndf it does not drift with the lag, and rumble under the fundamental does not dominate it, so it
    compares a period with its multiples fairly. The tilted signal's correlation is 2 r(tau) - r(tau-1) - r(tau+1)
    of the frame's (to one sample at the window's edge); dsum2 is the cumulative sum of the tilted signal's squares.
    """
    rows = np.arange(corr.shape[0])
    r = 2.0 * corr[rows, lag] - corr[rows, np.abs(lag - 1)] - corr[rows, lag + 1]
    e0 = dsum2[starts + win] - dsum2[starts]
    el = dsum2[starts + lag + win] - dsum2[starts + lag]
    total = e0 + el
    return np.clip((total - 2.0 * r) / np.maximum(total, 1e-12), 0.0, 2.0)


def _cumsum2(x: np.ndarray) -> np.ndarray:
    """Cumulative sum of x**2 with a leading 0."""
    out = np.empty(len(x) + 1)
    out[0] = 0.0
    np.cumsum(x * x, out=out[1:])
    return out


def estimate_pitch_yin(audio: np.ndarray, sr: int, params: dict) -> PitchTrack:
    """YIN f0 track of float32[samples] at sr Hz between params fmin_hz and fmax_hz (params `yin`: threshold,
    voicing_threshold, window_s, octave_tol); hop params hop_s seconds.

    The period is YIN's first dip under the threshold (else the deepest dip), then checked one octave and a twelfth
    up: a dip at tau/2 or tau/3 where the tilted normalised difference (_tilted_difference) is under
    yin.voicing_threshold and within yin.octave_tol of tau's, and YIN's own dip is under yin.octave_max_aperiodicity,
    is the period (noise under the fundamental, such as engine rumble, otherwise makes the cumulative normalisation
    favour 2*tau). Without the last test a tone with a sub-octave stop (an organ's 16') or a strong third harmonic (a
    harmonica) moved to a lag that does not repeat at all and came out unvoiced or a twelfth high.
    """
    cfg = params["yin"]
    hop = max(1, int(round(params["hop_s"] * sr)))
    min_lag = max(2, int(np.floor(sr / params["fmax_hz"])))
    max_lag = int(np.ceil(sr / params["fmin_hz"])) + 1
    win = max(int(round(cfg["window_s"] * sr)), max_lag)
    x, starts, frames = _frames(audio, win + max_lag + 2, hop)
    csum2 = _cumsum2(x)
    d, raw, corr = _differences(frames, csum2, starts, win, max_lag + 1)
    seg = d[:, min_lag : max_lag + 1]
    below = seg < cfg["threshold"]
    # The first dip under the threshold (YIN's absolute threshold), followed down to its local minimum;
    # frames without such a dip take the global minimum.
    idx = np.where(below.any(axis=1), below.argmax(axis=1), seg.argmin(axis=1))
    rows = np.arange(seg.shape[0])
    for _ in range(seg.shape[1]):
        nxt = np.minimum(idx + 1, seg.shape[1] - 1)
        step = seg[rows, nxt] < seg[rows, idx]
        if not step.any():
            break
        idx = np.where(step, nxt, idx)
    voicing = cfg["voicing_threshold"]
    tol = cfg["octave_tol"]
    move_max = cfg["octave_max_aperiodicity"]
    if tol > 0:
        dsum2 = _cumsum2(np.diff(x, prepend=x[0]))
        for k in (2, 3):  # octave, then twelfth: the shortest period that explains the frame as well
            tau = idx + min_lag
            centre = np.rint(tau / k).astype(np.int64) - min_lag
            ok = centre >= 1
            centre = np.clip(centre, 1, seg.shape[1] - 2)
            near = centre[:, None] + np.arange(-1, 2)[None, :]  # the dip within a lag of tau / k
            c = near[rows, seg[rows[:, None], near].argmin(axis=1)]
            short = _tilted_difference(corr, dsum2, starts, win, c + min_lag)
            better = ok & (short < voicing) & (d[rows, c + min_lag] < move_max) & (short <= _tilted_difference(corr, dsum2, starts, win, tau) + tol)
            idx = np.where(better, c, idx)
    tau = idx + min_lag
    aperiodicity = d[rows, tau]
    # Parabolic interpolation of the dip in the raw difference (tau +- 1 exist: it has max_lag + 2 columns).
    left, mid, right = raw[rows, tau - 1], raw[rows, tau], raw[rows, tau + 1]
    denom = left - 2.0 * mid + right
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    period = tau + np.clip(shift, -1.0, 1.0)
    f0 = sr / period
    energy = (csum2[starts + win] - csum2[starts]) / win
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
    win = max(int(round(params["high"]["detect_window_s"] * sr)), 4 * top)
    x, starts, frames = _frames(audio, win + top + 3, hop)
    csum2 = _cumsum2(x)
    d, _, _ = _differences(frames, csum2, starts, win, top + 1)
    energy = (csum2[starts + win] - csum2[starts]) / win
    return (d[:, 2 : top + 1].min(axis=1) < params["yin"]["voicing_threshold"]) & (energy > 1e-10)


def estimate_pitch_high(audio: np.ndarray, sr: int, params: dict) -> PitchTrack:
    """YIN f0 track over the high range (params `high`: fmin_hz..fmax_hz, window_s) of float32[samples] at sr Hz,
    analysed at the higher rate high.sr Hz (the window is upsampled; a period of a few samples at sr Hz cannot be
    timed to the cent). Frames and hop as the base pass, so one activity mask serves both."""
    from pipeline.measure.audio import resample

    hi = params["high"]
    up = int(hi["sr"])
    sub = {**params, "fmin_hz": hi["fmin_hz"], "fmax_hz": hi["fmax_hz"],
           "yin": {**params["yin"], "window_s": hi["window_s"]}}
    return estimate_pitch_yin(resample(audio, sr, up) if up != sr else audio, up, sub)


def estimate_pitch_pyin(audio: np.ndarray, sr: int, params: dict) -> PitchTrack:
    """librosa.pyin f0 track of float32[samples] at sr Hz (params `pyin`: frame_length, resolution in semitones);
    confidence = pYIN's voiced probability."""
    import librosa

    cfg = params["pyin"]
    hop = max(1, int(round(params["hop_s"] * sr)))
    f0, voiced, prob = librosa.pyin(
        audio,
        sr=sr,
        fmin=params["fmin_hz"],
        fmax=params["fmax_hz"],
        frame_length=int(cfg["frame_length"]),
        hop_length=hop,
        resolution=float(cfg["resolution"]),
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


def summarise_track(track: PitchTrack, active: np.ndarray, params: dict, min_confidence: float = 0.0,
                    steady: tuple[float, float] = (0.0, np.inf)) -> dict:
    """Clip-level pitch from a track and bool[frames] activity (frames that are not silence).

    Returns f0_hz (median over voiced active frames; NaN unless pitched), voiced_frac (of active frames),
    f0_confidence (median confidence of voiced active frames, 0 when none), f0_iqr_cents (IQR of voiced f0 in
    cents; NaN when fewer than 2 voiced frames) and pitched: voiced_frac >= pitched.min_voiced_frac and
    f0_iqr_cents <= pitched.max_iqr_cents and f0_confidence >= min_confidence (the estimator's own scale), and,
    steady = (below, max_iqr): a clip whose f0_confidence is under `below` must hold f0_iqr_cents <= max_iqr (a weakly
    periodic sound counts as pitched only when its pitch holds still: snares and noise bands wander).
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
    elif iqr > cfg["max_iqr_cents"] or (conf < steady[0] and iqr > steady[1]):
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
