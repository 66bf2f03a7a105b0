"""The contract: every registered task — including tasks added by a YAML file alone (a comparison task from a user's
task folder, and the packaged instrument_recognition, a recognition task whose item source is a generic function) —
goes through the whole pipeline on the demo corpus, into a release that passes `validate`, and through training and
evaluation. Adding tasks changes nothing in the original two tasks' output."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pandas as pd

from benchmark.release_io import load_release
from benchmark.validate import validate_release
from tests.conftest import ORIGINAL, REPO

STAGE_DID_WORK = "] done in "  # what a stage logs when it ran: "[read] done in 0.4s: {...}"


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
    from models.config import TrainConfig
    from models.eval import evaluate
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
    assert STAGE_DID_WORK in contract["first_log"]  # the marker is what a stage that works prints ...
    assert STAGE_DID_WORK not in proc.stderr, proc.stderr[-2000:]  # ... and on the rerun no stage printed it
    assert digests == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in contract["after"].rglob("*") if p.is_file()}


def test_recognition_task_added_by_yaml(contract: dict) -> None:
    """instrument_recognition: timbre words of music clips' captions -> the instrument, kind and CSV from its YAML."""
    from benchmark.tasks import get_task

    spec = get_task("instrument_recognition")
    assert spec.kind == "recognition" and spec.item_source == "benchmark.tasks.sources.caption_descriptions"
    rel = load_release(contract["after"])
    assert rel.kind("instrument_recognition") == "recognition" and rel.metrics("instrument_recognition") == spec.metrics
    items = pd.concat([rel.items("instrument_recognition", s) for s in rel.splits("instrument_recognition")])
    assert set(items["split"]) <= {"train", "dev", "test"} and len(items) >= 5
    from pipeline.demo.corpus import _TIMBRE  # the demo captions' timbre phrases, per instrument: the truth here

    made = {(f"A [MASK] makes {'an' if d[0] in 'aeiou' else 'a'} {d} sound.", a) for a, ds in _TIMBRE.items() for d in ds}
    assert set(zip(items["sentence"], items["answer"])) <= made  # each item: a phrase of its own instrument's captions
    assert all(s.count("[MASK]") == 1 and a not in s for s, a in zip(items["sentence"], items["answer"]))
    assert rel.choices("instrument_recognition") == sorted(set(items["answer"]))


def test_demo_csv_has_the_official_columns(contract: dict) -> None:
    root = contract["after"]
    assert list(pd.read_csv(root / "animal_sound_recognition" / "train.csv").columns) == ["animal", "description", "sentence"]
    assert list(pd.read_csv(root / "instrument_recognition" / "train.csv").columns) == ["instrument", "description", "sentence"]
    for task in ("sound_pitch_comparison", "duration_comparison", "loudness_comparison", "brightness_comparison"):
        assert list(pd.read_csv(root / task / "train.csv").columns) == ["sentence", "answer", "span1", "span2"]
