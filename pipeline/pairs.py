"""Make comparison pairs inside each split, for every registered comparison task.

A pair is two sound sources of one category whose measured values differ by at least the task's gap. The label comes
from the measurement. Pairs are made inside a split, so a clip never reaches two splits; a dev/test pair whose
unordered source pair also occurs in train is dropped (counted), and each split holds one pair per source pair.
Candidates are drawn from a hash-ordered window (O(n·window), deterministic), then accepted greedily in hash order
under `max_pairs_per_clip`; orientation alternates along the pair hash so labels are balanced.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd

from benchmark.hashing import stable_hash
from benchmark.tasks import TaskSpec, param_value

__all__ = ["make_pairs", "side_table", "PAIR_COLUMNS"]

PAIR_COLUMNS = ["pair_id", "task", "split", "category", "basis", "clip_a", "clip_b", "clip_ids", "source_a", "source_b",
                "caption_a", "caption_b", "value_a", "value_b", "gap", "label"]
_SPLIT_ORDER = ("train", "dev", "test")


def _caption(row: pd.Series, max_chars: int = 300) -> str:
    parts = [row["title"], *list(row["captions"]), row["description"]]
    seen, out = set(), []
    for p in parts:
        p = str(p).strip()
        if p and p.lower() not in seen:
            seen.add(p.lower())
            out.append(p)
    return " | ".join(out)[:max_chars]


def side_table(task: TaskSpec, table: pd.DataFrame, params_all: dict) -> tuple[pd.DataFrame, Counter]:
    """The comparable 'sides' of one split for a task: one row per clip (clip level) or per source (source level),
    with columns side_id, category, source, basis, value, clip_ids, caption; and the clips left out, by reason.

    The measure stage's cross-check is used here: a pitched clip whose two estimators disagree (estimator_disagree,
    by more than measure.disagree_cents) has no trusted f0, so it gives no pitched-basis side (counted as
    f0_estimators_disagree); like an unpitched clip, it may still serve an unpitched basis (the centroid).
    """
    m = task.measurement
    assert m is not None
    rows = []
    left_out: Counter = Counter()
    pitched = table["pitched"].astype(bool)
    disagree = table["estimator_disagree"].fillna(False).astype(bool) if "estimator_disagree" in table else pd.Series(False, index=table.index)
    trusted_f0 = pitched & ~disagree
    for b in m.bases:
        if b.enabled_by and not param_value(params_all, b.enabled_by):
            continue
        t = table[table["category"].isin(task.categories) & (table["source_name"] != "")]
        if b.where == "pitched":
            left_out["f0_estimators_disagree"] += int((pitched & disagree).loc[t.index].sum())
            t = t[trusted_f0.loc[t.index]]
        elif b.where == "unpitched":
            t = t[~trusted_f0.loc[t.index]]
        t = t[np.isfinite(t[b.column].astype(float))]
        if m.level == "clip":
            for _, r in t.iterrows():
                rows.append({"side_id": r["clip_id"], "category": r["category"], "source": r["source_name"], "basis": b.basis,
                             "value": float(r[b.column]), "clip_ids": [r["clip_id"]], "caption": _caption(r)})
        else:
            min_clips = int(param_value(params_all, m.min_clips_param)) if m.min_clips_param else 2
            for (cat, src), g in t.groupby(["category", "source_name"], sort=True):
                if len(g) < min_clips:
                    continue
                g = g.sort_values("clip_id")
                rows.append({"side_id": f"{cat}/{src}", "category": cat, "source": src, "basis": b.basis,
                             "value": float(g[b.column].astype(float).mean()), "clip_ids": list(g["clip_id"]),
                             "caption": " || ".join(_caption(r, 120) for _, r in g.head(3).iterrows())})
    return pd.DataFrame(rows, columns=["side_id", "category", "source", "basis", "value", "clip_ids", "caption"]), left_out


def _gap(rule_kind: str, va: float, vb: float) -> float:
    if rule_kind == "ratio":
        lo, hi = sorted((va, vb))
        return hi / lo if lo > 0 else math.inf
    return abs(va - vb)


def make_pairs(task: TaskSpec, split: str, sides: pd.DataFrame, params_all: dict, blocked: set[frozenset],
               seed: int | str) -> tuple[list[dict], Counter]:
    """Pairs of one task in one split. `blocked` holds train's unordered source pairs (empty for train itself)."""
    pp = params_all["pairs"]
    min_gap = float(param_value(params_all, task.gap_rule.param))
    window = int(pp["candidate_window"])
    cap = int(pp["max_pairs_per_clip"])
    dropped: Counter = Counter()
    cands = []
    keys = ["category", "basis"] if task.pairing == "within_category" else ["basis"]
    for _, g in sides.groupby(keys, sort=True):
        recs = g.assign(_h=[stable_hash([seed, s]) for s in g["side_id"]]).sort_values("_h").to_dict("records")
        n = len(recs)
        for i in range(n):
            a = recs[i]
            for j in range(i + 1, min(n, i + 1 + window)):
                b = recs[j]
                if a["source"] == b["source"]:
                    continue
                gap = _gap(task.gap_rule.kind, a["value"], b["value"])
                if gap < min_gap:
                    dropped["gap_below_min"] += 1
                    continue
                key = frozenset((a["source"], b["source"]))
                if key in blocked:
                    dropped["source_pair_in_train"] += 1
                    continue
                cands.append((stable_hash([task.name, split, sorted([a["side_id"], b["side_id"]])]), a, b, gap, key))
    cands.sort(key=lambda c: c[0])
    used_pairs: set[frozenset] = set()
    per_side: Counter = Counter()
    accepted = []
    for h, a, b, gap, key in cands:
        if key in used_pairs:
            dropped["source_pair_repeat"] += 1
            continue
        if per_side[a["side_id"]] >= cap or per_side[b["side_id"]] >= cap:
            dropped["max_pairs_per_clip"] += 1
            continue
        used_pairs.add(key)
        per_side[a["side_id"]] += 1
        per_side[b["side_id"]] += 1
        accepted.append((h, a, b, gap))
    more, less = task.answer_choices  # type: ignore[misc]
    out = []
    for k, (h, a, b, gap) in enumerate(accepted):
        want = more if k % 2 == 0 else less
        natural = more if a["value"] > b["value"] else less
        if natural != want:
            a, b = b, a
        out.append({
            "pair_id": h, "task": task.name, "split": split, "category": a["category"], "basis": a["basis"],
            "clip_a": a["side_id"] if len(a["clip_ids"]) == 1 else "", "clip_b": b["side_id"] if len(b["clip_ids"]) == 1 else "",
            "clip_ids": sorted(set(a["clip_ids"]) | set(b["clip_ids"])), "source_a": a["source"], "source_b": b["source"],
            "caption_a": a["caption"], "caption_b": b["caption"], "value_a": a["value"], "value_b": b["value"],
            "gap": gap, "label": want,
        })
    return out, dropped
