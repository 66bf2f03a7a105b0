"""`auditorybench preflight` against the loopback OpenAI-protocol server: the truth table beside the rules, the
sample's ratios and the projection of the whole corpus; a model below the thresholds exits non-zero with its
reasons unless --accept-weak-llm; a rerun asks the endpoint nothing (its answers are cached)."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main
from pipeline.demo.corpus import build_demo_corpus
from pipeline.params import stage_params
from pipeline.preflight import Thresholds
from pipeline.preflight.sample import count_clips, sample_corpus
from pipeline.preflight.truth import weak_model_reasons
from tests.openai_server import FakeModel, OpenAIServer


def test_preflight_prints_the_truth_table_and_the_projection_and_refuses_a_weak_model(tmp_path, monkeypatch, capsys):
    out = tmp_path / "preflight"
    dp = stage_params("demo_corpus")
    # the corpus a user would build from: here the same demo corpus preflight checks the LLM on (built once)
    corpus = build_demo_corpus(out / "truth" / "demo_corpus", seed=int(dp["seed"]), n_clips=24, n_shards=int(dp["n_shards"]),
                               sample_rate=int(dp["sample_rate"]), quiet=True)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("AUDITORYBENCH_LLM_MODEL", raising=False)
    argv = ["preflight", str(corpus), "--model", "fake", "--out", str(out), "--n-clips", "24", "--sample-clips", "18",
            "--quiet"]
    with OpenAIServer(FakeModel()) as srv:  # knows 8 animals and a few things: weak against the demo's truth
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr()
        asked = srv.count
        assert asked > 0
        main(argv + ["--accept-weak-llm"])  # every stage fresh: the same figures, nothing asked again
        assert srv.count == asked
    again = capsys.readouterr()
    assert "error: preflight: the model openai (fake) is too weak for a real run: it gives the true category for " in err.err
    assert "--accept-weak-llm" in err.err
    report = (out / "preflight.md").read_text()
    assert report == err.out.replace("is below the thresholds:", "is below the thresholds, accepted with --accept-weak-llm:") \
        == again.out
    figures = json.loads((out / "preflight.json").read_text())
    rules, llm = figures["truth"]["rules"], figures["truth"]["openai (fake)"]
    assert rules["clips"] == llm["clips"] == 24 and rules["requests"] == 0 and llm["requests"] > 0
    assert rules["category_agree"] / 24 >= Thresholds.min_category_agreement > llm["category_agree"] / 24
    assert llm["structured_output"] == "json_schema" and llm["latency_p50_s"][0] > 0
    for row in ("| category = truth (of all clips) |", "| latency p95 s (extract/write) |", "| items after filter |",
                "| writer guess = measurement |", "| extract (LLM) |", "| write (LLM) |"):
        assert row in report
    sample = figures["sample"]
    assert 0 < sample["clips"] <= 18 and sample["agreement_with_rules"]["clips"] == sample["clips"]
    size = figures["corpus"]
    assert size["exact"] and size["clips"] == count_clips(corpus).clips >= 24
    proj = figures["projection"]
    r = proj["ratios"]
    assert proj["clips"] == size["clips"] and r["answers_per_s"] > 0 and r["pairs_per_clip"] > 0
    assert proj["llm"]["extract"]["requests"] == pytest.approx(r["extract_requests_per_clip"] * size["clips"])
    assert proj["llm"]["write"]["requests"] == pytest.approx(r["pairs_per_clip"] * r["write_requests_per_pair"] * size["clips"])
    assert proj["cpu_hours"] > 0 and proj["build_gb"] > 0


def test_the_thresholds_are_defined_when_a_model_yields_no_items():
    nothing = {"clips": 72, "category_agree": 12, "animal_clips_true": 27, "animal_found": 0}
    reasons = weak_model_reasons(nothing, Thresholds())
    assert reasons == ["it gives the true category for 12 of 72 clips (17%, below --min-category-agreement 70%)",
                       "it yields the right animal item for 0 of 27 true animal clips (0%, below --min-animal-recall 50%)"]
    good = {"clips": 72, "category_agree": 60, "animal_clips_true": 27, "animal_found": 20}
    assert weak_model_reasons(good, Thresholds()) == []


def test_a_sample_takes_the_first_clips_of_shards_spread_over_the_list(tmp_path):
    corpus = build_demo_corpus(tmp_path / "demo_corpus", seed=1, n_clips=12, n_shards=3, sample_rate=16000, quiet=True)
    sample = sample_corpus(corpus, tmp_path / "sample", 6, max_shards=3)
    assert sample.name == corpus.name  # the read stage names the source after the folder
    shards = sorted(p.relative_to(sample) for p in sample.rglob("*.tar"))
    assert shards == sorted(p.relative_to(corpus) for p in corpus.rglob("*.tar"))
    assert count_clips(sample).clips == 6
