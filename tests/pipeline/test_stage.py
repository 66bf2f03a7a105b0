"""The stage runner: manifests, skip-if-fresh, atomic writes, and settings precedence."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmark.errors import ConfigError
from pipeline.params import stage_params
from pipeline.stage import ResultStore, StageRun, atomic_path


def _run(tmp: Path, params: dict, src: Path) -> StageRun:
    return StageRun("toy", tmp / "out", params, inputs={"src": src}, code="v1", quiet=True)


def test_fresh_only_when_code_params_inputs_and_outputs_unchanged(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("a")
    run = _run(tmp_path, {"k": 1}, src)
    assert not run.fresh()
    run.write_table("t.parquet", pd.DataFrame({"x": [1, 2]}))
    manifest = run.finish({"kept": 2, "rejected": {}})
    assert manifest["outputs"].keys() == {"t.parquet"} and manifest["params"] == {"k": 1}
    assert _run(tmp_path, {"k": 1}, src).fresh()
    assert not _run(tmp_path, {"k": 2}, src).fresh()
    assert not StageRun("toy", tmp_path / "out", {"k": 1}, inputs={"src": src}, code="v2").fresh()
    src.write_text("b")
    assert not _run(tmp_path, {"k": 1}, src).fresh()
    src.write_text("a")
    (tmp_path / "out" / "t.parquet").write_bytes(b"tampered")
    assert not _run(tmp_path, {"k": 1}, src).fresh()


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_result_store_survives_reopen(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    store.put("a", {"f0_hz": float("nan"), "n": 1})
    store.put_many([("b", [1, 2]), ("c", "x")])
    store.close()
    again = ResultStore(tmp_path / "r.sqlite")
    assert len(again) == 3 and again.get("b") == [1, 2] and "c" in again and again.get("zzz") is None


def test_settings_precedence_flag_over_env_over_file(tmp_path: Path, monkeypatch) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("measure:\n  estimator: pyin\n  hop_s: 0.02\n")
    assert {k: stage_params("measure", path=params)[k] for k in ("estimator", "hop_s")} == {"estimator": "pyin", "hop_s": 0.02}
    monkeypatch.setenv("AUDITORYBENCH_MEASURE_HOP_S", "0.005")
    assert stage_params("measure", path=params)["hop_s"] == 0.005
    got = stage_params("measure", {"hop_s": 0.04, "estimator": None}, path=params)
    assert (got["estimator"], got["hop_s"]) == ("pyin", 0.04)
    with pytest.raises(ConfigError, match="unknown setting 'nope'"):
        stage_params("nope", path=params)
    params.write_text("measure: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        stage_params("measure", path=params)
