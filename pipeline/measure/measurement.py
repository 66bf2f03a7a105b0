"""The pure core of the measure stage: audio in, one measurement record out.

`measure_audio(audio, sr, params)` returns the fields of `benchmark.schema.Measurement` except clip_id and
audio_sha256, plus the NOTE_FIELDS (why the pitch came out as it did). `measure_audio_bytes` adds decoding
(for the stage's worker and the benchmark).
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.measure.audio import (
    AudioRejected,
    choose_window,
    find_active_frames,
    frame_rms_db,
    load_audio_bytes,
    to_mono,
)
from pipeline.measure.features import loudness_lufs, peak_dbfs, spectral_centroid_hz
from pipeline.measure.pitch import (
    cents_between,
    estimate_pitch_high,
    find_fast_periodicity,
    get_estimator,
    summarise_track,
)

__all__ = ["measure_audio", "measure_audio_bytes", "MEASUREMENT_FIELDS", "NOTE_FIELDS"]

MEASUREMENT_FIELDS = (
    "f0_hz",
    "voiced_frac",
    "f0_confidence",
    "f0_iqr_cents",
    "pitched",
    "estimator",
    "f0_check_hz",
    "estimator_disagree",
    "centroid_hz",
    "loudness_lufs",
    "rms_dbfs",
    "peak_dbfs",
    "duration_s",
    "active_duration_s",
    "analysed_s",
    "channels",
)
# Why a clip's pitch came out as it did; not schema fields (the stage writes them to pitch_notes.parquet).
NOTE_FIELDS = ("f0_pass", "unpitched_reason", "f0_vibrato")


def _frame_activity(active: np.ndarray, frame_s: float, offset_s: float, hop_s: float, n: int, centred: bool) -> np.ndarray:
    """bool[n]: for analysis frames at offset_s + i*hop_s (+ half a hop when not centred), the level frame's activity."""
    t = offset_s + np.arange(n) * hop_s + (0.0 if centred else hop_s / 2)
    idx = np.clip((t / frame_s).astype(np.int64), 0, len(active) - 1)
    return active[idx]


def _steady(section: dict) -> tuple[float, float]:
    """An estimator section's (steady_below_confidence, steady_max_iqr_cents) for summarise_track; off when absent."""
    return float(section.get("steady_below_confidence", 0.0)), float(section.get("steady_max_iqr_cents", math.inf))


def _pitch(audio: np.ndarray, sr: int, name: str, active: np.ndarray, frame_s: float, offset_s: float, params: dict,
           high_memo: dict) -> dict:
    """The clip's pitch by estimator `name`, then the high-range check (see _check_high). The tracks and their
    voting frames go to high_memo["tracks"][(name, pass)] when that key exists."""
    track = get_estimator(name)(audio, sr, params)
    act = _frame_activity(active, frame_s, offset_s, track.hop_s, len(track.f0_hz), centred=True)
    if "tracks" in high_memo:
        high_memo["tracks"][(name, "base")] = (track, act)
    section = params.get(name.split("-")[0], {})  # yin | pyin | crepe
    out = summarise_track(track, act, params, float(section.get("min_confidence", 0.0)), _steady(section))
    out["f0_pass"] = "base"
    return _check_high(out, audio, sr, active, frame_s, offset_s, params, high_memo)


def _check_high(base: dict, audio: np.ndarray, sr: int, active: np.ndarray, frame_s: float, offset_s: float,
                params: dict, memo: dict) -> dict:
    """The octave guard above the base range (params `high`).

    The base pass can only time periods of at least sr/fmax_hz samples, so a pitch above fmax_hz comes out as a
    sub-multiple (an octave or a twelfth low), and pitch near fmax_hz is timed coarsely. When the base pass's
    voiced median is at or above high.check_from_hz, or high.trigger_frac of the active frames are periodic faster
    than fmax_hz, the window is analysed again at high.sr Hz over high.fmin_hz..high.fmax_hz, and that pass
    decides: its pitch if it finds one (f0_pass "high"), unless the base pass found a pitch below the high range
    (then neither is kept: unpitched_reason passes_disagree); else, when the base pass had claimed a pitch in the
    high pass's domain, the high pass's unpitched result and reason (a number it could not confirm is not kept);
    else the base result stands.
    """
    hi = params.get("high")
    if not hi or not hi["enabled"]:
        return base
    if "fast_frac" not in memo:
        fast = find_fast_periodicity(audio, sr, params)
        act = _frame_activity(active, frame_s, offset_s, float(params["hop_s"]), len(fast), centred=True)
        memo["fast_frac"] = float(fast[act].mean()) if act.any() else 0.0
    median = base["voiced_median_hz"]
    needed = (math.isfinite(median) and median >= float(hi["check_from_hz"])) or memo["fast_frac"] >= float(hi["trigger_frac"])
    if not needed:
        return base
    if "high" not in memo:
        track = estimate_pitch_high(audio, sr, params)
        act = _frame_activity(active, frame_s, offset_s, track.hop_s, len(track.f0_hz), centred=True)
        yin = params.get("yin", {})  # the high pass is a YIN pass
        if "tracks" in memo:
            memo["tracks"][("yin", "high")] = (track, act)
        memo["high"] = {**summarise_track(track, act, params, float(yin.get("min_confidence", 0.0)), _steady(yin)), "f0_pass": "high"}
    high = memo["high"]
    if high["pitched"] and base["pitched"] and base["f0_hz"] < float(hi["fmin_hz"]):
        # two pitches, the base one below the high pass's range: which is an octave error is unknown; keep neither
        return {**base, "f0_hz": math.nan, "pitched": False, "unpitched_reason": "passes_disagree"}
    if high["pitched"]:
        return dict(high)
    if base["pitched"] and base["f0_hz"] >= float(hi["fmin_hz"]):
        return dict(high)  # unpitched, with the high pass's reason
    return base


