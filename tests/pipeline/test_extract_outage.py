"""Endpoint failures are not data: an endpoint killed mid-run leaves its clips pending (the stage ends incomplete,
naming it), a rerun after its restart asks exactly the pending ones and ends with the outputs of a run that never
failed; a dead endpoint stops the stage after the run-wide budget of failed tries in a row."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from benchmark.errors import IncompleteStageError
from pipeline.extract.cache import LLMCache
from pipeline.extract.client import INFRA_ERRORS
from pipeline.stages.extract import extract_stage
from pipeline.stages.write import write_stage
from tests.openai_server import FakeModel, OpenAIServer, Reply, request_data
from tests.pipeline.test_extract_rules import TASKS, clip_row, pair_row, write_clips, write_pairs

ROOT = Path(__file__).resolve().parents[2]
ANIMALS = ["dog", "cat", "bird", "cow", "duck", "owl", "frog", "sheep"]
ROWS = [clip_row(i, f"{ANIMALS[i % 8]} take {i}", [ANIMALS[i % 8]], f"a {ANIMALS[i % 8]} recorded outside", []) for i in range(20)]
FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5}


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("AUDITORYBENCH_LLM_MODEL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def params(base_url: str, **kw) -> dict:
    return {"backend": "openai", "model": "m", "base_url": base_url, "batch_size": 1, "concurrency": 2, "max_retries": 2,
            "max_reject_frac": 0.5, **FAST, **kw}


class ServerProcess:
    """tests/openai_server.py in its own process: a real endpoint that can die (--die-after) and come back (--port)."""

    def __init__(self, port: int = 0, die_after: int | None = None):
        cmd = [sys.executable, "-m", "tests.openai_server", "0.02", "--port", str(port)]
        cmd += ["--die-after", str(die_after)] if die_after is not None else []
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.base_url = self.proc.stdout.readline().strip()
        assert self.base_url.startswith("http://127.0.0.1:"), self.base_url
        self.port = int(self.base_url.rsplit(":", 1)[1].split("/")[0])

    def requests(self) -> int:
        with urllib.request.urlopen(self.base_url + "/stats", timeout=5) as r:
            return json.loads(r.read())["requests"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


def _tables(build: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(build / "extract" / f"{name}.parquet") for name in ("categories", "animal_items", "rejects")}


def test_an_endpoint_killed_mid_run_leaves_clips_pending_and_the_rerun_asks_only_those(tmp_path):
    with OpenAIServer(FakeModel()) as ref_srv:  # the run that never fails
        ref = extract_stage(write_clips(tmp_path / "ref", ROWS), params(ref_srv.base_url), quiet=True)
        total = ref_srv.count
    assert total == 40 and ref["counts"]["kept"] == 20  # 20 categorise + 20 animal-item requests

    build = write_clips(tmp_path / "run", ROWS)
    dying = ServerProcess(die_after=13)
    try:
        with pytest.raises(IncompleteStageError) as err:
            extract_stage(build, params(dying.base_url), quiet=True)
    finally:
        dying.stop()
    assert dying.proc.returncode == 3  # it crashed on its 14th request
    msg = str(err.value)
    answered = len(LLMCache(build / "llm_cache"))
    assert 0 < answered <= 13
    pending = int(msg.split(" of 20 clips are pending")[0].rsplit(" ", 1)[1])
    assert msg.startswith(f"extract: the LLM endpoint {dying.base_url} failed (") and "\n" not in msg
    assert 0 < pending <= 20 and f"the {answered} answers of this run are cached" in msg
    assert not (build / "extract" / "manifest.json").exists()  # incomplete: nothing a fresh manifest could keep

    back = ServerProcess(port=dying.port)  # restarted at the same address
    try:
        again = extract_stage(build, params(back.base_url), quiet=True)
        asked = back.requests()
    finally:
        back.stop()
    assert asked == total - answered  # exactly what was never answered
    assert again["counts"] == ref["counts"]
    for name, table in _tables(build).items():
        pd.testing.assert_frame_equal(table, _tables(tmp_path / "ref")[name], check_dtype=False)
    assert not set(_tables(build)["rejects"]["reason"]) & INFRA_ERRORS


def test_a_dead_endpoint_stops_after_the_run_wide_budget_of_failed_tries(tmp_path):
    build = write_clips(tmp_path, ROWS)
    with OpenAIServer(lambda body, i: Reply(status=503)) as srv:
        with pytest.raises(IncompleteStageError, match=r"taken as down after 7 failed tries in a row .*; 20 of 20 clips "
                                                        r"are pending, not rejected: rerun extract"):
            extract_stage(build, params(srv.base_url, concurrency=1, max_retries=5, max_consecutive_failures=7), quiet=True)
        assert srv.count == 7  # not 20 clips x 6 tries
    with OpenAIServer(lambda body, i: Reply(drop=True)) as srv:  # connections dropped: the same
        with pytest.raises(IncompleteStageError, match="llm_connection_error"):
            extract_stage(build, params(srv.base_url, concurrency=1, max_consecutive_failures=4), quiet=True)
        assert srv.count == 4


def test_an_answer_resets_the_count_of_failed_tries(tmp_path):
    model = FakeModel()

    def flaky(body: dict, index: int) -> Reply:  # every other request fails: never two failures in a row
        return Reply(status=500) if index % 2 else Reply(content=model.answer(body))

    with OpenAIServer(flaky) as srv:
        manifest = extract_stage(write_clips(tmp_path, ROWS[:6]), params(srv.base_url, concurrency=1,
                                                                          max_retries=10, max_consecutive_failures=2), quiet=True)
        assert srv.count == 23  # 12 answers, 11 failed tries between them
    assert manifest["counts"]["kept"] == 6 and manifest["llm_stats"]["retries"] == 11
    timing = manifest["run"]["llm_timing"]  # run.json: it varies between runs
    assert timing["answered"] == 12 and 0 < timing["latency_p50_s"] <= timing["latency_p95_s"]
    assert timing["answers_per_s"] > 0 and timing["concurrency_settled"] == 1


def test_write_leaves_pairs_the_endpoint_failed_pending(tmp_path):
    pairs = [pair_row("p1", "violin", "tuba", "higher", 440, 60), pair_row("p2", "flute", "cello", "higher", 800, 200),
             pair_row("p3", "kettle", "door", "higher", 2000, 200)]
    model, down = FakeModel(), {"on": True}

    def respond(body: dict, index: int) -> Reply:
        kind, data = request_data(body)
        if down["on"] and data.get("source_a") == "flute":
            return Reply(status=502)
        return Reply(content=model.answer(body))

    build = write_pairs(tmp_path, pairs)
    with OpenAIServer(respond) as srv:
        with pytest.raises(IncompleteStageError, match=rf"write: the LLM endpoint {srv.base_url} failed \(llm_server_error 1; "
                                                        r".*1 of 3 pairs are pending"):
            write_stage(build, params(srv.base_url, max_retries=1), TASKS, quiet=True)
        assert not (build / "write" / "manifest.json").exists()
        down["on"], n = False, srv.count
        manifest = write_stage(build, params(srv.base_url, max_retries=1), TASKS, quiet=True)
        assert srv.count - n == 1
    assert manifest["counts"]["kept"] == 3 and manifest["counts"]["rejected"] == {}
