"""Do the intervals of `benchmark.metrics` cover the truth? Simulated paired results with known truth.

    design = Design()                                   # a demo-like comparison task: items are pairs of sources
    coverage(design, n_datasets=300)  -> {"multiway": 0.95.., "group": 0.7.., ...}

A dataset is drawn the way the demo's comparison items are: `n_sources` sources, each item a distinct unordered pair
of them, each side a clip of its source (a fresh clip, or one of `clips_per_source` shared ones). Whether model A
and model B answer an item right is Bernoulli with a logit that adds each source's random effect (shared by both
models: a hard source is hard for both), each source's effect on A alone (A's advantage varies by source) and each
clip's effect. The truth is the difference of the two models' expected accuracy over the population of sources and
clips — what a new draw of sources would show — computed exactly (Gauss–Hermite quadrature: every logit is normal).

"multiway" is `paired_test` over `item_units` (sources and clips); "group" is the bootstrap used before issue #23:
whole clusters of items sharing a group, a clip or a source pair (connected components), kept here only to measure
it. `python bench/coverage.py` prints both by number of sources.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from benchmark.metrics import connected_components, item_units, paired_test

__all__ = ["Design", "true_difference", "simulate", "group_clusters", "coverage"]


@dataclass(frozen=True)
class Design:
    n_sources: int = 30
    n_items: int = 150  # at most n_sources·(n_sources − 1)/2 (distinct pairs)
    clips_per_source: int = 0  # 0: every item side has a clip of its own; k: each side draws one of its source's k clips
    sd_source: float = 1.0  # logit scale: a source's effect on both models
    sd_gain: float = 0.7  # a source's effect on model A only
    sd_clip: float = 0.3  # a clip's effect on both models
    logit_a: float = 0.8
    logit_b: float = 0.0


def _expected_sigmoid(mean: float, sd: float) -> float:
    """E[sigmoid(X)] for X ~ N(mean, sd²), by 80-point Gauss–Hermite quadrature (exact to ~1e-12 here)."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    return float((w / (1 + np.exp(-(mean + sd * x)))).sum() / math.sqrt(2 * math.pi))


def true_difference(d: Design) -> float:
    """E[A right] − E[B right] over new sources and clips (each item has two sources and two clips)."""
    var_b = 2 * (d.sd_source ** 2 + d.sd_clip ** 2)
    return _expected_sigmoid(d.logit_a, math.sqrt(var_b + 2 * d.sd_gain ** 2)) - _expected_sigmoid(d.logit_b, math.sqrt(var_b))


def simulate(d: Design, rng: np.random.Generator) -> tuple[list[str], list[str], list[str], list[dict]]:
    """One dataset: gold, A's and B's predictions, and the items (span1, span2, clip_ids, group_id)."""
    pairs = list(itertools.combinations(range(d.n_sources), 2))
    if d.n_items > len(pairs):
        raise ValueError(f"Design: {d.n_items} items need more than the {len(pairs)} pairs of {d.n_sources} sources")
    chosen = [pairs[i] for i in rng.choice(len(pairs), d.n_items, replace=False)]
    u = rng.normal(0, d.sd_source, d.n_sources)
    v = rng.normal(0, d.sd_gain, d.n_sources)
    k = d.clips_per_source
    shared_clip = rng.normal(0, d.sd_clip, (d.n_sources, max(k, 1)))
    gold, pa, pb, items = [], [], [], []
    for i, (s1, s2) in enumerate(chosen):
        if k:
            c1, c2 = rng.integers(0, k, 2)
            clips, w = [f"s{s1}/c{c1}", f"s{s2}/c{c2}"], shared_clip[s1, c1] + shared_clip[s2, c2]
        else:
            clips, w = [f"i{i}/a", f"i{i}/b"], rng.normal(0, d.sd_clip, 2).sum()
        base = u[s1] + u[s2] + w
        right_a = rng.random() < 1 / (1 + math.exp(-(d.logit_a + base + v[s1] + v[s2])))
        right_b = rng.random() < 1 / (1 + math.exp(-(d.logit_b + base)))
        gold.append("x")
        pa.append("x" if right_a else "y")
        pb.append("x" if right_b else "y")
        items.append({"span1": f"source {s1}", "span2": f"source {s2}", "clip_ids": clips, "group_id": f"g{i}"})
    return gold, pa, pb, items


def group_clusters(items: list[dict]) -> list[list[tuple]]:
    """The grouping used before issue #23, as units: one unit per item, its connected component of items sharing a
    group id, a clip or a source pair."""
    keys = [[("group", it["group_id"])] + [("clip", c) for c in it["clip_ids"]]
            + [("pair", "|".join(sorted([it["span1"].lower(), it["span2"].lower()])))] for it in items]
    return [[("cluster", c)] for c in connected_components(keys)]


def _method_units(method: str, items: list) -> list | None:
    """The resampling units of one interval method for a simulated dataset's items (None: each item alone)."""
    if method == "multiway":
        return [item_units(it, "comparison") for it in items]
    if method == "group":
        return group_clusters(items)
    return None


def coverage(d: Design, n_datasets: int = 300, n_boot: int = 500, seed: int = 0, level: float = 0.95,
             methods: tuple[str, ...] = ("multiway", "group", "items")) -> dict:
    """Share of simulated datasets whose interval for A − B covers the truth: multiway (sources + clips), group
    (the pre-#23 clusters) and items (each item alone); min_units=1 so that every dataset gets an interval.
    Also the mean interval width of each and the truth."""
    truth = true_difference(d)
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(methods, 0)
    width = dict.fromkeys(hits, 0.0)
    for i in range(n_datasets):
        gold, a, b, items = simulate(d, rng)
        for name in methods:
            us = _method_units(name, items)
            r = paired_test(gold, a, b, "accuracy", us, n_boot=n_boot, seed=i, level=level, min_units=1)
            hits[name] += r["ci_low"] <= truth <= r["ci_high"]
            width[name] += (r["ci_high"] - r["ci_low"]) / n_datasets
    return {"truth": truth, "n_datasets": n_datasets, **{k: v / n_datasets for k, v in hits.items()},
            "width": width}
