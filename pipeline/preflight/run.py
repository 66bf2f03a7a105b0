"""`auditorybench preflight CORPUS`: what a real run would cost and how good the LLM is, in minutes, before it.

1. Truth: extract → filter on a fixed demo corpus (`n_truth_clips`, built from params.yaml's demo_corpus seed), once
   with the rules backend and once with the LLM (`--llm openai`: the endpoint of $OPENAI_BASE_URL / params.yaml);
   the table of truth.py, latency and rate included.
2. The user's corpus: a sample (`sample_clips`, sample.py) through read, extract, measure, split and pairs (rules),
   and extract with the LLM: animal share, pairs per clip, requests and tokens per request, reject rates, the CPU
   time of each stage and the build's bytes; and the LLM's agreement with the rules on those captions.
3. The projection of the whole corpus (projection.py) from its shard list.
4. The verdict: exits non-zero (WeakModelError) when the LLM misses a threshold against the truth, unless
   accept_weak. An endpoint that fails ends the run as the stages do (IncompleteStageError, naming it).
The LLM stages run with max_reject_frac 1.0 here (the rejects are what the table reports); their answers are cached
under `out`, so a second preflight asks nothing again.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from benchmark.errors import AuditoryBenchError, InputError
from pipeline.contract import stage_file
from pipeline.preflight.projection import Ratios, project, projection_table
from pipeline.preflight.sample import count_clips, sample_corpus
from pipeline.preflight.truth import (
    Thresholds,
    read_run_json,
    read_truth,
    truth_figures,
    truth_table,
    unsupported_items,
    weak_model_reasons,
)

__all__ = ["run_preflight", "WeakModelError"]

_DEFAULTS = Thresholds()  # frozen: one shared default

TRUTH_STAGES = ("read", "extract", "measure", "split", "pairs", "write", "filter")
SAMPLE_STAGES = ("read", "extract", "measure", "split", "pairs")
_CPU_STAGES = ("read", "measure")  # per-clip work, mapped over the cores: CPU time; the others count by wall time


class WeakModelError(AuditoryBenchError):
    """The LLM is below the preflight's thresholds against the demo truth (or accepts unsupported answers)."""


def _cpu_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _chain(corpus: Path, build_root: Path, corpus_id: str, stages: tuple[str, ...], llm: dict | None, params_path,
           meta, quiet: bool, log) -> tuple[Path, dict[str, float], dict[str, float]]:
    """The stages in order through the stage contract, as `make` runs them; (build dir, wall s, CPU s) per stage, of
    the run that computed it (kept in <build>/preflight_times.json: a fresh stage costs nothing the second time).
    `llm`: the extract/write overrides of the LLM run (None: the rules)."""
    from pipeline.contract import Context, run_stage

    overrides = {s: dict(llm) for s in ("extract", "write")} if llm else {}
    ctx = Context(corpus=str(corpus), corpus_id=corpus_id, build_root=build_root, params_path=params_path, meta=meta,
                  overrides=overrides, options={"engine": "local"}, quiet=quiet)
    times_path = ctx.build_dir / "preflight_times.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    for stage in stages:
        log(f"[preflight] {'llm' if llm else 'rules'} {corpus_id}: {stage}")
        manifest = ctx.manifest_path(stage)
        before = manifest.stat().st_mtime_ns if manifest.exists() else None
        t0, c0 = time.monotonic(), _cpu_s()
        run_stage(stage, ctx)
        if manifest.stat().st_mtime_ns != before or stage not in times:
            times[stage] = {"wall_s": round(time.monotonic() - t0, 2), "cpu_s": round(_cpu_s() - c0, 3)}
    times_path.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n")
    return ctx.build_dir, {s: times[s]["wall_s"] for s in stages}, {s: times[s]["cpu_s"] for s in stages}


def _manifest(build: Path, stage: str) -> dict:
    return json.loads(stage_file(build, f"{stage}/manifest.json").read_text())


def _agreement(rules_build: Path, llm_build: Path) -> dict:
    """How the LLM's extract agrees with the rules' on the same clips (no truth needed)."""
    a = pd.read_parquet(stage_file(rules_build, "extract/categories.parquet"))
    b = pd.read_parquet(stage_file(llm_build, "extract/categories.parquet"))
    m = a.merge(b, on="clip_id", suffixes=("_rules", "_llm"))
    both = m[(m["category_rules"] != "other") & (m["category_rules"] == m["category_llm"])]
    ia = pd.read_parquet(stage_file(rules_build, "extract/animal_items.parquet"))[["clip_id", "answer"]]
    ib = pd.read_parquet(stage_file(llm_build, "extract/animal_items.parquet"))[["clip_id", "answer"]]
    items = ia.merge(ib, on="clip_id", suffixes=("_rules", "_llm"))
    return {"clips": len(m), "category_same": int((m["category_rules"] == m["category_llm"]).sum()),
            "rules_categorised": int((m["category_rules"] != "other").sum()),
            "llm_categorised": int((m["category_llm"] != "other").sum()),
            "source_same": int((both["source_name_rules"] == both["source_name_llm"]).sum()), "both_same_category": len(both),
            "items_rules": len(ia), "items_llm": len(ib), "items_both": len(items),
            "answer_same": int((items["answer_rules"] == items["answer_llm"]).sum())}


