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
    "find_vibrato",
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
    dsum2 = _cumsum2(np.diff(x, prepend=x[0]))
    if tol > 0:
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
    energy = (csum2[starts + win] - csum2[starts]) / win
    if cfg.get("window_octave", False):
        tau = _decide_octave(tau, (d[rows, tau] < voicing) & (energy > 1e-10), d, corr, csum2, dsum2, starts, win,
                             min_lag, max_lag, cfg)
    aperiodicity = d[rows, tau]
    # Parabolic interpolation of the dip in the raw difference (tau +- 1 exist: it has max_lag + 2 columns).
    left, mid, right = raw[rows, tau - 1], raw[rows, tau], raw[rows, tau + 1]
    denom = left - 2.0 * mid + right
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    period = tau + np.clip(shift, -1.0, 1.0)
    f0 = sr / period
    voiced = (aperiodicity < voicing) & (energy > 1e-10)
    voiced &= (f0 >= params["fmin_hz"]) & (f0 <= params["fmax_hz"])
    conf = np.clip(1.0 - aperiodicity, 0.0, 1.0)
    return PitchTrack(np.where(voiced, f0, np.nan), voiced, conf, hop / sr)


def _dip_near(d: np.ndarray, lag: np.ndarray, reach: int, lo: int, hi: int) -> np.ndarray:
    """int[frames]: for each frame, the lag within reach samples of lag (clipped to lo..hi) where d is lowest."""
    rows = np.arange(d.shape[0])
    near = np.clip(lag[:, None] + np.arange(-reach, reach + 1)[None, :], lo, hi)
    return near[rows, d[rows[:, None], near].argmin(axis=1)]


def _plain_difference(corr: np.ndarray, csum2: np.ndarray, starts: np.ndarray, win: int, lag: np.ndarray) -> np.ndarray:
    """float[frames]: the normalised difference d(lag) / (energy(0) + energy(lag)) of the frame itself, in 0..2."""
    rows = np.arange(corr.shape[0])
    e0 = csum2[starts + win] - csum2[starts]
    total = e0 + csum2[starts + lag + win] - csum2[starts + lag]
    return np.clip((total - 2.0 * corr[rows, lag]) / np.maximum(total, 1e-12), 0.0, 2.0)


