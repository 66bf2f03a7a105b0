"""`auditorybench export lm-eval`: lm-evaluation-harness itself scores the exported tasks with a tiny random causal LM,
and its per-choice log-likelihoods are this project's `eval` of the same model on the same items."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

lm_eval = pytest.importorskip("lm_eval", reason="the lm-eval extra (in requirements.lock) is not installed")


def test_lm_eval_scores_the_export_as_this_projects_causal_eval(official_release, tiny_causal_dir, tmp_path):
    from benchmark.export_lm_eval import GROUP, task_name
    from benchmark.release_io import load_release
    from models.data import task_items
    from models.eval import load_model
    from pipeline.cli import main

    main(["export", "lm-eval", str(official_release), "--out", str(tmp_path / "tasks")])  # the CLI, as a user runs it
    root = tmp_path / "tasks" / GROUP
    assert (root / f"_{GROUP}.yaml").exists() and (root / "README.md").exists()
    assert "acc_norm" in (root / "README.md").read_text() and "whole filled sentence" in (root / "README.md").read_text()
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", TQDM_DISABLE="1")
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={tiny_causal_dir},dtype=float32",
           "--tasks", GROUP, "--include_path", str(tmp_path / "tasks"), "--device", "cpu", "--batch_size", "8",
           "--log_samples", "--output_path", str(tmp_path / "out")]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    release = load_release(official_release)
    model = load_model(f"causal:{tiny_causal_dir}")
    samples = {p.name: p for p in (tmp_path / "out").rglob("samples_*.jsonl")}
    for task in release.tasks:
        items = task_items(release, [task], "test")
        assert items, task
        f = next(p for n, p in samples.items() if n.startswith(f"samples_{task_name(task)}_"))
        rows = {r["doc"]["id"]: r for r in map(json.loads, f.read_text().splitlines())}
        assert sorted(rows) == sorted(it["id"] for it in items)  # the same items
        theirs = np.array([[float(ll) for ll, _greedy in rows[it["id"]]["filtered_resps"]] for it in items])
        ours = model.score(items, release.choices(task))
        assert theirs.shape == ours.shape == (len(items), len(release.choices(task)))
        assert np.abs(theirs - ours).max() <= 1e-3, task  # per choice, not the argmax: a random model ties
        assert [int(rows[it["id"]]["target"]) for it in items] == [release.choices(task).index(it["answer"]) for it in items]
    summary = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())
    assert GROUP in summary["results"] and all(task_name(t) in summary["results"] for t in release.tasks)


def test_export_names_a_bad_split(official_release, tmp_path):
    from benchmark.errors import InputError
    from benchmark.export_lm_eval import export_lm_eval

    with pytest.raises(InputError, match="--split 'tests'"):
        export_lm_eval(official_release, tmp_path, split="tests")
