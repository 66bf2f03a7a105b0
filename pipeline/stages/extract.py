"""The extract stage: clips -> categories and animal items, rules or LLM backend (pipeline.extract), every proposal
through the same validation gate (pipeline.extract.validate)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from benchmark.schema import COLUMNS
from pipeline.contract import open_stage
from pipeline.extract.backend import (
    ANIMAL_COLUMNS,
    CATEGORY_COLUMNS,
    EXTRACT_PROMPTS,
    check_budget,
    llm_extra,
    llm_run_stats,
    make_backend,
    prompt_id,
    reject_counts,
    reject_row,
    run_params,
)
from pipeline.extract.lexicon import load_lexicon
from pipeline.extract.pending import is_pending, stop_if_pending
from pipeline.extract.records import Failure, make_clip_text
from pipeline.extract.validate import validate_animal_item, validate_category

__all__ = ["extract_stage", "run"]


def run(ctx) -> dict:
    return extract_stage(ctx.build_dir, ctx.section("extract"), quiet=ctx.quiet, offline=bool(ctx.options.get("offline")),
                         key=ctx.key("extract"), engine=ctx.options.get("engine") or "local",
                         workers=ctx.options.get("workers"))


def extract_stage(build_dir: Path, params: dict, quiet: bool = False, offline: bool = False, key: dict | None = None,
                  engine: str = "local", workers: int | None = None) -> dict:
    """The read stage's clip table -> categories, animal_items and rejects tables + manifest.json (paths: pipeline.contract)."""
    build_dir = Path(build_dir)
    backend = make_backend(params, build_dir, EXTRACT_PROMPTS, "extract", offline=offline, quiet=quiet, engine=engine,
                           workers=workers)
    try:
        return _extract(build_dir, params, backend, quiet, key)
    finally:
        backend.close()


def _extract(build_dir: Path, params: dict, backend, quiet: bool, key: dict | None) -> dict:
    run = open_stage(build_dir, "extract", run_params(params, backend, "extract"), key=key, quiet=quiet)
    prev = run.previous()
    if prev and run.fresh():
        return prev
    max_chars = int(params.get("max_caption_chars", 600))
    df = pd.read_parquet(run.inputs["clips"])
    rejects: list[dict] = []
    clips, seen = [], set()
    for r in df.sort_values("clip_id", kind="stable").itertuples(index=False):
        if r.clip_id in seen:
            rejects.append(reject_row("extract", r.clip_id, Failure("duplicate_clip_id"), "read"))
            continue
        seen.add(r.clip_id)
        clips.append(make_clip_text(r.clip_id, r.title, r.tags, r.description, r.captions, max_chars))
    lex = load_lexicon()

    # 1. categories: batches, then every clip that failed inside a batch is asked again alone, so one clip's bad
    #    (or hostile) text cannot cost another clip its category.
    batch_size = max(1, int(params.get("batch_size", 8))) if backend.batched else max(1, len(clips))
    batches = [clips[i : i + batch_size] for i in range(0, len(clips), batch_size)]
    results = {}
    props = backend.propose_categories(batches)
    for c in clips:
        p = props.get(c.clip_id, Failure("missing_in_reply"))
        results[c.clip_id] = p if isinstance(p, Failure) else validate_category(c, p, lex)
    if backend.batched and batch_size > 1:
        # (not those the endpoint failed: asked alone, their answers would depend on when it failed)
        again = [c for c in clips if isinstance(results[c.clip_id], Failure) and not is_pending(results[c.clip_id])]
        if again:
            props = backend.propose_categories([[c] for c in again])
            for c in again:
                p = props.get(c.clip_id, Failure("missing_in_reply"))
                results[c.clip_id] = p if isinstance(p, Failure) else validate_category(c, p, lex)
    cat_rows = []
    for c in clips:
        res = results[c.clip_id]
        if isinstance(res, Failure):
            rejects.append(reject_row("extract", c.clip_id, res, "categorise"))
            res = {"clip_id": c.clip_id, "category": "other", "source_name": "", "category_path": "other", "confidence": 0.0}
        cat_rows.append({**res, "backend": backend.name})

    # 2. animal items, for the clips categorised as animals
    by_id = {c.clip_id: c for c in clips}
    animal = [(by_id[r["clip_id"]], r["source_name"]) for r in cat_rows if r["category"] == "animal"]
    props = backend.propose_animal_items(animal)
    item_rows = []
    item_version = prompt_id(backend, "animal_item")
    for c, source in animal:
        p = props.get(c.clip_id, Failure("missing_in_reply"))
        res = p if isinstance(p, Failure) else validate_animal_item(c, p, lex, source)
        if isinstance(res, Failure):
            rejects.append(reject_row("extract", c.clip_id, res, "animal_item"))
        else:
            item_rows.append({**res, "backend": backend.name, "model": backend.model, "prompt_version": item_version})

    categories = pd.DataFrame(cat_rows, columns=CATEGORY_COLUMNS)
    items = pd.DataFrame(item_rows, columns=ANIMAL_COLUMNS)
    stop_if_pending("extract", rejects, len(clips), "clips", backend)
    reject_df = pd.DataFrame(rejects, columns=COLUMNS["rejects"])
    run.write_table("rejects.parquet", reject_df)
    check_budget("extract", len(clips) + len(animal), rejects, float(params.get("max_reject_frac", 0.5)),
                  run.path("rejects.parquet"))
    run.write_table("categories.parquet", categories)
    run.write_table("animal_items.parquet", items)
    counts = reject_counts(len(items), rejects)
    counts["categories"] = dict(sorted(Counter(categories["category"]).items()))
    extra = llm_extra(backend)
    # the rules answer from the lexicon's animals; an LLM's vocabulary is open (any animal a clip's own text names)
    extra["answer_vocabulary"] = lex.animals if backend.name == "rules" else "open"
    extra["answers_used"] = dict(sorted(Counter(items["answer"]).items()))
    extra["clips_with_instruction_text"] = sum(c.injected for c in clips)
    return run.finish(counts, extra, llm_run_stats(backend))
