"""Split clips into train/dev/test by hashing groups, never rows.

A group is one audio content hash: the same upload under two ids is one group, and a group (with every item that
uses it) lives in one split only. The assignment depends on the group id and the seed alone, so adding shards never
moves an existing clip to another split.

Held-out names (`split.holdout_frac` > 0): a fraction of the names items are built on — a clip's source name, or for
an animal item its onomatopoeia — chosen by hashing the name, never occurs in train: every group with a clip of a
held-out name goes to dev or test (by its group hash, in the ratio of their fractions). Test then asks about sources
and sound words no training item mentions: what a model can only answer from the audio, not from a name it memorised.
"""

from __future__ import annotations

import pandas as pd

from benchmark.errors import ConfigError
from benchmark.hashing import unit_interval

__all__ = ["assign_split", "held_out_names", "split_clips", "clip_names", "SPLIT_ORDER"]

SPLIT_ORDER = ("train", "dev", "test")


def assign_split(group_id: str, seed: int | str, fractions: dict[str, float]) -> str:
    """The split of one group: a deterministic point in [0, 1) against the cumulative fractions."""
    total = sum(fractions.get(s, 0.0) for s in SPLIT_ORDER)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"split.fractions must sum to 1 over {SPLIT_ORDER} (got {total})")
    u = unit_interval(group_id, seed)
    acc = 0.0
    for s in SPLIT_ORDER:
        acc += fractions.get(s, 0.0)
        if u < acc:
            return s
    return SPLIT_ORDER[-1]


def held_out_names(names, seed: int | str, frac: float) -> set[str]:
    """The names (lower-cased) held out of train: those whose hash with the seed falls below frac."""
    if not 0.0 <= frac < 1.0:
        raise ConfigError(f"split.holdout_frac = {frac}: expected 0 <= holdout_frac < 1")
    return {n for n in {str(x).strip().lower() for x in names} if n and unit_interval(n, f"{seed}/holdout") < frac}


def split_clips(clips: pd.DataFrame, quarantined: set[str], seed: int | str, fractions: dict[str, float],
                names: pd.DataFrame | None = None, holdout_frac: float = 0.0) -> pd.DataFrame:
    """clip_id, group_id, split for every clip not quarantined by the measure stage.

    names: clip_id, name rows (a clip may have several); with holdout_frac > 0, a group with a clip of a held-out
    name goes to dev or test (never train)."""
    df = clips.loc[~clips["clip_id"].isin(quarantined), ["clip_id", "audio_sha256"]].copy()
    df["group_id"] = df["audio_sha256"]
    df["split"] = [assign_split(g, seed, fractions) for g in df["group_id"]]
    if holdout_frac > 0 and names is not None and len(names):
        held = held_out_names(names["name"], seed, holdout_frac)
        held_clips = set(names.loc[names["name"].astype(str).str.strip().str.lower().isin(held), "clip_id"])
        held_groups = set(df.loc[df["clip_id"].isin(held_clips), "group_id"])
        rest = {s: fractions.get(s, 0.0) for s in ("dev", "test")}
        total = sum(rest.values())
        if total <= 0:
            raise ConfigError("split.holdout_frac > 0 needs dev or test fractions above 0")
        rest = {s: v / total for s, v in rest.items()}
        rest["train"] = 0.0
        on = df["group_id"].isin(held_groups)
        df.loc[on, "split"] = [assign_split(g, seed, rest) for g in df.loc[on, "group_id"]]
    return df[["clip_id", "group_id", "split"]].sort_values("clip_id").reset_index(drop=True)


def clip_names(categories: pd.DataFrame, animal_items: pd.DataFrame) -> pd.DataFrame:
    """clip_id, name: each clip's source name, and for an animal item its onomatopoeia (the animal itself is the
    answer, so it is never held out)."""
    src = categories.loc[(categories["source_name"] != "") & (categories["category"] != "animal"), ["clip_id", "source_name"]]
    ono = animal_items[["clip_id", "description"]]
    return pd.concat([src.rename(columns={"source_name": "name"}), ono.rename(columns={"description": "name"})],
                     ignore_index=True)
