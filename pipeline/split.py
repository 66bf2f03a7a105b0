"""Split clips into train/dev/test by hashing groups, never rows.

A group is one audio content hash: the same upload under two ids is one group, and a group (with every item that
uses it) lives in one split only. The assignment depends on the group id and the seed alone, so adding shards never
moves an existing clip to another split.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.errors import ConfigError
from benchmark.hashing import unit_interval
from pipeline.stage import StageRun

__all__ = ["assign_split", "split_clips", "split_stage"]

_ORDER = ("train", "dev", "test")


def assign_split(group_id: str, seed: int | str, fractions: dict[str, float]) -> str:
    """The split of one group: a deterministic point in [0, 1) against the cumulative fractions."""
    total = sum(fractions.get(s, 0.0) for s in _ORDER)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"split.fractions must sum to 1 over {_ORDER} (got {total})")
    u = unit_interval(group_id, seed)
    acc = 0.0
    for s in _ORDER:
        acc += fractions.get(s, 0.0)
        if u < acc:
            return s
    return _ORDER[-1]


def split_clips(clips: pd.DataFrame, quarantined: set[str], seed: int | str, fractions: dict[str, float]) -> pd.DataFrame:
    """clip_id, group_id, split for every clip not quarantined by the measure stage."""
    df = clips.loc[~clips["clip_id"].isin(quarantined), ["clip_id", "audio_sha256"]].copy()
    df["group_id"] = df["audio_sha256"]
    df["split"] = [assign_split(g, seed, fractions) for g in df["group_id"]]
    return df[["clip_id", "group_id", "split"]].sort_values("clip_id").reset_index(drop=True)


def split_stage(build_dir: Path, params: dict, quiet: bool = False, key: dict | None = None) -> dict:
    build_dir = Path(build_dir)
    inputs = {"clips": build_dir / "read" / "clips.parquet", "measure_rejects": build_dir / "measure" / "rejects.parquet"}
    run = StageRun("split", build_dir / "split", params, inputs=inputs, key=key, quiet=quiet)
    if run.fresh():
        return run.previous()  # type: ignore[return-value]
    clips = pd.read_parquet(inputs["clips"])
    quarantined = set(pd.read_parquet(inputs["measure_rejects"])["key"])
    df = split_clips(clips, quarantined, params["seed"], params["fractions"])
    run.write_table("clip_splits.parquet", df)
    counts = {
        "kept": len(df),
        "rejected": {"quarantined_by_measure": int(clips["clip_id"].isin(quarantined).sum())},
        "clips_per_split": {s: int((df["split"] == s).sum()) for s in _ORDER},
        "groups_per_split": {s: int(df.loc[df["split"] == s, "group_id"].nunique()) for s in _ORDER},
        "groups_with_several_clips": int((df["group_id"].value_counts() > 1).sum()),
    }
    return run.finish(counts)
