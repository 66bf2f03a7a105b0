"""The pairs stage: comparison pairs inside each split for every comparison task (pipeline.pairs)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from benchmark.tasks import comparison_tasks
from pipeline.contract import open_stage
from pipeline.pairs import PAIR_COLUMNS, make_pairs, side_table
from pipeline.split import SPLIT_ORDER

__all__ = ["pairs_stage", "run"]


def run(ctx) -> dict:
    return pairs_stage(ctx.build_dir, ctx.all_params(), quiet=ctx.quiet, key=ctx.key("pairs"))


def pairs_stage(build_dir: Path, params_all: dict, quiet: bool = False, key: dict | None = None) -> dict:
    """The pair table for every comparison task, from measurements, categories and clip splits (build_dir:
    build/<corpus id>; paths: pipeline.contract)."""
    tasks = comparison_tasks(params_all)
    stage_params = {"pairs": params_all["pairs"], "tasks": {t.name: t.model_dump(exclude={"path"}) for t in tasks},
                    "seed": params_all["split"]["seed"]}
    run = open_stage(build_dir, "pairs", stage_params, key=key, quiet=quiet)
    inputs = run.inputs
    if run.fresh():
        return run.previous()  # type: ignore[return-value]
    clips = pd.read_parquet(inputs["clips"])
    table = (clips.merge(pd.read_parquet(inputs["categories"])[["clip_id", "category", "source_name"]], on="clip_id")
             .merge(pd.read_parquet(inputs["measurements"]), on=["clip_id"], suffixes=("", "_m"))
             .merge(pd.read_parquet(inputs["clip_splits"]), on="clip_id"))
    rows: list[dict] = []
    counts: dict = {"per_task": {}}
    dropped_all: Counter = Counter()
    for task in tasks:
        blocked: set[frozenset] = set()
        per_split = {}
        for split in SPLIT_ORDER:
            sides, left_out = side_table(task, table[table["split"] == split], params_all)
            pairs, dropped = make_pairs(task, split, sides, params_all, blocked if split != "train" else set(), stage_params["seed"])
            dropped.update(left_out)
            if split == "train":
                blocked = {frozenset((p["source_a"], p["source_b"])) for p in pairs}
            rows.extend(pairs)
            dropped_all.update({f"{task.name}:{k}": v for k, v in dropped.items()})
            per_split[split] = {"pairs": len(pairs), "labels": dict(Counter(p["label"] for p in pairs)),
                                "bases": dict(Counter(p["basis"] for p in pairs)), "dropped": dict(dropped)}
        counts["per_task"][task.name] = per_split
    df = pd.DataFrame(rows, columns=PAIR_COLUMNS).sort_values(["task", "split", "pair_id"]).reset_index(drop=True)
    run.write_table("pairs.parquet", df)
    counts["kept"] = len(df)
    counts["rejected"] = dict(sorted(dropped_all.items()))
    return run.finish(counts)
