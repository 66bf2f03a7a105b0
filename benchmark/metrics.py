"""Metrics by registry: each takes gold and predicted answer strings and returns a float.

`get_metric("accuracy")`; an unknown name raises UnknownNameError with the closest names.

Uncertainty (see the section's comment): `item_units` (the sources, sound words and clips an item depends on),
`bootstrap_ci` (a metric's 95 % interval from a multiway bootstrap over those units), `paired_test` (model A − model
B on the same items and the same resamples: difference, interval, bootstrap p; the item-level exact McNemar p beside
it), `seed_averaged_difference` (A − B averaged over training seeds, its interval including the seeds' spread),
`mcnemar_exact`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Hashable, Iterator, Sequence

import numpy as np

from benchmark.errors import UnknownNameError

__all__ = [
    "METRICS", "register_metric", "get_metric", "compute_metrics", "accuracy", "macro_f1",
    "connected_components", "item_units", "count_units", "too_few_units", "unit_weights", "bootstrap_ci", "paired_test",
    "seed_averaged_difference", "mcnemar_exact", "CI_LEVEL", "N_BOOT", "MIN_UNITS",
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
# Items of a benchmark are not independent, and not in nested clusters either: every item that names "violin" gets
# the same retrieved clips, and a comparison item names two sources, each shared with other items — a crossed design
# (items are cells of a sources × sources table). Connected components of shared keys either split such items into
# near-independent pieces (too narrow) or merge them into one cluster (a point). Every interval here is instead a
# multiway ("pigeonhole", Owen 2007) bootstrap: each kind of unit — sources, sound words, clips — is resampled with
# replacement on its own, and an item enters a resample with weight = the product of the multiplicities of its units
# (0 when any of them was not drawn). The same weights serve both models of a paired test. Its variance is a little
# conservative for crossed random effects (Owen 2007); `benchmark.coverage` measures its coverage on simulated data
# (tests/benchmark/test_coverage.py, `python bench/coverage.py`).

CI_LEVEL = 0.95
N_BOOT = 2000
# Below this many distinct units of any kind the interval is not computed ("too few units"): with k units a
# resample is one of few distinct draws and a unit's effect is all-or-nothing, so the percentile interval rests on
# the shape of the design, not on the data (10 is the usual floor for cluster resampling, e.g. Cameron, Gelbach &
# Miller 2008). On the simulated demo-like design the interval still covered at 6 sources (`python
# bench/coverage.py`), but a real split with 3 sources (the demo's loudness) says nothing a reader should trust.
MIN_UNITS = 10
_CHUNK = 250  # resamples per block of weights (bounds memory: block × items int64)


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


Unit = tuple[str, Hashable]  # (kind, value): ("source", "violin"), ("clip", "freesound/113772"), ("word", "moo")


def _norm(s) -> str:
    return " ".join(str(s or "").split()).lower()


def item_units(item: dict, kind: str | None = None) -> list[Unit]:
    """The units an item's correctness depends on, each (kind, value):

    - ("source", name): the sources it names — span1 and span2 of a comparison; for a recognition item its answer
      (the animal or instrument is the clip's source);
    - ("word", text): a recognition item's sound word or description (retrieval queries it: every item with "moo"
      gets the same clips);
    - only for an item that names no source: ("clip", id) for each clip it is built on, else ("group", id).

    Clips are not a factor of their own beside sources: a clip belongs to one source, so items sharing a clip share
    its source and are resampled together already, and every extra factor multiplies the items' own noise into the
    bootstrap variance (with sources and clips both as factors the simulated interval was 3.7 times too wide and
    covered the truth in 100 % of datasets; `benchmark.coverage`).

    kind: the task's kind ("comparison" | "recognition"; the registry's or the release's, never guessed from the
    item); None: sources from span1/span2 when both are set, else the answer and description."""
    units: list[Unit] = []
    s1, s2 = _norm(item.get("span1")), _norm(item.get("span2"))
    comparison = kind == "comparison" or (kind is None and bool(s1 and s2))
    if comparison:
        units += [("source", s) for s in dict.fromkeys([s1, s2]) if s]
    else:
        if _norm(item.get("answer")):
            units.append(("source", _norm(item["answer"])))
        word = _norm(item.get("description")) or " ".join(_norm(s) for s in item.get("spans") or [])
        if word:
            units.append(("word", word))
    if units:  # a clip is of one source: resampling the sources keeps the items sharing a clip together already
        return units
    clips = [str(c) for c in (item.get("clip_ids") or [])]
    if clips:
        return [("clip", c) for c in dict.fromkeys(clips)]
    return [("group", str(item["group_id"]))] if item.get("group_id") else []


def _as_units(units: Sequence[Sequence[Unit]] | None, n: int) -> list[list[Unit]]:
    if units is None:
        return [[("item", i)] for i in range(n)]
    if len(units) != n:
        raise ValueError(f"bootstrap: {len(units)} unit lists for {n} items")
    return [list(dict.fromkeys(us)) or [("item", i)] for i, us in enumerate(units)]


def count_units(units: Sequence[Sequence[Unit]]) -> dict[str, int]:
    """Distinct units of each kind: {"source": 12, "clip": 180}."""
    seen: dict[str, set] = {}
    for us in units:
        for k, v in us:
            seen.setdefault(k, set()).add(v)
    return {k: len(v) for k, v in sorted(seen.items())}


def too_few_units(counts: dict[str, int], min_units: int = MIN_UNITS) -> bool:
    """True when some kind of unit has fewer than min_units distinct values (or there are none)."""
    return not counts or min(counts.values()) < min_units


def unit_weights(units: Sequence[Sequence[Unit]], n_boot: int = N_BOOT, seed: int = 0, chunk: int = _CHUNK
                 ) -> Iterator[np.ndarray]:
    """int64[b, n_items] blocks of resampling weights (b ≤ chunk, n_boot rows in all, seeded): each kind of unit is
    drawn with replacement (as many draws as it has units) and an item's weight is the product of its units'
    multiplicities."""
    n = len(units)
    index: dict[str, dict] = {}
    incidence: dict[str, list[tuple[list[int], list[int]]]] = {}  # kind -> per occurrence rank: (items, unit numbers)
    for i, us in enumerate(units):
        rank: dict[str, int] = {}
        for kind, value in us:
            u = index.setdefault(kind, {}).setdefault(value, len(index[kind]))
            j = rank[kind] = rank.get(kind, -1) + 1
            levels = incidence.setdefault(kind, [])
            if len(levels) <= j:
                levels.append(([], []))
            levels[j][0].append(i)
            levels[j][1].append(u)
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        w = np.ones((b, n), dtype=np.int64)
        for kind, levels in incidence.items():
            k = len(index[kind])
            draws = rng.integers(0, k, (b, k)) + (np.arange(b) * k)[:, None]
            mult = np.bincount(draws.ravel(), minlength=b * k).reshape(b, k)
            for items, us in levels:  # items are distinct within one occurrence rank: a plain in-place product
                w[:, items] *= mult[:, us]
        done += b
        yield w


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


def _weighted(metric: str, fn, g: np.ndarray, preds: Sequence[np.ndarray], w: np.ndarray) -> np.ndarray:
    """float[b, len(preds)]: the metric of each prediction column under each row of weights (NaN where a row's
    weights are all 0: no item was drawn)."""
    out = np.full((len(w), len(preds)), np.nan)
    total = w.sum(1)
    if metric == "accuracy":  # a weighted mean: one matrix product
        right = np.stack([(p == g) for p in preds], 1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (w @ right) / total[:, None]
        out[total == 0] = np.nan
        return out
    idx = np.arange(len(g))
    for r in np.flatnonzero(total):
        ix = np.repeat(idx, w[r])
        out[r] = [fn(g[ix], p[ix]) for p in preds]
    return out


def _resampled(metric: str, gold: Sequence[str], preds: Sequence[Sequence[str]], units, n_boot: int, seed: int):
    """(metric, codes of gold, codes of each prediction, float[kept resamples, len(preds)])."""
    fn, (g, *ps) = _metric_on_codes(metric, gold, *preds)
    blocks = [_weighted(metric, fn, g, ps, w) for w in unit_weights(units, n_boot, seed)]
    vals = np.concatenate(blocks) if blocks else np.zeros((0, len(ps)))
    return fn, g, ps, vals[~np.isnan(vals).any(1)]


def bootstrap_ci(
    gold: Sequence[str], pred: Sequence[str], metric: str = "accuracy", units: Sequence[Sequence[Unit]] | None = None,
    n_boot: int = N_BOOT, seed: int = 0, level: float = CI_LEVEL, min_units: int = MIN_UNITS,
) -> tuple[float, float]:
    """Percentile interval of a metric from the multiway bootstrap over `units` (one list of (kind, value) per
    item, `item_units`; None: every item its own unit). (NaN, NaN) for no items, and when some kind of unit has
    fewer than min_units distinct values (too few to say anything; see MIN_UNITS)."""
    nan = (float("nan"), float("nan"))
    if not len(gold):
        return nan
    us = _as_units(units, len(gold))
    if too_few_units(count_units(us), min_units):
        return nan
    _, _, _, vals = _resampled(metric, gold, [pred], us, n_boot, seed)
    return _interval(vals[:, 0], level) if len(vals) else nan


def bootstrap_p(diffs: np.ndarray) -> float:
    """Two-sided bootstrap p of a difference from its resampled values: twice the smaller count of resamples at or
    beyond 0 on either side, as (k + 1) / (B + 1) — never 0 (its floor is 2 / (B + 1)), capped at 1."""
    b = len(diffs)
    if not b:
        return float("nan")
    k = min(int((diffs <= 0).sum()), int((diffs >= 0).sum()))
    return min(1.0, 2.0 * (k + 1) / (b + 1))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b discordant pairs one way and c the other: the binomial test of
    min(b, c) successes in b + c trials at 1/2, doubled and capped at 1 (1.0 when there are no discordant pairs).
    It treats items as independent: beside the unit-level bootstrap p, never instead of it."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / (1 << n)  # int / int: exact and no overflow for large n
    return min(1.0, 2.0 * tail)


def paired_test(
    gold: Sequence[str], pred_a: Sequence[str], pred_b: Sequence[str], metric: str = "accuracy",
    units: Sequence[Sequence[Unit]] | None = None, n_boot: int = N_BOOT, seed: int = 0, level: float = CI_LEVEL,
    min_units: int = MIN_UNITS,
) -> dict:
    """Model A against model B on the same items: diff = metric(A) − metric(B); its interval and two-sided
    bootstrap p (`bootstrap_p`) from the multiway bootstrap over `units`, both models under the same weights in
    each resample; n, units (distinct units per kind), too_few_units (then interval and p are NaN). For accuracy
    also the item-level exact McNemar p (b = A right and B wrong, c = the reverse), which ignores shared units."""
    if not (len(gold) == len(pred_a) == len(pred_b)):
        raise ValueError(f"paired_test: {len(gold)} gold, {len(pred_a)} and {len(pred_b)} predicted")
    nan = float("nan")
    if not len(gold):
        return {"diff": nan, "ci_low": nan, "ci_high": nan, "p": nan, "n": 0, "units": {}, "too_few_units": True}
    us = _as_units(units, len(gold))
    counts = count_units(us)
    few = too_few_units(counts, min_units)
    fn, (g, a, b) = _metric_on_codes(metric, gold, pred_a, pred_b)
    lo = hi = p = nan
    if not few:
        _, _, _, vals = _resampled(metric, gold, [pred_a, pred_b], us, n_boot, seed)
        diffs = vals[:, 0] - vals[:, 1]
        if len(diffs):
            lo, hi = _interval(diffs, level)
            p = bootstrap_p(diffs)
    out = {"diff": fn(g, a) - fn(g, b), "ci_low": lo, "ci_high": hi, "p": p, "n": len(g), "units": counts,
           "too_few_units": few}
    if metric == "accuracy":
        ra, rb = a == g, b == g
        out["b"], out["c"] = int((ra & ~rb).sum()), int((~ra & rb).sum())
        out["mcnemar_p"] = mcnemar_exact(out["b"], out["c"])
    return out


def seed_averaged_difference(
    gold: Sequence[str], preds_a: Sequence[Sequence[str]], preds_b: Sequence[Sequence[str]], metric: str = "accuracy",
    units: Sequence[Sequence[Unit]] | None = None, n_boot: int = N_BOOT, seed: int = 0, level: float = CI_LEVEL,
    min_units: int = MIN_UNITS,
) -> dict:
    """A − B averaged over S training seeds (preds_a[s], preds_b[s]: seed s's predictions on the same items).

    diff = mean over seeds of metric(A_s) − metric(B_s); per_seed = those S differences; sd_seed their standard
    deviation. The interval adds the two sources of uncertainty: which items (and units) the test happened to hold —
    the multiway bootstrap of the seed-averaged difference, every seed under the same weights (variance v_units) —
    and which seeds training happened to draw (sd_seed² / S). It is diff ± t·sqrt(v_units + sd_seed² / S), with t
    at the Welch–Satterthwaite degrees of freedom (S − 1 for the seed part, the bootstrap part taken as known), so
    three seeds that disagree give a wide interval."""
    from scipy import stats

    s = len(preds_a)
    if s == 0 or s != len(preds_b):
        raise ValueError(f"seed_averaged_difference: {len(preds_a)} seeds of A, {len(preds_b)} of B")
    nan = float("nan")
    fn, (g, *ps) = _metric_on_codes(metric, gold, *preds_a, *preds_b)
    per_seed = [fn(g, ps[i]) - fn(g, ps[s + i]) for i in range(s)]
    diff = float(np.mean(per_seed))
    sd = float(np.std(per_seed, ddof=1)) if s > 1 else nan
    us = _as_units(units, len(gold))
    counts = count_units(us)
    out = {"diff": diff, "per_seed": per_seed, "sd_seed": sd, "n_seeds": s, "n": len(g), "units": counts,
           "too_few_units": too_few_units(counts, min_units), "ci_low": nan, "ci_high": nan, "se": nan}
    if out["too_few_units"] or s < 2:
        return out
    _, _, _, vals = _resampled(metric, gold, [*preds_a, *preds_b], us, n_boot, seed)
    boot = (vals[:, :s] - vals[:, s:]).mean(1)
    v_units, v_seed = float(np.var(boot, ddof=1)), sd ** 2 / s
    se = math.sqrt(v_units + v_seed)
    df = math.inf if v_seed == 0 else (v_units + v_seed) ** 2 / (v_seed ** 2 / (s - 1))
    t = float(stats.norm.ppf(0.5 + level / 2)) if math.isinf(df) else float(stats.t.ppf(0.5 + level / 2, df))
    out.update(se=se, df=df, v_units=v_units, v_seed=v_seed, ci_low=diff - t * se, ci_high=diff + t * se)
    return out
