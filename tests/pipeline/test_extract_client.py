"""The openai path against a loopback server that speaks the real chat-completions protocol: normal answers,
429 + Retry-After, 500s, slow answers past the timeout, malformed / truncated JSON, wrong schema, dropped
connections, servers without json_schema; the cache (a rerun makes zero requests), --offline, and key hygiene."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter

import pandas as pd
import pytest

from benchmark.errors import ConfigError, IncompleteStageError, StageError
from pipeline.extract.cache import LLMCache
from pipeline.extract.client import ChatRequest, LLMClient, LLMSettings
from pipeline.stages.extract import extract_stage
from pipeline.stages.write import write_stage
from tests.openai_server import FakeModel, OpenAIServer, Reply, request_data
from tests.pipeline.test_extract_rules import TASKS, clip_row, pair_row, write_clips, write_pairs

KEY = "sk-test-DO-NOT-LEAK-7f3a9c"
FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "max_retries": 3, "concurrency": 4, "timeout_s": 5}


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("AUDITORYBENCH_LLM_MODEL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def llm_params(srv: OpenAIServer, **kw) -> dict:
    return {"backend": "openai", "model": "fake-model", "base_url": srv.base_url, "batch_size": 4, "max_reject_frac": 0.6,
            **FAST, **kw}


class Misbehaving:
    """FakeModel answers, except animal-item requests whose clip title names a behaviour ("cow slow")."""

    def __init__(self):
        self.model = FakeModel()
        self.attempts: Counter = Counter()
        self._lock = threading.Lock()

    def __call__(self, body: dict, index: int) -> Reply:
        kind, data = request_data(body)
        if kind != "clip":
            return Reply(content=self.model.answer(body))
        title = data["title"]
        how = title.split()[-1]
        with self._lock:
            self.attempts[title] += 1
            n = self.attempts[title]
        good = self.model.answer(body)
        if how == "ratelimited" and n == 1:
            return Reply(status=429, headers={"Retry-After": "0.3"})
        if how == "servererror" and n <= 2:
            return Reply(status=500 if n == 1 else 503)
        if how == "slow" and n == 1:
            return Reply(content=good, delay_s=1.5)
        if how == "dropped" and n == 1:
            return Reply(drop=True)
        if how == "malformed":
            return Reply(content='{"sentence": "Quack is the sound a [MASK] makes", answer: duck')
        if how == "truncated":
            return Reply(content='{"sentence": "Hoot is the sound a [MA', finish_reason="length")
        if how == "wrongschema":
            return Reply(content=json.dumps({"text": "Ribbit", "animal": "frog"}))
        if how == "fenced":
            return Reply(content=f"Sure! Here is the JSON:\n```json\n{good}\n```")
        return Reply(content=good)


BEHAVIOURS = ["dog ratelimited", "cat servererror", "cow slow", "sheep dropped", "duck malformed", "owl truncated",
              "frog wrongschema", "bird fenced"]


def test_openai_stage_keeps_rejects_and_loses_nothing(tmp_path, capsys):
    rows = [clip_row(i, title, [], "", []) for i, title in enumerate(BEHAVIOURS)]
    rows.append(clip_row(50, "violin long note", ["violin"], "", []))
    responder = Misbehaving()
    with OpenAIServer(responder) as srv:
        manifest = extract_stage(write_clips(tmp_path, rows), llm_params(srv, timeout_s=0.5), quiet=True)
        assert set(srv.auth_headers) == {f"Bearer {KEY}"}  # the key is sent to the server, and only there
    items = pd.read_parquet(tmp_path / "extract" / "animal_items.parquet").set_index("clip_id")
    rejects = pd.read_parquet(tmp_path / "extract" / "rejects.parquet").set_index("key")
    cats = pd.read_parquet(tmp_path / "extract" / "categories.parquet").set_index("clip_id")
    ids = {title.split()[-1]: f"freesound/{1000 + i}" for i, title in enumerate(BEHAVIOURS)}
    kept = {how: items.loc[ids[how], "answer"] for how in ("ratelimited", "servererror", "slow", "dropped", "fenced")}
    assert kept == {"ratelimited": "dog", "servererror": "cat", "slow": "cow", "dropped": "sheep", "fenced": "bird"}
    assert rejects.loc[ids["malformed"], "reason"] == "malformed_json"
    assert rejects.loc[ids["truncated"], "reason"] == "truncated_output"
    assert rejects.loc[ids["wrongschema"], "reason"] == "schema_mismatch"
    assert set(items.index) | set(rejects.index) == set(ids.values())  # every animal clip is kept or rejected with a reason
    assert cats.loc["freesound/1050", "category_path"] == "music/violin" and len(cats) == len(rows)
    stats = manifest["llm_stats"]
    assert stats["retries"] == 5 and stats["failed"] == 0  # 429 once, 5xx twice, a timeout, a dropped connection
    assert manifest["model"] == "fake-model"
    assert {k: v.split("@")[0] for k, v in manifest["prompt_versions"].items()} == {"categorise": "categorise.v1",
                                                                                   "animal_item": "animal_item.v1"}
    assert manifest["sampling"] == {"temperature": 0, "seed": 0, "max_tokens": 512}
    # the key never reaches logs, outputs, the manifest or the cache
    assert KEY not in capsys.readouterr().err
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f


def test_retry_after_is_honoured(tmp_path):
    arrivals: dict[str, list[float]] = {}
    lock = threading.Lock()
    model = FakeModel()

    def respond(body: dict, index: int) -> Reply:
        kind, data = request_data(body)
        with lock:
            seen = arrivals.setdefault(json.dumps(data), [])
            seen.append(time.monotonic())
            first = len(seen) == 1
        return Reply(status=429, headers={"Retry-After": "0.4"}) if first else Reply(content=model.answer(body))

    with OpenAIServer(respond) as srv:
        extract_stage(write_clips(tmp_path, [clip_row(0, "dog bark", ["dog"], "", [])]), llm_params(srv), quiet=True)
    gaps = [t[1] - t[0] for t in arrivals.values()]
    assert len(gaps) == 2 and min(gaps) >= 0.4  # backoff alone would wait ~0.01 s


def _client(srv: OpenAIServer, tmp_path, **kw) -> LLMClient:
    settings = LLMSettings.from_params({"model": "m", "base_url": srv.base_url, **FAST, **kw})
    return LLMClient(settings, LLMCache(tmp_path / "cache"), quiet=True)


def _reqs(n: int) -> list[ChatRequest]:
    return [ChatRequest(f"unit {i}", "t.v1", [{"role": "user", "content": f"q{i}"}], "t", {"type": "object"}) for i in range(n)]


def test_retries_stop_at_max_retries_and_at_the_budget(tmp_path):
    with OpenAIServer(lambda body, i: Reply(status=500)) as srv:
        replies = _client(srv, tmp_path / "a", max_retries=2).run(_reqs(3))
        assert srv.count == 9  # 3 requests x (1 + 2 retries)
        assert {r.error for r in replies} == {"llm_server_error"} and all("gave up after 3 tries" in r.detail for r in replies)
    with OpenAIServer(lambda body, i: Reply(status=500)) as srv:
        client = _client(srv, tmp_path / "b", max_retries=5, retry_budget=2)
        replies = client.run(_reqs(3))
        assert srv.count == 5 and client.stats["retries"] == 2  # the run's retry budget, not 3 x 5
        assert {r.error for r in replies} == {"llm_server_error"}
    assert len(LLMCache(tmp_path / "b" / "cache")) == 0  # failures are never cached


def test_server_without_structured_output_falls_back_to_text(tmp_path):
    with OpenAIServer(FakeModel(), json_schema=False, json_object=False) as srv:
        rows = [clip_row(0, "dog bark", ["dog"], "", []), clip_row(1, "violin", ["violin"], "", [])]
        manifest = extract_stage(write_clips(tmp_path, rows), llm_params(srv, concurrency=1), quiet=True)
        formats = [b.get("response_format", {}).get("type") for b in srv.requests]
    assert formats[:2] == ["json_schema", "json_object"] and set(formats[2:]) == {None}
    assert manifest["llm_stats"]["schema_fallbacks"] == 2
    assert manifest["counts"]["kept"] == 1


def test_auth_failure_is_a_config_error_without_the_key(tmp_path):
    def respond(body, i):
        return Reply(status=401, raw_body=json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}}).encode())

    with OpenAIServer(respond) as srv:
        with pytest.raises(ConfigError, match="authentication failed") as err:
            extract_stage(write_clips(tmp_path, [clip_row(0, "dog", ["dog"], "", [])]), llm_params(srv), quiet=True)
    assert KEY not in str(err.value)


def test_model_from_environment_and_override(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDITORYBENCH_LLM_MODEL", "env-model")
    assert LLMSettings.from_params({"model": "yaml-model"}).model == "env-model"
    assert LLMSettings.from_params({"model": "yaml-model", "model_override": "flag-model"}).model == "flag-model"
    monkeypatch.delenv("AUDITORYBENCH_LLM_MODEL")
    assert LLMSettings.from_params({"model": "yaml-model"}).model == "yaml-model"
    with pytest.raises(ConfigError, match="AUDITORYBENCH_LLM_MODEL"):
        LLMSettings.from_params({"model": ""})


def test_cache_replays_with_zero_requests_and_offline(tmp_path):
    rows = [clip_row(i, t, [t.split()[0]], "", []) for i, t in enumerate(["dog bark", "bird song", "violin", "rain", "cat"])]
    pairs = [pair_row("p1", "violin", "tuba", "higher", 600.0, 70.0), pair_row("p2", "cello", "flute", "lower", 200.0, 800.0)]
    with OpenAIServer(FakeModel()) as srv:
        params = llm_params(srv)
        first = extract_stage(write_clips(tmp_path, rows), params, quiet=True)
        w1 = write_stage(write_pairs(tmp_path, pairs), params, TASKS, quiet=True)
        n = srv.count
        assert n > 0 and first["llm_stats"]["requests_sent"] + w1["llm_stats"]["requests_sent"] == n
        shutil.rmtree(tmp_path / "extract")
        shutil.rmtree(tmp_path / "write")
        second = extract_stage(tmp_path, params, quiet=True)
        w2 = write_stage(tmp_path, params, TASKS, quiet=True)
        assert srv.count == n  # the rerun asked nothing
    assert second["outputs"] == first["outputs"] and w2["outputs"] == w1["outputs"]
    assert second["llm_stats"]["cache_hits"] == first["llm_stats"]["requests_sent"]
    s = pd.read_parquet(tmp_path / "write" / "sentences.parquet")
    assert list(s["llm_guess"]) == ["higher", "lower"] and set(s["backend"]) == {"openai"}
    # --offline: the cache alone (no server at all); a missing entry is named
    shutil.rmtree(tmp_path / "extract")
    params_dead = dict(params, base_url="http://127.0.0.1:9/v1")
    offline = extract_stage(tmp_path, params_dead, quiet=True, offline=True)
    assert offline["outputs"] == first["outputs"]
    other = write_clips(tmp_path / "other", rows + [clip_row(99, "cow moo", ["cow"], "", [])])
    shutil.copytree(tmp_path / "llm_cache", other / "llm_cache")
    with pytest.raises(StageError, match=r"offline: no cached LLM answer for clip freesound/1004 \(\+1 in its batch\)"):
        extract_stage(other, params_dead, quiet=True, offline=True)


def test_the_cache_key_holds_the_schemas_the_answer_was_constrained_to(tmp_path):
    with OpenAIServer(FakeModel()) as srv:
        client = _client(srv, tmp_path)
        base = _reqs(1)[0]
        bounded = ChatRequest(base.unit, base.prompt_version, base.messages, base.schema_name, base.schema,
                              {"type": "object", "maxProperties": 1})
        assert client.key(base) != client.key(bounded) != client.key(ChatRequest(*list(vars(bounded).values())[:4], {}))
        assert client.key(base) == client.key(_reqs(1)[0])
        other_mode = LLMClient(LLMSettings.from_params({"model": "m", "base_url": srv.base_url, **FAST,
                                                         "structured_output": "text"}), client.cache, quiet=True)
        assert other_mode.key(base) != client.key(base)


def test_a_200_that_is_not_a_chat_completion_is_a_protocol_error(tmp_path):
    with OpenAIServer(lambda body, i: Reply(raw_body=b"<html>bad gateway page</html>")) as srv:
        replies = _client(srv, tmp_path).run(_reqs(2))
    assert [r.error for r in replies] == ["llm_protocol_error"] * 2 and srv.count == 2


def test_network_failures_are_pending_not_rejects_and_asked_again_on_the_next_run(tmp_path):
    model, down = FakeModel(), {"on": True}

    def respond(body: dict, index: int) -> Reply:
        kind, _ = request_data(body)
        return Reply(status=503) if down["on"] and kind == "clip" else Reply(content=model.answer(body))

    rows = [clip_row(0, "dog bark", ["dog"], "", []), clip_row(1, "cow moo", ["cow"], "", [])]
    with OpenAIServer(respond) as srv:
        params = llm_params(srv, max_retries=0, max_reject_frac=1.0)
        with pytest.raises(IncompleteStageError, match=r"llm_server_error 2; .*2 of 2 clips are pending"):
            extract_stage(write_clips(tmp_path, rows), params, quiet=True)
        assert not (tmp_path / "extract" / "manifest.json").exists()
        down["on"] = False
        n = srv.count
        second = extract_stage(tmp_path, params, quiet=True)
        assert srv.count - n == 2  # only the two animal items; the categories come from the cache
    assert second["counts"]["kept"] == 2 and second["counts"]["rejected"] == {}


def test_llm_writer_is_validated_and_never_sees_the_measurement(tmp_path):
    bad = {  # source_a -> what the model writes
        "violin": {"sentence": "The sound of a violin is typically [MASK] than the sound of a tuba.", "guess": "higher"},
        "cello": {"sentence": "A flute sounds [MASK] than a cello.", "guess": "higher"},  # a and b swapped
        "oboe": {"sentence": "An oboe is higher and [MASK] than a bassoon.", "guess": "higher"},  # answer leaked
        "harp": {"sentence": "A harp is [MASK] than a [MASK] gong.", "guess": "lower"},  # two masks
        "piano": {"sentence": "A piano is [MASK] than a tuba.", "guess": "maybe"},  # guess not a choice
        "drum": {"sentence": "A drum is [MASK] than a flute.", "guess": "unsure"},  # kept, no guess
    }

    def respond(body: dict, index: int) -> Reply:
        _, data = request_data(body)
        return Reply(content=json.dumps(bad[data["source_a"]]))

    pairs = [pair_row("p1", "violin", "tuba", "higher", 612.34, 71.25), pair_row("p2", "cello", "flute", "lower", 203.5, 811.5),
             pair_row("p3", "oboe", "bassoon", "higher", 598.5, 118.75), pair_row("p4", "harp", "gong", "higher", 401.5, 99.25),
             pair_row("p5", "piano", "tuba", "higher", 262.5, 70.5), pair_row("p6", "drum", "flute", "lower", 121.5, 790.5)]
    with OpenAIServer(respond) as srv:
        write_stage(write_pairs(tmp_path, pairs), llm_params(srv, max_reject_frac=0.8), TASKS, quiet=True)
        sent = json.dumps(srv.requests)
    for p in pairs:
        assert str(p["value_a"]) not in sent and str(p["value_b"]) not in sent
    assert "label" not in sent and "value_a" not in sent
    s = pd.read_parquet(tmp_path / "write" / "sentences.parquet").set_index("pair_id")
    r = pd.read_parquet(tmp_path / "write" / "rejects.parquet").set_index("key")
    assert list(s.index) == ["p1", "p6"] and s.loc["p1", "llm_guess"] == "higher" and s.loc["p6", "llm_guess"] == ""
    assert s.loc["p1", "answer"] == "higher" and (s.loc["p1", "span1"], s.loc["p1", "span2"]) == ("violin", "tuba")
    assert r["reason"].to_dict() == {"p2": "order_mismatch", "p3": "answer_in_sentence", "p4": "mask_count", "p5": "guess_invalid"}
