"""Near-duplicate audio: one recording re-encoded as MP3, trimmed and made quieter is found; other audio is not;
the split keeps the copies in one group, and validate refuses a release where they straddle splits."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from benchmark.fingerprint import FINGERPRINTS_FILE, bit_error_rate, fingerprint_table, near_duplicate_pairs
from benchmark.validate import validate_release
from pipeline.measure.fingerprint import fingerprint_audio, fingerprint_audio_bytes
from pipeline.split import split_clips

SR = 22050


def recording(seed: int, seconds: float = 8.0) -> np.ndarray:
    """float32[samples] at SR: decaying notes of random pitch over bursts of noise (a busy, unsteady sound)."""
    r = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for _ in range(12):
        start, dur, f = r.uniform(0, seconds - 0.5), r.uniform(0.2, 1.0), r.uniform(200, 1500)
        on = (t >= start) & (t < start + dur)
        x[on] += np.sin(2 * np.pi * f * t[on]) * np.exp(-(t[on] - start) * 3) * r.uniform(0.2, 0.6)
    x += 0.05 * r.standard_normal(len(t)) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    return (0.8 * x / np.abs(x).max()).astype(np.float32)


def encode(audio: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, SR, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def prints() -> dict[str, np.ndarray]:
    a = recording(1)
    copy = a[int(0.73 * SR): -int(0.41 * SR)] * 0.5  # trimmed at both ends, 6 dB quieter, then MP3
    return {"fs/orig": fingerprint_audio_bytes(encode(a, "WAV")), "fs/copy": fingerprint_audio_bytes(encode(copy, "MP3")),
            "fs/other": fingerprint_audio(recording(2), SR), "fs/third": fingerprint_audio(recording(3), SR)}


def test_a_reencoded_trimmed_copy_is_a_near_duplicate_and_other_audio_is_not(prints):
    assert near_duplicate_pairs(prints) == [("fs/copy", "fs/orig")]
    best = min(bit_error_rate(prints["fs/orig"], prints["fs/copy"], o)[0] for o in range(-40, 40))
    unrelated = min(bit_error_rate(prints["fs/orig"], prints["fs/other"], o)[0] for o in range(-40, 40))
    assert best < 0.22 and unrelated > 0.4  # the module docstring quotes these (0.18 and 0.48)
    assert len(fingerprint_audio(np.zeros(SR * 3, np.float32), SR)) == 0  # silence matches nothing


def test_split_keeps_near_duplicates_in_one_group(prints):
    clips = pd.DataFrame({"clip_id": [f"fs/{i}" for i in range(60)] + ["fs/copy", "fs/orig"],
                          "audio_sha256": [f"{i:064x}" for i in range(62)]})
    fr = {"train": 0.5, "dev": 0.2, "test": 0.3}
    seed = next(s for s in range(50) if len(set(split_clips(clips, set(), s, fr).set_index("clip_id").loc[["fs/copy", "fs/orig"], "split"])) == 2)
    df = split_clips(clips, set(), seed, fr, near_pairs=near_duplicate_pairs(prints)).set_index("clip_id")
    assert df.loc["fs/copy", "group_id"] == df.loc["fs/orig", "group_id"] and df.loc["fs/copy", "split"] == df.loc["fs/orig", "split"]


def test_validate_refuses_near_duplicate_audio_across_splits(tmp_path, prints):
    from tests.benchmark.test_validate import animal_item, clean_rows, write_release_dir

    rows = clean_rows() + [animal_item(30, "train", clip="fs/orig"), animal_item(31, "test", clip="fs/copy")]
    root = write_release_dir(tmp_path, rows)
    fingerprint_table(prints).to_parquet(root / FINGERPRINTS_FILE, index=False)
    v = validate_release(root).violations
    assert v == ["overlap near-duplicate audio: all tasks: 1 pairs of clips that are one recording (re-encoded or trimmed) "
                 "sit in different splits, e.g. 'fs/copy (test) ~ fs/orig (train)'"]
    rows[-1] = animal_item(31, "train", clip="fs/copy")
    root = write_release_dir(tmp_path / "same", rows)
    fingerprint_table(prints).to_parquet(root / FINGERPRINTS_FILE, index=False)
    assert validate_release(root).ok
    (root / "manifest.json").write_text(json.dumps({}))
    assert validate_release(root).ok