def _parabola_min(left: np.ndarray, mid: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(value, dip): the minimum of the parabola through (-1, left), (0, mid), (1, right) where it bends upwards with
    its vertex within a sample of 0 (dip: a local minimum at mid), else mid; value >= 0."""
    bend = left - 2.0 * mid + right
    safe = np.where(bend > 1e-12, bend, 1.0)
    dip = (bend > 1e-12) & (np.abs(left - right) <= 2.0 * safe)
    return np.where(dip, np.clip(mid - (left - right) ** 2 / (8.0 * safe), 0.0, mid), mid), dip


_TILT_MIN_LAG = 100  # samples: an integer lag within 0.5 % of the period (see _decide_octave)


def _decide_octave(tau: np.ndarray, voiced: np.ndarray, d: np.ndarray, corr: np.ndarray, csum2: np.ndarray, dsum2: np.ndarray,
                   starts: np.ndarray, win: int, min_lag: int, max_lag: int, cfg: dict) -> np.ndarray:
    """int[frames]: each frame's period (lag in samples) on the one octave the whole window supports.

    tau int[frames]: each frame's own period (YIN's dip); voiced bool[frames]: frames periodic at it. The voiced frames'
    periods are folded onto one octave: their pitch class is the mode of log2(tau) mod 1 (48 bins, 25 cents each),
    and the frames within yin.fold_cents of that class, whatever their octave, vote. Candidate periods are the class's
    octaves and those of its twelfth above and below (a strong third harmonic) in the lag range, no further than a
    twelfth from the frames' median period; at each, a frame's lag
    is its own period times the ratio, re-found as the dip of d within two samples. A candidate counts where most
    frames have a dip of the plain normalised difference there and the median of min(d, tilted difference) is under
    yin.voicing_threshold (short lags of a low tone differ little from it but do not dip; rumble under a fundamental
    inflates d at the period, not the tilted difference). Its score is the median over frames of the smaller of the
    plain and the tilted normalised differences, each at the vertex of a parabola through three lags (an integer lag
    misses a short period by up to half a sample, which at 16 kHz scored a 523 Hz note's period worse than twice it).
    The plain one holds an organ's 16' stop (0.8 at the 8' period), the tilted one rumble and the inharmonic upper
    partials of struck bars. The window's period is the shortest candidate scoring within yin.octave_tol_window of the
    best (a period repeats at its multiples, so they score as well; half a period of a tone with weak odd harmonics
    scores worse, an oboe E5's 0.056), and the voting frames move to it, up or down; other frames keep their own.
    """
    if int(voiced.sum()) < 2:
        return tau
    logt = np.log2(tau.astype(np.float64))
    bins = 48
    hist = np.bincount((np.floor((logt[voiced] % 1.0) * bins).astype(np.int64)) % bins, minlength=bins).astype(np.float64)
    smooth = hist + 0.5 * (np.roll(hist, 1) + np.roll(hist, -1))
    centre = (int(smooth.argmax()) + 0.5) / bins
    # each frame's offset from the class, in octaves, wrapped to -0.5 .. 0.5
    off = (logt - centre + 0.5) % 1.0 - 0.5
    centre_shift = float(np.median(off[voiced & (np.abs(off) <= 1.5 / bins)])) if np.any(voiced & (np.abs(off) <= 1.5 / bins)) else 0.0
    centre += centre_shift
    off = (logt - centre + 0.5) % 1.0 - 0.5
    member = voiced & (np.abs(off) * 1200.0 <= float(cfg["fold_cents"]))
    if int(member.sum()) < 2:
        return tau
    own_octave = np.rint(logt - centre - off).astype(np.int64)  # frame i's period is 2**(centre + own + off)
    # candidate periods: the class's octaves, and those of its twelfth above and below (a strong third harmonic)
    cands = [(n, m) for m in (1.0, 3.0, 1.0 / 3.0)
             for n in range(int(np.floor(np.log2(min_lag / m) - centre)) - 1, int(np.ceil(np.log2(max_lag / m) - centre)) + 2)
             if min_lag <= m * 2.0 ** (centre + n) <= max_lag]
    idx = np.flatnonzero(member)
    # at most a twelfth from where the frames themselves are (a noisy buzz's long lags repeat as well as any)
    own = float(np.median(tau[idx]))
    cands = [(n, m) for n, m in cands if own / 3.01 <= m * 2.0 ** (centre + n) <= own * 3.01]
    lags, plains, both, periods = {}, {}, {}, {}
    for n, m in cands:
        target = m * tau[idx] * 2.0 ** (n - own_octave[idx])
        ok = (target >= min_lag) & (target <= max_lag)
        lag = _dip_near(d[idx], np.rint(np.clip(target, min_lag, max_lag)).astype(np.int64), 2, min_lag, max_lag)
        # a period is a dip of the difference (short lags of a low tone differ little from the tone, but rise), and
        # periodic there by YIN's measure or the tilted one (rumble under the fundamental inflates YIN's at a period)
        plain, dip = _parabola_min(*(_plain_difference(corr[idx], csum2, starts[idx], win, lag + k) for k in (-1, 0, 1)))
        tilted, _ = _parabola_min(*(_tilted_difference(corr[idx], dsum2, starts[idx], win, lag + k) for k in (-1, 0, 1)))
        aperiodic = np.minimum(d[idx, lag], tilted)
        if np.mean(dip & ok) >= 0.5 and np.median(np.where(ok, aperiodic, 2.0)) < float(cfg["voicing_threshold"]):
            lags[(n, m)] = lag
            plains[(n, m)] = float(np.median(np.where(ok, plain, 2.0)))
            both[(n, m)] = float(np.median(np.where(ok, np.minimum(plain, tilted), 2.0)))
            periods[(n, m)] = m * 2.0 ** (centre + n)
    if not periods:
        return tau
    # the tilted difference, ruled by the upper harmonics, is no longer a parabola within half a sample of a short
    # period: it joins the score only where every candidate is a long lag
    scores = both if min(periods.values()) >= _TILT_MIN_LAG else plains
    best = min(scores.values())
    chosen = min((c for c in scores if scores[c] <= best + float(cfg["octave_tol_window"])), key=periods.__getitem__)
    out = tau.copy()
    out[idx] = lags[chosen]
    return out


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


def find_vibrato(cents: np.ndarray, frame: np.ndarray, hop_s: float, cfg: dict) -> tuple[float, float, np.ndarray] | None:
    """A vibrato in a voiced pitch track, or None.

    cents float[n]: voiced frames' pitch in cents (from any reference), at frame indices frame int[n] (increasing),
    hop hop_s seconds; cfg the `pitched.vibrato` params (rate_hz [lo, hi], min_periodicity, max_extent_cents,
    min_cycles). The track is filled across gaps of a few frames (linearly), and its autocorrelation (mean removed)
    searched at lags of one cycle of lo..hi Hz: a peak of at least min_periodicity there, after a trough of
    -min_periodicity / 2 or lower (the track swings across its centre), over at least min_cycles cycles, is a vibrato
    of that period. Its centre is the track's moving mean over exactly one cycle (which cancels a
    periodic modulation of any shape). Returns (rate Hz, extent cents = half the 5-95 % range of the track about
    that centre, centre float[m] the centre over the track's span, cents) when the extent is at most
    max_extent_cents. A drift, a glide or the frame-to-frame scatter of noise has no such peak.
    """
    if len(cents) < 4:
        return None
    span = int(frame[-1] - frame[0]) + 1
    if len(cents) < 0.8 * span:  # too holey to judge a periodicity
        return None
    grid = np.interp(np.arange(span), frame - frame[0], cents)
    lo_lag = max(2, int(np.floor(1.0 / (float(cfg["rate_hz"][1]) * hop_s))))
    hi_lag = int(np.ceil(1.0 / (float(cfg["rate_hz"][0]) * hop_s)))
    hi_lag = min(hi_lag, span // 2 - 1)
    if hi_lag <= lo_lag:
        return None
    x = grid - grid.mean()
    power = float(np.dot(x, x))
    if power <= 1e-9:
        return None
    ac = np.array([np.dot(x[:-lag], x[lag:]) / power * span / (span - lag) for lag in range(1, hi_lag + 2)])
    # ac[j] is lag j + 1. A vibrato's cycle is a peak inside lo..hi (not the edge of the range, where a drift's
    # falling autocorrelation tops out), after a trough: the track swings to the other side of its centre between.
    inner = np.arange(lo_lag, hi_lag + 1)
    is_peak = (ac[inner - 1] >= ac[inner - 2]) & (ac[inner - 1] > ac[inner])
    if not is_peak.any():
        return None
    lag = int(inner[is_peak][ac[inner[is_peak] - 1].argmax()])
    if ac[lag - 1] < float(cfg["min_periodicity"]) or ac[: lag - 1].min() > -0.5 * float(cfg["min_periodicity"]):
        return None
    if span < float(cfg["min_cycles"]) * lag:
        return None
    centre = np.convolve(grid, np.ones(lag) / lag, mode="valid")
    dev = grid[lag // 2 : lag // 2 + len(centre)] - centre
    extent = 0.5 * float(np.subtract(*np.percentile(dev, [95, 5])))
    if extent > float(cfg["max_extent_cents"]):
        return None
    return 1.0 / (lag * hop_s), extent, centre


def summarise_track(track: PitchTrack, active: np.ndarray, params: dict, min_confidence: float = 0.0,
                    steady: tuple[float, float] = (0.0, np.inf)) -> dict:
    """Clip-level pitch from a track and bool[frames] activity (frames that are not silence).

    Returns f0_hz (median over voiced active frames; NaN unless pitched), voiced_frac (of active frames),
    f0_confidence (median confidence of voiced active frames, 0 when none), f0_iqr_cents (IQR of voiced f0 in
    cents; NaN when fewer than 2 voiced frames) and pitched: voiced_frac >= pitched.min_voiced_frac and
    f0_iqr_cents <= pitched.max_iqr_cents and f0_confidence >= min_confidence (the estimator's own scale), and,
    steady = (below, max_iqr): a clip whose f0_confidence is under `below` must hold f0_iqr_cents <= max_iqr (a weakly
    periodic sound counts as pitched only when its pitch holds still: snares and noise bands wander).
    With params pitched.vibrato, a track that oscillates periodically about a centre (find_vibrato: 3-9 Hz, up to
    +-100 cents) is one pitch: f0 is the centre's median and the IQR tests (max_iqr_cents and steady) apply to the
    centre, not to the swing (f0_iqr_cents still reports the swing's IQR).
    Also voiced_median_hz (the median even when unpitched; NaN without voiced frames), unpitched_reason:
    "" when pitched, else the first test failed: no_voiced | few_voiced | unstable | low_confidence, and f0_vibrato
    ("5.5 Hz +-40 c"; "" when none found).
    """
    cfg = params["pitched"]
    n = min(len(track.f0_hz), len(active))
    voiced = track.voiced[:n] & active[:n] & np.isfinite(track.f0_hz[:n])
    n_active = int(active[:n].sum())
    voiced_frac = float(voiced.sum() / n_active) if n_active else 0.0
    f0s = track.f0_hz[:n][voiced]
    vibrato = None
    if len(f0s) >= 2:
        median = float(np.median(f0s))
        cents = cents_between(f0s, median)
        q75, q25 = np.percentile(cents, [75, 25])
        iqr = steady_iqr = float(q75 - q25)
        conf = float(np.median(track.confidence[:n][voiced]))
        if (cfg.get("vibrato") or {}).get("enabled"):
            vibrato = find_vibrato(cents, np.flatnonzero(voiced), track.hop_s, cfg["vibrato"])
        if vibrato is not None:  # one pitch, the vibrato's centre; steadiness is the centre's
            c75, c25 = np.percentile(vibrato[2], [75, 25])
            steady_iqr = float(c75 - c25)
            median = float(median * 2.0 ** (np.median(vibrato[2]) / 1200.0))
    else:
        median, iqr, steady_iqr, conf = float("nan"), float("nan"), float("nan"), 0.0
    if len(f0s) < 2:
        reason = "no_voiced"
    elif voiced_frac < cfg["min_voiced_frac"]:
        reason = "few_voiced"
    elif steady_iqr > cfg["max_iqr_cents"] or (conf < steady[0] and steady_iqr > steady[1]):
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
        "f0_vibrato": "" if vibrato is None else f"{vibrato[0]:.1f} Hz +-{vibrato[1]:.0f} c",
    }
