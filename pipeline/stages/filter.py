"""The filter stage: items kept or rejected (agreement, repeats, balance, rare answers, review) (pipeline.filter)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.schema import COLUMNS
from benchmark.tasks import param_value, recognition_tasks
from pipeline.contract import open_stage
from pipeline.filter import (
    apply_review_decisions,
    balance_labels,
    comparison_items,
    drop_rare_answers,
    drop_repeated_sentences,
    drop_repeated_source_pairs,
    external_inputs,
    recognition_items,
    source_candidates,
)

__all__ = ["filter_stage", "run"]

_SOURCE_TABLES = ("clips", "categories", "animal_items")  # the tables a recognition task's item source reads (inputs' roles)


def run(ctx) -> dict:
    return filter_stage(ctx.build_dir, ctx.all_params(), quiet=ctx.quiet, key=ctx.key("filter"))


def filter_stage(build_dir: Path, params_all: dict, quiet: bool = False, key: dict | None = None) -> dict:
    build_dir = Path(build_dir)
    params = params_all.get("filter") or {}
    recognition = recognition_tasks(params_all)
    run = open_stage(build_dir, "filter", {**params, "tasks": params_all.get("tasks") or {}},
                     external=external_inputs(build_dir, params_all), key=key, quiet=quiet)
    inputs = run.inputs
    if run.fresh():
        return run.previous()  # type: ignore[return-value]
    tables = {name: pd.read_parquet(inputs[name]) for name in _SOURCE_TABLES}
    clips = tables["clips"]
    splits = pd.read_parquet(inputs["clip_splits"])
    licenses = dict(zip(clips["clip_id"], clips["license"]))
    rejects: list[dict] = []
    recognised = []
    for spec in recognition:
        recognised += recognition_items(spec.name, source_candidates(spec, tables), splits, licenses,
                                        float(params["review_confidence"]), rejects)
    comp, agreement = comparison_items(pd.read_parquet(inputs["pairs"]), pd.read_parquet(inputs["sentences"]), splits, licenses,
                                       bool(params["require_agreement"]), float(params["review_gap"]), rejects)
    items = drop_repeated_sentences(recognised + comp, rejects)
    items = drop_repeated_source_pairs(items, rejects)
    for spec in recognition:
        if spec.min_per_answer_param:
            items = drop_rare_answers(items, spec.name, int(param_value(params_all, spec.min_per_answer_param)), rejects)
    candidates = pd.DataFrame(items, columns=COLUMNS["items"]).sort_values(["task", "split", "id"]).reset_index(drop=True)
    review = {}
    if "review_decisions" in inputs:
        items, review = apply_review_decisions(items, inputs["review_decisions"], rejects)
    items, balance_notes = balance_labels(items, rejects)
    df = pd.DataFrame(items, columns=COLUMNS["items"]).sort_values(["task", "split", "id"]).reset_index(drop=True)
    rj = pd.DataFrame(rejects, columns=COLUMNS["rejects"]).sort_values(["reason", "key"]).reset_index(drop=True)
    run.write_table("candidates.parquet", candidates)
    run.write_table("items.parquet", df)
    run.write_table("rejects.parquet", rj)
    per_task = {t: {s: int(((df["task"] == t) & (df["split"] == s)).sum()) for s in ("train", "dev", "test")} for t in sorted(df["task"].unique())}
    counts = {"kept": len(df), "rejected": {k: int(v) for k, v in sorted(rj["reason"].value_counts().items())},
              "per_task": per_task, "agreement": agreement, "review_flagged": int(df["review_flag"].sum())}
    if review:
        counts["review"] = review
    return run.finish(counts, extra={"balance_notes": balance_notes} if balance_notes else None)
