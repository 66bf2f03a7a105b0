"""The results stage: AudioBERT against its controls (text twin, caption twin; excluded, oracle and shuffled audio) on
every task and split of the release (models.eval)."""

from __future__ import annotations

import os

__all__ = ["run"]


def run(ctx) -> dict:
    from models.eval import evaluate

    p = ctx.section("eval")
    run = ctx.open_stage("results", p)
    checkpoints = ctx.input_paths("results")  # each model's manifest, in its checkpoint folder
    if not run.fresh():
        evaluate(ctx.release_dir(), [str(checkpoints[k].parent) for k in ("text", "captions", "audiobert")], run.out_dir,
                 tasks=tuple(p["tasks"]),
                 splits=tuple(p["splits"]), device=p["device"], seed=int(p["seed"]),
                 max_items=int(p["max_items"]), ablation=tuple(p["ablation"]), quiet=ctx.quiet,
                 workers=ctx.options.get("workers") or os.cpu_count() or 1)
        run.record_output("results.json")
        run.record_output("results.md")
        run.record_output("predictions.jsonl")
        run.finish({"kept": 1})
    if not ctx.quiet:
        print(run.path("results.md").read_text(encoding="utf-8"))
    return run.previous() or {}