def _reject_rate(m: dict, units: int) -> float:
    return sum((m.get("counts") or {}).get("rejected", {}).values()) / units if units else 0.0


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_preflight(corpus: str | None, out: Path, llm: str = "openai", model: str | None = None, n_truth_clips: int = 72,
                  sample_clips: int = 300, thresholds: Thresholds = _DEFAULTS, accept_weak: bool = False,
                  params_path: str | None = None, meta: str | None = None, quiet: bool = False, log=print) -> dict:
    """Run the preflight into `out` (corpus None: the demo truth corpus stands in for the user's) (preflight.md, preflight.json, the report also on stdout; `log`: progress lines);
    returns the figures. Raises WeakModelError after writing them when the LLM misses a threshold (unless
    accept_weak)."""
    from pipeline.demo.corpus import build_demo_corpus
    from pipeline.params import stage_params

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda msg: None) if quiet else log
    if corpus is not None:
        count_clips(corpus)  # first: a wrong CORPUS fails before anything runs
    llm_over = None
    if llm == "openai":
        llm_over = {"backend": "openai", "max_reject_frac": 1.0, **({"model_override": model} if model else {})}
    elif llm != "rules":
        raise InputError(f"--llm {llm!r}: expected openai or rules")

    # 1. the demo truth
    dp = stage_params("demo_corpus", {}, path=params_path)
    demo = build_demo_corpus(out / "truth" / "demo_corpus", seed=int(dp["seed"]), n_clips=n_truth_clips,
                             n_shards=int(dp["n_shards"]), sample_rate=int(dp["sample_rate"]), quiet=True)
    truth = read_truth(demo.parent / "ground_truth.csv")
    corpus = str(demo) if corpus is None else corpus
    size = count_clips(corpus)
    truth_res, timing = {}, {}
    for name, over in (("rules", None), ("llm", llm_over)):
        if name == "llm" and over is None:
            continue
        build, walls, _ = _chain(demo, out / "truth" / name, "demo", TRUTH_STAGES, over, params_path, None, quiet, say)
        label = "rules" if over is None else f"openai ({_manifest(build, 'extract').get('model')})"
        truth_res[label] = truth_figures(build, truth, walls)
        timing[name] = build

    # 2. the user's corpus: a sample
    sample = sample_corpus(corpus, out / "sample" / "corpus", sample_clips)
    rb, rwalls, rcpus = _chain(sample, out / "sample" / "rules", "sample", SAMPLE_STAGES, None, params_path, meta, quiet, say)
    clips = len(pd.read_parquet(stage_file(rb, "read/clips.parquet")))
    if not clips:
        raise InputError(f"{corpus}: the sample of its shards holds no readable clip (see {stage_file(rb, 'read/rejects.parquet')})")
    cats = pd.read_parquet(stage_file(rb, "extract/categories.parquet"))
    pairs = _manifest(rb, "pairs")["counts"]["kept"]
    rules_ext = _manifest(rb, "extract")
    sample_fig = {"clips": clips, "animal_share_rules": round(float((cats["category"] == "animal").mean()), 4),
                  "pairs": pairs, "rules_extract_reject_rate": round(_reject_rate(rules_ext, clips), 4),
                  "wall_s": rwalls, "cpu_s": rcpus}
    ext_stats, ext_m = {}, rules_ext
    if llm_over is not None:
        lb, lwalls, _ = _chain(sample, out / "sample" / "llm", "sample", ("read", "extract"), llm_over, params_path, meta,
                               quiet, say)
        ext_m = _manifest(lb, "extract")
        ext_stats = ext_m.get("llm_stats") or {}
        lcats = pd.read_parquet(stage_file(lb, "extract/categories.parquet"))
        sample_fig |= {"animal_share_llm": round(float((lcats["category"] == "animal").mean()), 4),
                       "llm_extract_reject_rate": round(_reject_rate(ext_m, clips), 4),
                       "llm_extract_rejects": ext_m["counts"]["rejected"], "agreement_with_rules": _agreement(rb, lb),
                       "llm_timing": read_run_json(lb, "extract").get("llm_timing")}
    write_m = _manifest(timing["llm"], "write") if "llm" in timing else {}
    wstats = write_m.get("llm_stats") or {}
    truth_pairs = (_manifest(timing["llm"], "pairs")["counts"]["kept"] if "llm" in timing else 0) or 1
    sent = max(1, ext_stats.get("requests_sent", 0))
    wsent = max(1, wstats.get("requests_sent", 0))
    rate = (sample_fig.get("llm_timing") or {}).get("answers_per_s")
    whole_table = sum(v for k, v in rwalls.items() if k not in _CPU_STAGES)
    ratios = Ratios(
        clips=clips, animal_share=sample_fig.get("animal_share_llm", sample_fig["animal_share_rules"]),
        pairs_per_clip=pairs / clips, extract_requests_per_clip=ext_stats.get("requests_sent", 0) / clips,
        extract_tokens_in_per_request=ext_stats.get("prompt_tokens", 0) / sent,
        extract_tokens_out_per_request=ext_stats.get("completion_tokens", 0) / sent,
        write_requests_per_pair=wstats.get("requests_sent", 0) / truth_pairs if wstats else 0.0,
        write_tokens_in_per_request=wstats.get("prompt_tokens", 0) / wsent,
        write_tokens_out_per_request=wstats.get("completion_tokens", 0) / wsent,
        answers_per_s=rate,
        cpu_s_per_clip={**{s: rcpus[s] / clips for s in _CPU_STAGES}, "whole-table stages": whole_table / clips},
        build_bytes_per_clip=_dir_bytes(rb) / clips)
    proj = project(ratios, size.clips)

    # 3. the verdict
    llm_label = next((k for k in truth_res if k != "rules"), None)
    reasons = weak_model_reasons(truth_res[llm_label], thresholds) if llm_label else []
    bad = {k: unsupported_items(f) for k, f in truth_res.items() if unsupported_items(f)}

    text = [f"# preflight: {corpus}", "",
            f"## 1. the LLM against the demo truth ({n_truth_clips} clips; thresholds: category = truth >= "
            f"{thresholds.min_category_agreement:.0%}, true animal clips with the right item >= "
            f"{thresholds.min_animal_recall:.0%})", "", truth_table(truth_res), ""]
    for name, f in truth_res.items():
        text.append(f"{name} answers: " + (", ".join(f"{a} {n}" for a, n in f["answers"].items()) or "none"))
    text += ["", f"## 2. a sample of the corpus ({clips} clips from {sample})", ""]
    text.append(f"- rules: animal share {sample_fig['animal_share_rules']:.0%}, {pairs} comparison pairs "
                f"({pairs / clips:.2f} per clip), extract rejects {sample_fig['rules_extract_reject_rate']:.0%}")
    if llm_over is not None:
        a = sample_fig["agreement_with_rules"]
        t = sample_fig["llm_timing"] or {}
        text.append(f"- LLM: animal share {sample_fig['animal_share_llm']:.0%}, extract rejects "
                    f"{sample_fig['llm_extract_reject_rate']:.0%} ({', '.join(f'{k} {v}' for k, v in sample_fig['llm_extract_rejects'].items()) or 'none'}); "
                    f"latency p50 {t.get('latency_p50_s')} s, p95 {t.get('latency_p95_s')} s, {t.get('answers_per_s')} answers/s "
                    f"at concurrency {t.get('concurrency_settled')}")
        text.append(f"- LLM vs rules: same category for {a['category_same']} of {a['clips']} clips (rules categorise "
                    f"{a['rules_categorised']}, the LLM {a['llm_categorised']}); same source for {a['source_same']} of the "
                    f"{a['both_same_category']} both put in the same category; animal items {a['items_rules']} (rules) / "
                    f"{a['items_llm']} (LLM), same answer for {a['answer_same']} of the {a['items_both']} clips both gave one")
    text += ["", f"## 3. the whole corpus: {size.line()}", "", projection_table(proj), ""]
    verdict = "passes" if not reasons else ("is below the thresholds, accepted with --accept-weak-llm" if accept_weak else
                                            "is below the thresholds")
    if llm_label:
        text.append(f"verdict: {llm_label} {verdict}" + (": " + "; ".join(reasons) if reasons else ""))
    report = "\n".join(text) + "\n"
    figures = {"truth": truth_res, "sample": sample_fig, "corpus": asdict(size), "projection": proj,
               "thresholds": asdict(thresholds), "weak": reasons, "unsupported": bad}
    (out / "preflight.md").write_text(report)
    (out / "preflight.json").write_text(json.dumps(figures, indent=1, sort_keys=True, default=str) + "\n")
    print(report, end="", flush=True)
    if bad:
        raise WeakModelError(f"preflight: accepted answers that the clip's own text does not name or that come from a "
                             f"clip that is no animal: {bad}; see {out / 'preflight.md'}")
    if reasons and not accept_weak:
        raise WeakModelError(f"preflight: the model {llm_label} is too weak for a real run: {'; '.join(reasons)}; it would "
                             f"keep few items of the corpus (see {out / 'preflight.md'}); pass --accept-weak-llm to run it anyway")
    return figures
