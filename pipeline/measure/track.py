"""The per-frame pitch track every estimator returns (its own module, so that estimators in other modules —
pipeline.measure.crepe — and pipeline.measure.pitch's registry share it without importing each other)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PitchTrack"]


@dataclass(frozen=True)
class PitchTrack:
    """Per-frame pitch of one clip: f0_hz float[frames] (NaN = unvoiced), voiced bool[frames],
    confidence float[frames] in 0..1, frame hop hop_s seconds (frame i centred near i * hop_s)."""

    f0_hz: np.ndarray
    voiced: np.ndarray
    confidence: np.ndarray
    hop_s: float
