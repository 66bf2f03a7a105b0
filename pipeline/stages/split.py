"""The split stage: clips -> train/dev/test by hashing audio-content groups (pipeline.split)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.fingerprint import near_duplicate_pairs, read_fingerprints
from pipeline.contract import open_stage
from pipeline.split import SPLIT_ORDER, clip_facts, clip_names, held_out_names, split_clips

__all__ = ["split_stage", "run"]


def run(ctx) -> dict:
    return split_stage(ctx.build_dir, ctx.section("split"), quiet=ctx.quiet, key=ctx.key("split"), tasks=ctx.section("tasks"))


def split_stage(build_dir: Path, params: dict, quiet: bool = False, key: dict | None = None, tasks: dict | None = None) -> dict:
    """tasks: the `tasks` section (which recognition tasks' facts group clips)."""
    run = open_stage(build_dir, "split", params, key=key, quiet=quiet)
    inputs = run.inputs
    if run.fresh():
        return run.previous()  # type: ignore[return-value]
    clips = pd.read_parquet(inputs["clips"])
    quarantined = set(pd.read_parquet(inputs["measure_rejects"])["key"])
    frac = float(params.get("holdout_frac", 0.0))
    names = clip_names(pd.read_parquet(inputs["categories"]), pd.read_parquet(inputs["animal_items"])) if frac > 0 else None
    tables = {"clips": clips, "categories": pd.read_parquet(inputs["categories"]),
              "animal_items": pd.read_parquet(inputs["animal_items"])}
    facts = clip_facts(tables, {"tasks": tasks or {}})
    near = near_duplicate_pairs(read_fingerprints(inputs["fingerprints"]))
    df = split_clips(clips, quarantined, params["seed"], params["fractions"], names, frac, facts, near)
    run.write_table("clip_splits.parquet", df)
    counts = {
        "kept": len(df),
        "rejected": {"quarantined_by_measure": int(clips["clip_id"].isin(quarantined).sum())},
        "clips_per_split": {s: int((df["split"] == s).sum()) for s in SPLIT_ORDER},
        "groups_per_split": {s: int(df.loc[df["split"] == s, "group_id"].nunique()) for s in SPLIT_ORDER},
        "groups_with_several_clips": int((df["group_id"].value_counts() > 1).sum()),
        "recognition_facts": int(facts["fact"].nunique()),
        "near_duplicate_pairs": len(near),
    }
    if names is not None:
        counts["held_out_names"] = sorted(held_out_names(names["name"], params["seed"], frac, names["answer"]))
    return run.finish(counts)
