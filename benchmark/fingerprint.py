"""Near-duplicate audio by fingerprint: the matching half (the release's `audio_fingerprints.parquet` is checked by
`benchmark.validate`; `pipeline.measure.fingerprint` computes the fingerprints).

    near_duplicate_pairs({clip_id: uint32[frames]}) -> [(clip_a, clip_b)]

A fingerprint is Haitsma & Kalker's (ISMIR 2002): one 32-bit sub-fingerprint per 32 ms frame (see
`pipeline.measure.fingerprint`). Two clips are near duplicates when, at some offset, at least MIN_OVERLAP frames
(2 s) and half the shorter one align with a bit error rate ≤ MAX_BER (0.25; unrelated audio sits near 0.5).
Candidate offsets come from exact matches of sub-fingerprints (an inverted index, as in Haitsma & Kalker's
search): a pair needs MIN_VOTES frames agreeing exactly at one offset before its bit error rate is computed, so the
search does not compare every pair of clips.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["bit_error_rate", "near_duplicate_pairs", "read_fingerprints", "fingerprint_table", "FINGERPRINTS_FILE",
           "MAX_BER", "MIN_OVERLAP"]

FINGERPRINTS_FILE = "audio_fingerprints.parquet"  # in a release: clip_id, fingerprint (uint32 little-endian bytes)
MAX_BER = 0.25
MIN_OVERLAP = 64  # frames: ~2 s
MIN_VOTES = 3
MAX_POSTING = 200  # a sub-fingerprint found in more clips than this is too common to vote


def fingerprint_table(fingerprints: dict[str, np.ndarray]) -> pd.DataFrame:
    """clip_id, fingerprint (bytes of uint32[frames]), sorted by clip id."""
    ids = sorted(fingerprints)
    return pd.DataFrame({"clip_id": ids, "fingerprint": [np.asarray(fingerprints[c], np.uint32).astype("<u4").tobytes() for c in ids]})


def read_fingerprints(path: str | Path) -> dict[str, np.ndarray]:
    """{clip_id: uint32[frames]} from a fingerprints table (the measure stage's, or a release's)."""
    df = pd.read_parquet(path)
    return {str(c): np.frombuffer(b, dtype="<u4").astype(np.uint32) for c, b in zip(df["clip_id"], df["fingerprint"])}


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.unpackbits(x.view(np.uint8)).reshape(len(x), 32).sum(1)


def bit_error_rate(a: np.ndarray, b: np.ndarray, offset: int) -> tuple[float, int]:
    """(share of differing bits, frames compared) with frame i of a aligned to frame i − offset of b."""
    lo, hi = max(0, offset), min(len(a), len(b) + offset)
    if hi <= lo:
        return 1.0, 0
    x = np.bitwise_xor(a[lo:hi], b[lo - offset: hi - offset])
    return float(_popcount(x).sum()) / (32 * (hi - lo)), hi - lo


def near_duplicate_pairs(fingerprints: dict[str, np.ndarray], max_ber: float = MAX_BER) -> list[tuple[str, str]]:
    """Sorted (clip_a, clip_b), a < b, for every pair of clips that align somewhere (see the module docstring)."""
    ids = sorted(fingerprints)
    postings: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for k, cid in enumerate(ids):
        for t, w in enumerate(fingerprints[cid].tolist()):
            postings[w].append((k, t))
    votes: Counter = Counter()
    for hits in postings.values():
        clips = {k for k, _ in hits}
        if len(clips) < 2 or len(clips) > MAX_POSTING:
            continue
        for (ka, ta), (kb, tb) in ((x, y) for x in hits for y in hits if x[0] < y[0]):
            votes[(ka, kb, ta - tb)] += 1
    out = set()
    for (ka, kb, off), v in votes.items():
        if v < MIN_VOTES or (ids[ka], ids[kb]) in out:
            continue
        a, b = fingerprints[ids[ka]], fingerprints[ids[kb]]
        ber, overlap = bit_error_rate(a, b, off)
        if ber <= max_ber and overlap >= max(MIN_OVERLAP, min(len(a), len(b)) // 2):
            out.add((ids[ka], ids[kb]))
    return sorted(out)