def measure_audio(audio: np.ndarray, sr: int, params: dict, tracks: dict | None = None) -> dict:
    """Measure one clip: audio float32[samples] (or [channels, samples], mixed to mono) at sr Hz.

    params: the `measure` section of params.yaml. Pitch and brightness are measured over the analysis window
    (at most max_analysis_s seconds, placed where the clip is most active); loudness and durations over the
    whole clip. Raises AudioRejected (empty | nonfinite | silent) for audio with nothing to measure.
    Returns f0_hz (NaN unless pitched), voiced_frac, f0_confidence, f0_iqr_cents, pitched, estimator,
    f0_check_hz and estimator_disagree (cross-check mode; NaN / False otherwise), centroid_hz, loudness_lufs,
    rms_dbfs (over active frames), peak_dbfs, duration_s, active_duration_s, analysed_s, channels (the schema's
    Measurement fields but clip_id and audio_sha256), and the NOTE_FIELDS: f0_pass (base | high: which pass gave
    the pitch figures), unpitched_reason ("" when pitched, else why not; see pitch.summarise_track) and f0_vibrato
    (the vibrato the pitch is the centre of, "" when none). tracks: when a dict, it receives each pitch pass's frame
    track and voting frames, {(estimator, "base" | "high"): (PitchTrack, bool[frames])} (for the benchmark).
    """
    audio = np.asarray(audio, dtype=np.float32)
    channels = 1 if audio.ndim == 1 else int(audio.shape[0])
    y = to_mono(audio)
    if len(y) == 0:
        raise AudioRejected("empty", "0 samples")
    if not np.isfinite(y).all():
        raise AudioRejected("nonfinite", f"{int((~np.isfinite(y)).sum())} NaN/inf samples")
    duration_s = len(y) / sr
    frame_s = float(params["level_frame_s"])
    level_db = frame_rms_db(y, sr, frame_s)
    active = find_active_frames(level_db, float(params["silence_db"]), float(params["active_rel_db"]))
    if not active.any():
        raise AudioRejected("silent", f"loudest {frame_s * 1000:.0f} ms frame at {level_db.max():.1f} dBFS <= {params['silence_db']} dBFS")
    active_duration_s = min(duration_s, float(active.sum()) * frame_s)
    first, last = choose_window(active, frame_s, float(params["max_analysis_s"]))
    a0, a1 = int(round(first * frame_s * sr)), min(len(y), int(round(last * frame_s * sr)))
    win = y[a0:a1]
    offset_s = a0 / sr

    # Frames that vote on the pitch: active and within pitched.active_rel_db of the loudest frame (a background
    # hiss 35 dB under a bleat is part of the clip, not of the sound whose pitch we report).
    loud = active & (level_db > float(level_db.max()) - float(params["pitched"]["active_rel_db"]))
    primary = str(params["estimator"])
    memo: dict = {} if tracks is None else {"tracks": tracks}
    out = _pitch(win, sr, primary, loud, frame_s, offset_s, params, memo)
    out["estimator"] = primary
    out["f0_check_hz"] = math.nan
    out["estimator_disagree"] = False
    if params.get("cross_check"):
        check_name = str(params["check_estimator"])
        check = _pitch(win, sr, check_name, loud, frame_s, offset_s, params, memo)
        out["f0_check_hz"] = check["f0_hz"]
        # Both heard a pitch, more than disagree_cents apart (an octave error, most often): the clip's f0 is not
        # trusted (the pairs stage gives it no f0 pair). A check that hears no pitch does not contradict one.
        out["estimator_disagree"] = bool(out["pitched"] and check["pitched"]
                                         and abs(cents_between(out["f0_hz"], check["f0_hz"])) > float(params["disagree_cents"]))

    n_fft = 1024
    cen_act = _frame_activity(active, frame_s, offset_s, (n_fft // 2) / sr, 1 + max(0, len(win) - n_fft) // (n_fft // 2), centred=False)
    out["centroid_hz"] = spectral_centroid_hz(win, sr, cen_act, n_fft=n_fft)
    out["loudness_lufs"] = loudness_lufs(y, sr)
    out["rms_dbfs"] = float(10 * np.log10(np.mean(10 ** (level_db[active] / 10))))
    out["peak_dbfs"] = peak_dbfs(y)
    out["duration_s"] = duration_s
    out["active_duration_s"] = active_duration_s
    out["analysed_s"] = len(win) / sr
    out["channels"] = channels
    return {k: _plain(out[k]) for k in MEASUREMENT_FIELDS + NOTE_FIELDS}


def measure_audio_bytes(data: bytes, params: dict, tracks: dict | None = None) -> dict:
    """Decode an audio file's bytes (load_audio_bytes at params analysis_sr) and measure it (tracks: see
    measure_audio); channels are the file's. Raises AudioRejected for audio that cannot be measured."""
    audio, _sr, info = load_audio_bytes(
        data,
        int(params["analysis_sr"]),
        max_duration_s=params.get("max_duration_s"),
        min_sample_rate_hz=int(params["min_sample_rate_hz"]),
    )
    out = measure_audio(audio, int(params["analysis_sr"]), params, tracks)
    out["channels"] = int(info["channels"])
    return out


def _plain(v):
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v
