"""Metrics by registry: each takes gold and predicted answer strings and returns a float.

`get_metric("accuracy")`; an unknown name raises UnknownNameError with the closest names.

Uncertainty: `bootstrap_ci` (a metric's 95 % interval, resampling clusters of items that share a clip or source
pair, `item_clusters`), `paired_test` (model A − model B on the same items: difference, paired-bootstrap interval
and p-value, exact McNemar p for accuracy), `mcnemar_exact`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence

import numpy as np

from benchmark.errors import UnknownNameError

__all__ = [
    "METRICS", "register_metric", "get_metric", "compute_metrics", "accuracy", "macro_f1",
    "connected_components", "item_clusters", "bootstrap_ci", "paired_test", "mcnemar_exact", "CI_LEVEL", "N_BOOT",
]

Metric = Callable[[Sequence[str], Sequence[str]], float]
METRICS: dict[str, Metric] = {}


def register_metric(name: str) -> Callable[[Metric], Metric]:
    def deco(fn: Metric) -> Metric:
        METRICS[name] = fn
        return fn

    return deco


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        close = difflib.get_close_matches(name, list(METRICS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(METRICS))}"
        raise UnknownNameError(f"unknown metric {name!r}{hint}")
    return METRICS[name]


@register_metric("accuracy")
def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Fraction of exact matches (NaN for no items)."""
    if len(gold) != len(pred):
        raise ValueError(f"accuracy: {len(gold)} gold vs {len(pred)} predicted")
    if not gold:
        return float("nan")
    return sum(g == p for g, p in zip(gold, pred)) / len(gold)


@register_metric("macro_f1")
def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    """F1 averaged over the classes present in gold or predicted (NaN for no items)."""
    if len(gold) != len(pred):
        raise ValueError(f"macro_f1: {len(gold)} gold vs {len(pred)} predicted")
    if not gold:
        return float("nan")
    f1s = []
    for c in sorted(set(gold) | set(pred)):
        tp = sum(g == c and p == c for g, p in zip(gold, pred))
        fp = sum(g != c and p == c for g, p in zip(gold, pred))
        fn = sum(g == c and p != c for g, p in zip(gold, pred))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s)


def compute_metrics(gold: Sequence[str], pred: Sequence[str], names: Sequence[str] = ("accuracy", "macro_f1")) -> dict[str, float]:
    return {n: get_metric(n)(gold, pred) for n in names}


# ---------------------------------------------------------------- uncertainty
#
# Items of a benchmark are not independent: comparison items built from one clip or one source pair, animal items
# about one clip, share their fate. Every interval here is a *cluster* bootstrap: it resamples whole clusters
# (connected components of items that share a group id, a clip or a source pair), with a seeded generator.

CI_LEVEL = 0.95
N_BOOT = 2000


def connected_components(keys: Sequence[Sequence]) -> list[int]:
    """Component number per element: elements sharing any key are in one component (numbers follow first appearance)."""
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict = {}
    for i, ks in enumerate(keys):
        for k in ks:
            a, b = find(i), find(owner.setdefault(k, i))
            if a != b:
                parent[max(a, b)] = min(a, b)
    number: dict[int, int] = {}
    return [number.setdefault(find(i), len(number)) for i in range(len(keys))]


def item_clusters(items: Sequence[dict]) -> list[int]:
    """Cluster number per item: items that share a group_id, any clip id or a source pair (span1/span2, any
    order, case-folded) are in one cluster (connected components). Numbers follow first appearance."""
    keys = []
    for it in items:
        ks = [("group", str(it["group_id"]))] if it.get("group_id") else []
        ks += [("clip", str(c)) for c in (it.get("clip_ids") or [])]
        s1, s2 = str(it.get("span1") or "").strip().lower(), str(it.get("span2") or "").strip().lower()
        if s1 and s2:
            ks.append(("pair", "|".join(sorted([s1, s2]))))
        keys.append(ks)
    return connected_components(keys)


