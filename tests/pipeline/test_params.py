"""Typed settings: one model per params.yaml section, defaults in one place, misspelt keys fail with a suggestion,
environment overrides on top, command-line flags validated like the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmark.errors import ConfigError
from pipeline.params import SECTIONS, default_params, load_params, stage_params

REPO = Path(__file__).resolve().parents[2]


def test_the_repository_params_yaml_spells_out_the_defaults():
    """params.yaml is the documented copy of the defaults: every section and key it sets is a setting with the value
    the models declare, so a build in the repository and one from an installed package agree."""
    data = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    defaults = default_params()
    assert set(data) == set(SECTIONS)
    for section, values in data.items():
        for key, value in (values or {}).items():
            assert defaults[section][key] == value, f"{section}.{key}: params.yaml {value!r} vs default {defaults[section][key]!r}"


def test_without_a_params_file_the_defaults_apply(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUDITORYBENCH_PARAMS", raising=False)
    assert load_params() == default_params()
    assert stage_params("measure")["yin"]["voicing_threshold"] == 0.3


def test_a_misspelt_key_fails_naming_it_and_the_closest(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("measure:\n  estimatr: pyin\n")
    with pytest.raises(ConfigError, match=r"params.yaml: unknown setting 'measure.estimatr'; did you mean 'estimator'\?"):
        load_params(p)
    p.write_text("measure:\n  yin: {thresold: 0.1}\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'measure.yin.thresold'; did you mean 'threshold'\?"):
        load_params(p)
    p.write_text("pairz:\n  min_gap: 2\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'pairz'; did you mean 'pairs'\?"):
        load_params(p)
    p.write_text("pairs:\n  min_gap: wide\n")
    with pytest.raises(ConfigError, match=r"pairs.min_gap"):
        load_params(p)


def test_a_partial_file_is_completed_with_the_defaults(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("pairs:\n  min_gap: 1.5\nmeasure:\n  yin: {threshold: 0.1}\n")
    params = load_params(p)
    assert params["pairs"]["min_gap"] == 1.5 and params["pairs"]["max_pairs_per_clip"] == 3
    assert params["measure"]["yin"] == {**default_params()["measure"]["yin"], "threshold": 0.1}


def test_environment_overrides_and_their_typos(tmp_path, monkeypatch):
    p = tmp_path / "params.yaml"
    p.write_text("measure:\n  estimator: yin\n")
    monkeypatch.setenv("AUDITORYBENCH_MEASURE_ESTIMATOR", "pyin")
    monkeypatch.setenv("AUDITORYBENCH_DEMO_CORPUS_N_CLIPS", "200")
    monkeypatch.setenv("AUDITORYBENCH_TASKS_ENABLED", '["sound_pitch_comparison"]')
    params = load_params(p)
    assert params["measure"]["estimator"] == "pyin" and params["demo_corpus"]["n_clips"] == 200
    assert params["tasks"]["enabled"] == ["sound_pitch_comparison"]
    monkeypatch.setenv("AUDITORYBENCH_PAIRS_MIN_GAPP", "2")
    with pytest.raises(ConfigError, match=r"environment variable AUDITORYBENCH_PAIRS_MIN_GAPP: unknown setting 'pairs.min_gapp'; did you mean 'min_gap'\?"):
        load_params(p)


def test_flags_go_on_top_and_are_validated(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train:\n  preset: demo\n")
    assert stage_params("train", {"epochs": 2, "lm": None}, path=p) == {**default_params()["train"], "preset": "demo", "epochs": 2}
    with pytest.raises(ConfigError, match=r"command line: unknown setting 'train.epoch'; did you mean 'epochs'\?"):
        stage_params("train", {"epoch": 2}, path=p)
