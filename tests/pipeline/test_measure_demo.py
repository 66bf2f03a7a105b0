"""The measure stage against the demo corpus's ground truth: the issue's bar, through the real reader and stage.

A small demo corpus (100 clips + the planted bad members) is built here, read by the read stage and measured by the
measure stage with the default params. Clips whose ground truth is one f0 (pitch_kind steady or vibrato) must agree
with it (median error <= 10 cents, >= 95 % within 50 cents, never an octave off); unpitched clips must be reported
unpitched (>= 90 %); glides (a moving pitch, no single f0) must not be given one.
"""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.demo.corpus import build_demo_corpus
from pipeline.params import stage_params
from pipeline.stages.measure import measure_stage
from pipeline.stages.read import read_stage

N_CLIPS = 100


@pytest.fixture(scope="module")
def joined(tmp_path_factory) -> pd.DataFrame:
    """Ground truth of the good clips joined with their measurements and pitch notes."""
    root = tmp_path_factory.mktemp("demo")
    seed = int(stage_params("demo_corpus")["seed"])
    corpus = build_demo_corpus(root, seed=seed, n_clips=N_CLIPS, n_shards=2, quiet=True)
    build = root / "build"
    read_stage(corpus, build, stage_params("read"), quiet=True)
    manifest = measure_stage(build, corpus, stage_params("measure"), workers=2, quiet=True)
    assert json.loads((build / "measure" / "manifest.json").read_text())["counts"] == manifest["counts"]
    truth = pd.read_csv(root / "ground_truth.csv", keep_default_na=False,
                        na_values={c: ["nan"] for c in ("f0_hz", "f0_median_hz", "f0_spread_cents")})
    truth = truth[truth["bad"] == ""]
    meas = pd.read_parquet(build / "measure" / "measurements.parquet")
    notes = pd.read_parquet(build / "measure" / "pitch_notes.parquet")
    out = truth.merge(meas, on="clip_id", suffixes=("_true", "")).merge(notes, on="clip_id")
    assert len(out) == N_CLIPS  # every good clip measured, none rejected
    return out


def _cents(f_hz, ref_hz) -> np.ndarray:
    return np.abs(1200.0 * np.log2(np.asarray(f_hz, dtype=float) / np.asarray(ref_hz, dtype=float)))


def test_the_sample_covers_every_kind_of_pitch(joined):
    kinds = joined["pitch_kind"].value_counts()
    assert kinds.get("steady", 0) >= 40 and kinds.get("vibrato", 0) >= 5
    assert kinds.get("glide", 0) >= 4 and kinds.get("none", 0) >= 15
    assert (joined["pitched_true"] == joined["pitch_kind"].isin(["steady", "vibrato"])).all()
    high = joined[joined["pitched_true"] & (joined["f0_hz_true"] > stage_params("measure")["fmax_hz"])]
    assert len(high) >= 3  # pitch above the base pass's range is in the sample (whistle, alarm, cricket, ...)


def test_single_f0_clips_agree_with_the_ground_truth(joined):
    one = joined[joined["pitched_true"]]
    err = np.where(one["pitched"], _cents(one["f0_hz"], one["f0_hz_true"]), np.inf)
    assert np.median(err) <= 10.0
    assert np.mean(err <= 50.0) >= 0.95, one.loc[err > 50, ["source_name", "f0_hz_true", "f0_hz", "unpitched_reason"]]


def test_no_pitch_is_reported_in_the_wrong_octave(joined):
    one = joined[joined["pitched_true"] & joined["pitched"]]
    err = _cents(one["f0_hz"], one["f0_hz_true"])
    assert (err < 300).all(), one.loc[err >= 300, ["source_name", "f0_hz_true", "f0_hz", "f0_pass"]]
    high = one[one["f0_hz_true"] > stage_params("measure")["fmax_hz"]]
    assert len(high) >= 3 and (high["f0_pass"] == "high").all()


def test_unpitched_clips_are_reported_unpitched(joined):
    none = joined[joined["pitch_kind"] == "none"]
    assert np.mean(~none["pitched"]) >= 0.90
    assert none.loc[~none["pitched"], "f0_hz"].isna().all()
    assert (none.loc[~none["pitched"], "unpitched_reason"] != "").all()


def test_glides_are_not_given_one_f0(joined):
    glides = joined[joined["pitch_kind"] == "glide"]
    assert np.mean(~glides["pitched"]) >= 0.90
    assert (glides["f0_spread_cents"] > 150).all() and glides["f0_median_hz"].notna().all()
    assert glides["f0_hz_true"].isna().all()