def _cluster_draws(clusters: Sequence[int] | None, n: int, n_boot: int, seed: int):
    """n_boot index arrays (a generator), each the items of len(clusters) clusters drawn with replacement (all
    their items, in cluster order)."""
    cl = np.arange(n) if clusters is None else np.asarray(clusters)
    if len(cl) != n:
        raise ValueError(f"bootstrap: {len(cl)} cluster labels for {n} items")
    _, inverse = np.unique(cl, return_inverse=True)
    order = np.argsort(inverse, kind="stable")  # items grouped by cluster
    sizes = np.bincount(inverse)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        k = rng.integers(0, len(sizes), len(sizes))
        lengths = sizes[k]
        offsets = np.repeat(starts[k] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        yield order[offsets + np.arange(lengths.sum())]


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    a = (1.0 - level) / 2
    return float(np.quantile(values, a)), float(np.quantile(values, 1 - a))


def _fast(metric: str):
    """A vectorised form of the built-in metrics over int codes (same values as the string versions), else None."""
    if metric == "accuracy":
        return lambda g, p: float((g == p).mean())
    if metric == "macro_f1":
        def f1(g: np.ndarray, p: np.ndarray) -> float:
            k = int(max(g.max(), p.max())) + 1
            tp = np.bincount(g[g == p], minlength=k)
            both = np.bincount(g, minlength=k) + np.bincount(p, minlength=k)  # 2tp + fp + fn
            present = both > 0
            return float(np.where(tp > 0, 2 * tp / np.maximum(both, 1), 0.0)[present].mean())
        return f1
    return None


def _metric_on_codes(metric: str, *columns: Sequence[str]):
    """(metric over int codes, the columns as codes): the vectorised form when there is one, else the registered
    metric applied to the strings the codes stand for."""
    labels = sorted({str(x) for col in columns for x in col})
    code = {v: i for i, v in enumerate(labels)}
    coded = [np.array([code[str(x)] for x in col], dtype=np.int64) for col in columns]
    fast = _fast(metric)
    if fast is not None:
        return fast, coded
    fn = get_metric(metric)
    return (lambda g, p: fn([labels[i] for i in g], [labels[i] for i in p])), coded


def bootstrap_ci(
    gold: Sequence[str], pred: Sequence[str], metric: str = "accuracy", clusters: Sequence[int] | None = None,
    n_boot: int = N_BOOT, seed: int = 0, level: float = CI_LEVEL,
) -> tuple[float, float]:
    """Percentile cluster-bootstrap interval of a metric (clusters=None: every item its own cluster).
    (NaN, NaN) for no items."""
    if not len(gold):
        return float("nan"), float("nan")
    fn, (g, p) = _metric_on_codes(metric, gold, pred)
    vals = np.array([fn(g[ix], p[ix]) for ix in _cluster_draws(clusters, len(g), n_boot, seed)])
    return _interval(vals, level)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b discordant pairs one way and c the other: the binomial test of
    min(b, c) successes in b + c trials at 1/2, doubled and capped at 1 (1.0 when there are no discordant pairs)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / (1 << n)  # int / int: exact and no overflow for large n
    return min(1.0, 2.0 * tail)


def paired_test(
    gold: Sequence[str], pred_a: Sequence[str], pred_b: Sequence[str], metric: str = "accuracy",
    clusters: Sequence[int] | None = None, n_boot: int = N_BOOT, seed: int = 0, level: float = CI_LEVEL,
) -> dict[str, float]:
    """Model A against model B on the same items: diff = metric(A) − metric(B), its paired cluster-bootstrap
    interval, the bootstrap p-value (two-sided: twice the smaller share of resamples with diff ≤ 0 or ≥ 0, capped
    at 1; NaN when the items form a single cluster) and, for accuracy, the exact McNemar p-value over items (b = A right and B wrong, c = the reverse)."""
    if not (len(gold) == len(pred_a) == len(pred_b)):
        raise ValueError(f"paired_test: {len(gold)} gold, {len(pred_a)} and {len(pred_b)} predicted")
    if not len(gold):
        nan = float("nan")
        return {"diff": nan, "ci_low": nan, "ci_high": nan, "p": nan, "n": 0}
    fn, (g, a, b) = _metric_on_codes(metric, gold, pred_a, pred_b)
    diffs = np.array([fn(g[ix], a[ix]) - fn(g[ix], b[ix]) for ix in _cluster_draws(clusters, len(g), n_boot, seed)])
    lo, hi = _interval(diffs, level)
    p = min(1.0, 2.0 * min(float((diffs <= 0).mean()), float((diffs >= 0).mean())))
    if clusters is not None and len(set(clusters)) < 2:  # one cluster: every resample is the same, nothing is tested
        p = float("nan")
    out = {"diff": fn(g, a) - fn(g, b), "ci_low": lo, "ci_high": hi, "p": p, "n": len(g)}
    if metric == "accuracy":
        ra, rb = a == g, b == g
        out["b"], out["c"] = int((ra & ~rb).sum()), int((~ra & rb).sum())
        out["mcnemar_p"] = mcnemar_exact(out["b"], out["c"])
    return out
