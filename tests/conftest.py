"""Shared, session-wide builds: the demo corpus through `make release`, once, for every test that needs a build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

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


def run_make(target_env: dict, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(["make", *args], cwd=REPO, env=target_env, capture_output=True, text=True)
    assert proc.returncode == 0, f"make {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


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
    run_make({**env, "AUDITORYBENCH_TASKS_ENABLED": json.dumps(ORIGINAL)}, "release", *common, f"RELEASES={tmp / 'before'}")
    first = run_make(env, "release", *common, f"RELEASES={tmp / 'after'}")
    return {"tmp": tmp, "env": env, "before": tmp / "before" / "demo-1.0.0", "after": tmp / "after" / "demo-1.0.0",
            "first_log": first.stderr}




@pytest.fixture()
def repo_copy(tmp_path) -> tuple[Path, dict]:
    """A copy of the project's code (packages, Makefile, params.yaml) that a test may edit, and the environment that runs
    the installed CLI on it (PYTHONPATH first: the copy's modules are imported, and hashed into keys, not the checkout's)."""
    dst = tmp_path / "repo"
    dst.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pipeline", "benchmark", "models"):
        shutil.copytree(REPO / name, dst / name, ignore=ignore)
    for name in ("Makefile", "params.yaml", "pyproject.toml"):
        shutil.copy2(REPO / name, dst / name)
    (dst / ".venv").symlink_to(REPO / ".venv")
    return dst, {**os.environ, "PYTHONPATH": str(dst)}
