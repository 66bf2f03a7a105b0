"""The write stage: pairs -> comparison sentences and the writer's own guess, rules or LLM backend (pipeline.extract),
every proposal through the same validation gate (pipeline.extract.validate)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.schema import COLUMNS
from benchmark.tasks import writer_specs
from pipeline.contract import open_stage
from pipeline.extract.backend import (
    SENTENCE_COLUMNS,
    WRITE_PROMPTS,
    check_budget,
    llm_extra,
    llm_run_stats,
    make_backend,
    prompt_id,
    reject_counts,
    reject_row,
    run_params,
)
from pipeline.extract.pending import stop_if_pending
from pipeline.extract.records import Failure, make_pair_text
from pipeline.extract.validate import validate_sentence

__all__ = ["write_stage", "run"]


def run(ctx) -> dict:
    return write_stage(ctx.build_dir, ctx.section("write"), writer_specs(ctx.all_params()), quiet=ctx.quiet,
                       offline=bool(ctx.options.get("offline")), key=ctx.key("write"),
                       engine=ctx.options.get("engine") or "local", workers=ctx.options.get("workers"))


def write_stage(build_dir: Path, params: dict, task_specs: dict, quiet: bool = False, offline: bool = False,
                key: dict | None = None, engine: str = "local", workers: int | None = None) -> dict:
    """The pairs stage's pair table -> sentences and rejects tables + manifest.json (paths: pipeline.contract).
    The writer sees source names and captions only; the measured label is joined in after validation."""
    build_dir = Path(build_dir)
    task_prompts = {name: spec["prompt_file"] for name, spec in task_specs.items() if spec.get("prompt_file")}
    backend = make_backend(params, build_dir, WRITE_PROMPTS, "write", offline=offline, quiet=quiet,
                           task_prompt_files=task_prompts, engine=engine, workers=workers)
    try:
        return _write(build_dir, params, task_specs, backend, quiet, key)
    finally:
        backend.close()


def _write(build_dir: Path, params: dict, task_specs: dict, backend, quiet: bool, key: dict | None) -> dict:
    stage_params = run_params(params, backend, "write")
    # a prompt file counts by its name and text (in prompt_versions), never by where this checkout keeps it
    stage_params["task_specs"] = {name: {k: v for k, v in spec.items() if k != "prompt_file"} for name, spec in task_specs.items()}
    run = open_stage(build_dir, "write", stage_params, key=key, quiet=quiet)
    prev = run.previous()
    if prev and run.fresh():
        return prev
    max_chars = int(params.get("max_caption_chars", 600))
    df = pd.read_parquet(run.inputs["pairs"]).sort_values("pair_id", kind="stable")
    rejects: list[dict] = []
    pairs, labels = [], {}
    for r in df.itertuples(index=False):
        if r.task not in task_specs:
            rejects.append(reject_row("write", r.pair_id, Failure("unknown_task", f"{r.task!r}"), "write"))
            continue
        if r.pair_id in labels:
            rejects.append(reject_row("write", r.pair_id, Failure("duplicate_pair_id"), "write"))
            continue
        labels[r.pair_id] = str(r.label)
        pairs.append(make_pair_text(r.pair_id, r.task, r.source_a, r.source_b, r.caption_a, r.caption_b, task_specs[r.task], max_chars))
    props = backend.propose_sentences(pairs)
    rows = []
    for p in pairs:
        prop = props.get(p.pair_id, Failure("missing_in_reply"))
        res = prop if isinstance(prop, Failure) else validate_sentence(p, prop)
        if isinstance(res, Failure):
            rejects.append(reject_row("write", p.pair_id, res, "sentence"))
        else:
            version = backend.sentence_prompt(p.task).id if backend.name == "openai" else prompt_id(backend, "rules")
            rows.append({**res, "answer": labels[p.pair_id], "backend": backend.name, "model": backend.model,
                         "prompt_version": version})
    stop_if_pending("write", rejects, len(pairs), "pairs", backend)
    reject_df = pd.DataFrame(rejects, columns=COLUMNS["rejects"])
    run.write_table("rejects.parquet", reject_df)
    check_budget("write", len(df), rejects, float(params.get("max_reject_frac", 0.5)), run.path("rejects.parquet"))
    sentences = pd.DataFrame(rows, columns=SENTENCE_COLUMNS)
    run.write_table("sentences.parquet", sentences)
    counts = reject_counts(len(sentences), rejects)
    guessed = sentences[sentences["llm_guess"] != ""]
    extra = llm_extra(backend)
    extra["guess_rate"] = round(len(guessed) / len(sentences), 4) if len(sentences) else 0.0
    extra["guess_agreement"] = round(float((guessed["llm_guess"] == guessed["answer"]).mean()), 4) if len(guessed) else None
    return run.finish(counts, extra, llm_run_stats(backend))
