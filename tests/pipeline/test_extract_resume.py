"""Kill -9 an LLM extract run half-way; the rerun asks only what was never answered and ends with the same items:
no duplicate, none missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from pipeline.extract.cache import LLMCache
from pipeline.stages.extract import extract_stage
from tests.openai_server import FakeModel, OpenAIServer
from tests.pipeline.test_extract_rules import clip_row, write_clips

ROOT = Path(__file__).resolve().parents[2]
ANIMALS = ["dog", "cat", "bird", "cow", "duck", "owl", "frog", "sheep"]
ROWS = [clip_row(i, f"{ANIMALS[i % 8]} take {i}", [ANIMALS[i % 8]], f"a {ANIMALS[i % 8]} recorded outside", []) for i in range(20)]
CHILD = """
import sys, json
from pathlib import Path
from pipeline.stages.extract import extract_stage
extract_stage(Path(sys.argv[1]), json.loads(sys.argv[2]), quiet=True)
"""


def test_killed_run_resumes_without_reasking(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with OpenAIServer(FakeModel(), latency_s=0.08) as srv:
        params = {"backend": "openai", "model": "m", "base_url": srv.base_url, "batch_size": 1, "concurrency": 2,
                  "max_reject_frac": 0.5}
        ref = extract_stage(write_clips(tmp_path / "ref", ROWS), params, quiet=True)
        total = srv.count
        assert total == 40  # 20 categorise + 20 animal items

        run_dir = write_clips(tmp_path / "run", ROWS)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(run_dir), json.dumps(params)], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while srv.count < total + 12 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        assert not (run_dir / "extract" / "manifest.json").exists()
        cache = LLMCache(run_dir / "llm_cache")
        answered_before_kill = len(cache)
        cache.close()
        assert 0 < answered_before_kill < total

        before = srv.count
        resumed = extract_stage(run_dir, params, quiet=True)
        asked_again = srv.count - before
    assert asked_again == total - answered_before_kill  # nothing answered before the kill is asked twice
    assert resumed["llm_stats"]["cache_hits"] == answered_before_kill
    for name in ("categories.parquet", "animal_items.parquet"):
        a = pd.read_parquet(tmp_path / "ref" / "extract" / name)
        b = pd.read_parquet(run_dir / "extract" / name)
        assert b["clip_id"].is_unique
        pd.testing.assert_frame_equal(a, b)
    assert len(pd.read_parquet(run_dir / "extract" / "animal_items.parquet")) == 20 == ref["counts"]["kept"]
