"""Metrics by registry: each takes gold and predicted answer strings and returns a float.

`get_metric("accuracy")`; an unknown name raises UnknownNameError with the closest names.
"""

from __future__ import annotations

import difflib
from typing import Callable, Sequence

from benchmark.errors import UnknownNameError

__all__ = ["METRICS", "register_metric", "get_metric", "compute_metrics", "accuracy", "macro_f1"]

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
