"""Audio in: decode once (soundfile), mix to mono, resample once to the analysis rate, pick the analysis window.

Every boundary states its layout: `audio: float32[samples] at sr Hz`, full scale = 1.0.
"""

from __future__ import annotations

import io
import math

import numpy as np
import soundfile as sf
import soxr

from benchmark.errors import InputError

__all__ = [
    "AudioRejected",
    "load_audio_bytes",
    "to_mono",
    "resample",
    "frame_rms_db",
    "find_active_frames",
    "choose_window",
]


class AudioRejected(InputError):
    """Audio the measure stage will not analyse; `reason` is a short machine-readable word for the reject row."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def load_audio_bytes(
    data: bytes,
    target_sr: int,
    *,
    max_duration_s: float | None = None,
    min_sample_rate_hz: int = 8000,
) -> tuple[np.ndarray, int, dict]:
    """Decode an audio file's bytes to float32[samples] mono at target_sr Hz.

    Returns (audio, original sample rate in Hz, info) where info holds channels, frames, duration_s (of the
    original) and was_mono. Raises AudioRejected with reason empty | unreadable | truncated | low_sample_rate |
    too_long | nonfinite for audio that cannot be measured. The duration is checked from the header, before decoding.
    """
    if not data:
        raise AudioRejected("empty", "0 bytes")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            sr, channels, frames_hdr = int(f.samplerate), int(f.channels), int(f.frames)
            if sr < min_sample_rate_hz:
                raise AudioRejected("low_sample_rate", f"{sr} Hz < {min_sample_rate_hz} Hz")
            if max_duration_s is not None and frames_hdr / sr > max_duration_s:
                raise AudioRejected("too_long", f"{frames_hdr / sr:.1f} s > {max_duration_s} s")
            try:
                raw = f.read(dtype="float32", always_2d=True)  # [frames, channels]
            except (sf.LibsndfileError, RuntimeError) as e:
                raise AudioRejected("truncated", f"decoding stopped: {_one_line(e)}") from e
    except AudioRejected:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioRejected("unreadable", _one_line(e)) from e
    if raw.shape[0] == 0:
        raise AudioRejected("empty", "0 samples")
    if 0 < frames_hdr and raw.shape[0] < frames_hdr:
        raise AudioRejected("truncated", f"{raw.shape[0]} of {frames_hdr} frames decoded")
    if not np.isfinite(raw).all():
        bad = int((~np.isfinite(raw)).sum())
        raise AudioRejected("nonfinite", f"{bad} NaN/inf samples")
    mono = to_mono(raw.T)
    audio = resample(mono, sr, target_sr)
    info = {
        "channels": channels,
        "was_mono": channels == 1,
        "frames": int(raw.shape[0]),
        "duration_s": raw.shape[0] / sr,
    }
    return audio, sr, info


def to_mono(audio: np.ndarray) -> np.ndarray:
    """float32[channels, samples] or float32[samples] -> float32[samples], the mean of the channels."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return audio
    if audio.ndim != 2:
        raise InputError(f"audio must be [samples] or [channels, samples], got shape {audio.shape}")
    return audio.mean(axis=0, dtype=np.float32) if audio.shape[0] > 1 else audio[0]


def resample(audio: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """float32[samples] at sr Hz -> float32[samples'] at target_sr Hz (soxr, high quality); a no-op when equal."""
    if sr == target_sr:
        return np.ascontiguousarray(audio, dtype=np.float32)
    return soxr.resample(audio, sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def frame_rms_db(audio: np.ndarray, sr: int, frame_s: float) -> np.ndarray:
    """RMS level in dBFS of consecutive non-overlapping frames of frame_s seconds: float[frames] (last partial frame kept)."""
    n = max(1, int(round(frame_s * sr)))
    n_frames = max(1, math.ceil(len(audio) / n))
    padded = np.zeros(n_frames * n, dtype=np.float64)
    padded[: len(audio)] = audio
    ms = (padded.reshape(n_frames, n) ** 2).mean(axis=1)
    if len(audio) % n:  # the last frame's mean over its real samples only
        ms[-1] = ms[-1] * n / (len(audio) % n)
    return 10.0 * np.log10(np.maximum(ms, 1e-20))


def find_active_frames(rms_db: np.ndarray, silence_db: float, active_rel_db: float) -> np.ndarray:
    """bool[frames]: frames louder than silence_db dBFS and within active_rel_db dB of the loudest frame."""
    if rms_db.size == 0:
        return np.zeros(0, dtype=bool)
    floor = max(silence_db, float(rms_db.max()) - active_rel_db)
    return rms_db > floor


def choose_window(active: np.ndarray, frame_s: float, max_analysis_s: float) -> tuple[int, int]:
    """(first, last+1) frame of the max_analysis_s window holding the most active frames (earliest on ties).

    A clip no longer than the window is analysed whole.
    """
    n = len(active)
    w = max(1, int(math.floor(max_analysis_s / frame_s)))
    if n <= w:
        return 0, n
    csum = np.concatenate([[0], np.cumsum(active.astype(np.int64))])
    counts = csum[w:] - csum[:-w]
    start = int(np.argmax(counts))
    return start, start + w


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200]
