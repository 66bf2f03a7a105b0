"""Data card: HF front matter, fixed sections, deterministic PNG figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmark.card import render_card
from benchmark.errors import InputError
from benchmark.figures import plot_agreement, plot_gap_histogram

MANIFEST = {
    "name": "demo", "version": "1.2.0", "license": "cc-by-nc", "exclude_nc": False,
    "counts": {"items": 14, "clips": 9, "excluded_nc_items": 0, "review_flagged": 2},
    "license_mix": {"cc-by": 5, "cc-by-nc": 3, "unknown": 1},
    "category_mix": {"animal": 4, "music": 5},
    "tasks": {
        "animal_sound_recognition": {"kind": "recognition", "counts": {"train": 3, "test": 1},
                                     "balance": {"train": {"dog": 2, "cat": 1}, "test": {"dog": 1}}},
        "sound_pitch_comparison": {"kind": "comparison", "counts": {"train": 6, "dev": 2, "wiki": 2},
                                   "balance": {"train": {"higher": 3, "lower": 3}, "dev": {"higher": 1, "lower": 1},
                                               "wiki": {"higher": 2}}},
    },
    "provenance": {"estimator": "pyin", "llm": {"write": {"backend": "rules"}}},
    "defects": {"violations": ["balance: sound_pitch_comparison/wiki: higher 2/2 (100.0 %)"]},
}
STAGES = {"read": {"counts": {"kept": 9, "rejected": {"truncated_tar": 1, "no_audio": 2}}},
          "filter": {"counts": {"kept": 14, "rejected": {}}}}
SECTIONS = ["## Summary", "## How it was built", "## Splits", "## Label balance", "## Category and licence mix",
            "## Figures", "## Known limitations", "## How to regenerate"]


def test_front_matter_and_fixed_sections(tmp_path):
    card = render_card(tmp_path, MANIFEST, stage_manifests=STAGES, figures={})
    head, body = card.split("---\n", 2)[1:]
    meta = yaml.safe_load(head)
    assert meta["license"] == "cc-by-nc-4.0" and meta["task_categories"] == ["fill-mask"] and meta["language"] == ["en"]
    assert meta["pretty_name"] == "AuditoryBench (demo 1.2.0)"
    configs = {c["config_name"]: c["data_files"] for c in meta["configs"]}
    assert configs["sound_pitch_comparison"] == [
        {"split": "train", "path": "sound_pitch_comparison/train.parquet"},
        {"split": "dev", "path": "sound_pitch_comparison/dev.parquet"},
        {"split": "wiki", "path": "sound_pitch_comparison/wiki.parquet"},
    ]
    positions = [body.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert "| read | 9 | 3 (no_audio: 2, truncated_tar: 1) |" in body
    assert "| sound_pitch_comparison | 0 | 6 | 0 | 2 | 0 | 0 | 2 | 8 |" not in body
    assert "| sound_pitch_comparison | 6 | 2 | 0 | 2 | 10 |" in body
    assert "| sound_pitch_comparison | wiki | 2 | higher: 2 (100.0 %) |" in body
    assert "| music | 5 |" in body and "| cc-by-nc | 3 |" in body
    assert "2 items carry review_flag" in body and "1 clips have a licence that is not Creative Commons" in body
    assert "balance: sound_pitch_comparison/wiki" in body
    assert render_card(tmp_path, MANIFEST, stage_manifests=STAGES, figures={}) == card


def test_card_reports_the_human_review(tmp_path):
    assert "**Human review**: none applied" in render_card(tmp_path, MANIFEST, stage_manifests=STAGES, figures={})
    review = {"reviewed": 12, "kept": 8, "dropped": 2, "fixed": 1, "flagged": 1, "fluency_mean": 2.5, "fluency_ratings": 20,
              "agreement": {"items": 10, "raters": 2, "unanimous": 0.8, "krippendorff_alpha": 0.61, "cohen_kappa": 0.6,
                            "fleiss": {"raters_per_item": 2, "items": 10, "kappa": 0.59}}}
    stages = {**STAGES, "filter": {"counts": {"kept": 14, "rejected": {"review_drop": 2}, "review": review}}}
    body = render_card(tmp_path, MANIFEST, stage_manifests=stages, figures={})
    assert ("**Human review**: 12 items reviewed — 8 kept, 2 dropped, 1 answers fixed, 1 left flagged (reviewers tied). "
            "Agreement on the 10 items with two or more verdicts (2 reviewers): Krippendorff's α = 0.610, "
            "Fleiss' κ = 0.590 (10 items × 2 raters), Cohen's κ = 0.600; unanimous on 80 % of them. "
            "Fluency (1 awkward … 3 fluent): mean 2.50 over 20 ratings.") in body


def test_missing_template_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="template not found"):
        render_card(tmp_path, MANIFEST, template_path=tmp_path / "nope.md")


def _png_chunks(data: bytes) -> list[bytes]:
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunks.append(data[pos + 4:pos + 8])
        pos += 12 + length
    return chunks


def test_figures_are_deterministic_pngs_without_metadata(tmp_path):
    gaps = {"f0": np.array([1.0, 2.5, 7.0, 12.0]), "centroid": np.array([3.0, 30.0])}
    stats = plot_gap_histogram(gaps, tmp_path / "a.png")
    plot_gap_histogram(gaps, tmp_path / "b.png")
    a, b = (tmp_path / "a.png").read_bytes(), (tmp_path / "b.png").read_bytes()
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and a == b
    assert not {b"tEXt", b"tIME", b"iTXt", b"zTXt"} & set(_png_chunks(a))
    assert stats == {"centroid": {"n": 2, "median_semitones": 16.5}, "f0": {"n": 4, "median_semitones": 4.75}}

    sentences = pd.DataFrame({"answer": ["higher", "higher", "lower", "lower"], "llm_guess": ["higher", "Lower", "lower", None]})
    assert plot_agreement(sentences, tmp_path / "c.png") == {"n": 4, "guessed": 3, "agreement": round(2 / 3, 4)}
    plot_agreement(sentences, tmp_path / "d.png")
    assert (tmp_path / "c.png").read_bytes() == (tmp_path / "d.png").read_bytes()


def test_duration_ratios_get_their_own_axis(tmp_path):
    from benchmark.figures import gap_axis, write_figures

    assert (gap_axis("sound_pitch_comparison"), gap_axis("duration_comparison"), gap_axis("loudness_comparison")) == \
        ("semitones", "ratio", "difference")
    pairs = pd.DataFrame({
        "task": ["sound_pitch_comparison"] * 2 + ["duration_comparison"] * 3 + ["loudness_comparison"] * 2,
        "basis": ["f0", "f0", "duration", "duration", "duration", "loudness", "loudness"],
        "value_a": [440.0, 220.0, 3.0, 1.0, 2.0, -20.0, -30.0],
        "value_b": [220.0, 440.0, 1.5, 2.0, 6.0, -30.0, -22.0],
        "label": ["higher", "lower", "longer", "shorter", "shorter", "louder", "quieter"],
    })
    figures = write_figures(tmp_path, pd.DataFrame(), {"pairs": pairs})
    stats = figures["gap_histogram"]["stats"]
    assert stats["f0"] == {"n": 2, "median_semitones": 12.0}  # an octave
    assert stats["duration"] == {"n": 3, "median_ratio": 2.0}  # ratios 2, 2, 3: not 12·log2 of them
    assert stats["loudness"] == {"n": 2, "median_difference": 9.0}  # 10 dB and 8 dB
    assert "ratio" in figures["gap_histogram"]["caption"] and (tmp_path / "figures" / "gap_histogram.png").is_file()
