"""The contract: every registered task — including one added by a YAML file alone — goes through the whole
pipeline on the demo corpus, into a release that passes `validate`, and through evaluation. Adding tasks changes
nothing in the original two tasks' output."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from benchmark.release import load_release
from benchmark.validate import validate_release

REPO = Path(__file__).resolve().parents[1]
ORIGINAL = ["animal_sound_recognition", "sound_pitch_comparison"]
TOY_TASK = """
name: brightness_comparison
version: 1
kind: comparison
description: "Toy task added by a YAML file alone: which of two sounds is brighter (spectral centroid)"
answer_choices: [brighter, darker]
dimension: brightness
categories: [environment, object]
measurement:
  level: clip
  bases: [{basis: centroid, column: centroid_hz, where: any}]
gap_rule: {kind: ratio, param: pairs.min_gap}
templates:
  - "The sound of {a} is typically [MASK] than the sound of {b}."
csv_columns: [sentence, answer, span1, span2]
require_agreement: false
"""


def _make(target_env: dict, *args: str) -> None:
    proc = subprocess.run(["make", *args], cwd=REPO, env=target_env, capture_output=True, text=True)
    assert proc.returncode == 0, f"make {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="session")
def contract(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("contract")
    tasks_dir = tmp / "my_tasks"
    tasks_dir.mkdir()
    (tasks_dir / "brightness_comparison.yaml").write_text(TOY_TASK)
    os.environ["AUDITORYBENCH_TASK_DIRS"] = str(tasks_dir)  # this process's registry sees the toy task too
    # a smaller demo corpus than make demo's, so that the suite stays quick; every task still gets items
    env = {**os.environ, "AUDITORYBENCH_RELEASE_CARDS_DIR": str(tmp / "cards"), "AUDITORYBENCH_DEMO_CORPUS_N_CLIPS": "200"}
    common = [f"BUILD_ROOT={tmp / 'build'}", f"DEMO_ROOT={tmp / 'demo_corpus'}", "QUIET=1"]
    _make({**env, "AUDITORYBENCH_TASKS_ENABLED": json.dumps(ORIGINAL)}, "release", *common, f"RELEASES={tmp / 'before'}")
    _make(env, "release", *common, f"RELEASES={tmp / 'after'}")
    return {"tmp": tmp, "env": env, "before": tmp / "before" / "demo-1.0.0", "after": tmp / "after" / "demo-1.0.0"}


def test_every_registered_task_reaches_a_valid_release(contract: dict) -> None:
    from benchmark.tasks import list_tasks

    rel = load_release(contract["after"])
    assert "brightness_comparison" in list_tasks()
    assert sorted(rel.tasks) == list_tasks()
    for task in rel.tasks:
        assert len(rel.items(task, "train")) > 0, task
        assert len(rel.items(task, "train")) + len(rel.items(task, "dev")) + len(rel.items(task, "test")) >= 5, task
    report = validate_release(contract["after"])
    assert report.ok, report.violations
    assert validate_release(contract["before"]).ok


def test_new_tasks_leave_the_original_tasks_unchanged(contract: dict) -> None:
    before, after = load_release(contract["before"]), load_release(contract["after"])
    assert sorted(before.tasks) == ORIGINAL and set(ORIGINAL) < set(after.tasks)
    for task in ORIGINAL:
        files = sorted(p.relative_to(contract["before"]) for p in (contract["before"] / task).iterdir())
        assert files
        for rel in files:
            a = hashlib.sha256((contract["before"] / rel).read_bytes()).hexdigest()
            b = hashlib.sha256((contract["after"] / rel).read_bytes()).hexdigest()
            assert a == b, rel


def test_every_task_trains_and_evaluates(contract: dict) -> None:
    from models.eval import evaluate
    from models.config import TrainConfig
    from models.train import train

    ckpt = train(contract["after"], TrainConfig.demo(mode="text", epochs=1, seed=0), contract["tmp"] / "text-1epoch")
    results = evaluate(contract["after"], [str(ckpt)], contract["tmp"] / "eval", splits=("train", "test"), max_items=12)
    text = (contract["tmp"] / "eval" / "results.md").read_text()
    for task in load_release(contract["after"]).tasks:
        rows = [r for r in results["rows"] if r["task"] == task and r["split"] == "train"]
        assert len(rows) == 1 and 0.0 <= rows[0]["accuracy"] <= 1.0 and rows[0]["n"] > 0, task
        assert f"| {task} | train |" in text, task
    assert json.loads((contract["tmp"] / "eval" / "results.json").read_text())["rows"] == json.loads(json.dumps(results["rows"]))


def test_release_rerun_is_byte_identical_and_does_no_work(contract: dict) -> None:
    env = contract["env"]
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in contract["after"].rglob("*") if p.is_file()}
    proc = subprocess.run(["make", "release", f"BUILD_ROOT={contract['tmp'] / 'build'}", f"DEMO_ROOT={contract['tmp'] / 'demo_corpus'}",
                           "QUIET=1", f"RELEASES={contract['tmp'] / 'after'}"], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0
    assert "] done:" not in proc.stderr  # no stage did work
    assert digests == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in contract["after"].rglob("*") if p.is_file()}


def test_demo_csv_has_the_official_columns(contract: dict) -> None:
    root = contract["after"]
    assert list(pd.read_csv(root / "animal_sound_recognition" / "train.csv").columns) == ["animal", "description", "sentence"]
    for task in ("sound_pitch_comparison", "duration_comparison", "loudness_comparison", "brightness_comparison"):
        assert list(pd.read_csv(root / task / "train.csv").columns) == ["sentence", "answer", "span1", "span2"]
