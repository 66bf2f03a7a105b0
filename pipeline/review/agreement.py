"""Inter-rater agreement on nominal labels, and the majority decision per item.

ratings: {item: {rater: label}}. Only items with two or more ratings count for agreement.
- Cohen's κ: two raters over the items both rated (Cohen 1960).
- Fleiss' κ: items × category counts with the same number of raters per item (Fleiss 1971).
- Krippendorff's α (nominal): any number of raters per item, missing ratings allowed (Krippendorff 2011).
Each returns None where it is undefined (no shared items, or every rating in one category: chance agreement is 1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping
from itertools import combinations

__all__ = ["cohen_kappa", "fleiss_kappa", "krippendorff_alpha", "pairwise_cohen", "agreement_summary", "majority"]

Ratings = Mapping[Hashable, Mapping[str, str]]


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """κ = (p_o − p_e) / (1 − p_e) for two raters' labels of the same items (a[i], b[i] label item i)."""
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa: {len(a)} and {len(b)} labels; the raters must label the same items")
    n = len(a)
    if n == 0:
        return None
    p_o = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca) / (n * n)
    return None if p_e == 1 else (p_o - p_e) / (1 - p_e)


def fleiss_kappa(counts: list[list[int]]) -> float | None:
    """κ from an items × categories table of rating counts; every item must have the same number of ratings (≥ 2)."""
    if not counts:
        return None
    n = sum(counts[0])
    if n < 2 or any(sum(row) != n for row in counts):
        raise ValueError("fleiss_kappa: every item needs the same number of ratings, at least 2")
    n_items = len(counts)
    p_bar = sum((sum(c * c for c in row) - n) / (n * (n - 1)) for row in counts) / n_items
    totals = [sum(col) for col in zip(*counts)]
    p_e = sum((t / (n_items * n)) ** 2 for t in totals)
    return None if p_e == 1 else (p_bar - p_e) / (1 - p_e)


def krippendorff_alpha(units: list[list[str]]) -> float | None:
    """Nominal α = 1 − D_o / D_e from each unit's list of labels (units with fewer than 2 labels are not pairable)."""
    coincidence: Counter = Counter()
    for labels in units:
        m = len(labels)
        if m < 2:
            continue
        c = Counter(labels)
        for x in c:
            for y in c:
                coincidence[(x, y)] += c[x] * (c[y] - (x == y)) / (m - 1)
    n_c: Counter = Counter()
    for (x, _), v in coincidence.items():
        n_c[x] += v
    n = sum(n_c.values())
    if n <= 1:
        return None
    d_o = sum(v for (x, y), v in coincidence.items() if x != y)
    d_e = sum(n_c[x] * n_c[y] for x in n_c for y in n_c if x != y) / (n - 1)
    return None if d_e == 0 else 1 - d_o / d_e


def pairwise_cohen(ratings: Ratings) -> list[dict]:
    """Cohen's κ for every pair of raters who share at least one item: [{raters, n, kappa, agreement}]."""
    raters = sorted({r for by_rater in ratings.values() for r in by_rater})
    out = []
    for r1, r2 in combinations(raters, 2):
        shared = [by for by in ratings.values() if r1 in by and r2 in by]
        if not shared:
            continue
        a, b = [by[r1] for by in shared], [by[r2] for by in shared]
        out.append({"raters": [r1, r2], "n": len(shared), "kappa": _round(cohen_kappa(a, b)),
                    "agreement": _round(sum(x == y for x, y in zip(a, b)) / len(shared))})
    return out


def agreement_summary(ratings: Ratings) -> dict:
    """Agreement figures over the items with ≥ 2 ratings: percent agreement (all raters alike), Cohen's κ per pair of
    raters (and `cohen_kappa` when there are exactly two raters), Fleiss' κ over the items rated by the most common
    number of raters, Krippendorff's α over all of them."""
    multi = {k: v for k, v in ratings.items() if len(v) >= 2}
    units = [list(v.values()) for v in multi.values()]
    raters = sorted({r for v in multi.values() for r in v})
    out: dict = {"items": len(multi), "raters": len(raters),
                 "unanimous": _round(sum(len(set(u)) == 1 for u in units) / len(units)) if units else None,
                 "krippendorff_alpha": _round(krippendorff_alpha(units)), "pairs": pairwise_cohen(multi)}
    out["cohen_kappa"] = out["pairs"][0]["kappa"] if len(raters) == 2 and out["pairs"] else None
    if units:
        n_mode = Counter(len(u) for u in units).most_common(1)[0][0]
        same = [u for u in units if len(u) == n_mode]
        cats = sorted({x for u in same for x in u})
        table = [[Counter(u)[c] for c in cats] for u in same]
        out["fleiss"] = {"raters_per_item": n_mode, "items": len(same), "kappa": _round(fleiss_kappa(table))}
    else:
        out["fleiss"] = None
    return out


def majority(labels: list[str]) -> str | None:
    """The label most raters gave, or None on a tie for the top (a tie stays for a person to settle)."""
    if not labels:
        return None
    top = Counter(labels).most_common()
    if len(top) > 1 and top[0][1] == top[1][1]:
        return None
    return top[0][0]


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)
