"""The release's figures: PNGs drawn with matplotlib's Agg canvas (no pyplot, no global state) without timestamps or
software metadata, so a rebuilt release is byte-identical. They are data (written by the release step beside the
parquet splits); the card (benchmark.card) only shows them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.errors import UnknownNameError
from benchmark.tasks import get_task

__all__ = ["write_figures", "plot_gap_histogram", "gap_axis", "gaps_on_axis", "plot_agreement", "AXES"]

_PNG_METADATA = {"Software": None}


def _new_figure(width_in: float = 6.0, height_in: float = 3.4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata=_PNG_METADATA)


# The axis a comparison's gap is drawn on: pitch bases in semitones (12·log2 of the ratio), other ratio rules
# (duration) as the ratio itself, difference rules (loudness) as the difference in the basis's unit.
AXES = {"semitones": "pitch gap (semitones)", "ratio": "ratio of the two values (longer / shorter)",
        "difference": "difference of the two values (dB)"}


def gap_axis(task: str) -> str:
    """The axis ("semitones" | "ratio" | "difference") of a comparison task's gaps, from its spec."""
    try:
        spec = get_task(task)
    except UnknownNameError:
        return "semitones"  # an unregistered (official) pitch task
    if spec.dimension == "pitch" or spec.gap_rule is None:
        return "semitones"
    return spec.gap_rule.kind


def gaps_on_axis(a, b, axis: str) -> np.ndarray:
    """The gap of each pair (a[i], b[i]) on the axis; pairs without two finite values (or, for ratios, two positive
    values) are left out."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    if axis == "difference":
        return np.abs(a[ok] - b[ok])
    ok &= (a > 0) & (b > 0)
    ratio = np.maximum(a[ok], b[ok]) / np.minimum(a[ok], b[ok])
    return 12.0 * np.log2(ratio) if axis == "semitones" else ratio


def plot_gap_histogram(gaps_by_basis: dict[str, np.ndarray], path: Path, axes: dict[str, str] | None = None) -> dict:
    """Histograms of the measured gap of each compared pair, one panel per axis (semitones, ratio, difference; see
    AXES) and one series per basis (f0, centroid, duration, loudness ...). axes: {basis: axis}, default semitones.
    Returns figures: n and median gap per basis, the median keyed by its unit (median_semitones / _ratio / _difference)."""
    axes = axes or {}
    panels = sorted({axes.get(b, "semitones") for b in gaps_by_basis} or {"semitones"}, key=list(AXES).index)
    fig = _new_figure(width_in=6.0 * len(panels) if len(panels) > 1 else 6.0)
    stats = {}
    for k, axis in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        bases = sorted(b for b in gaps_by_basis if axes.get(b, "semitones") == axis)
        finite = [gaps_by_basis[b] for b in bases if len(gaps_by_basis[b])]
        biggest = max(float(np.max(g)) for g in finite) if finite else 0.0
        if axis == "semitones":
            bins = np.linspace(0.0, min(max(24.0, float(np.ceil(biggest))), 60.0), 31)
        elif axis == "ratio":
            bins = np.linspace(1.0, min(max(4.0, float(np.ceil(biggest))), 20.0), 31)
        else:
            bins = np.linspace(0.0, min(max(24.0, float(np.ceil(biggest))), 60.0), 31)
        for basis in bases:
            g = np.clip(gaps_by_basis[basis], bins[0], bins[-1])
            ax.hist(g, bins=bins, alpha=0.6, label=f"{basis} (n={len(g)})")
            stats[basis] = {"n": int(len(g)), f"median_{axis}": round(float(np.median(g)), 3) if len(g) else None}
        ax.set_xlabel(AXES[axis])
        ax.set_ylabel("pairs")
        ax.set_title("Measured gap of compared pairs")
        if bases:
            ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    _save_png(fig, path)
    return stats


def plot_agreement(sentences: pd.DataFrame, path: Path) -> dict:
    """Bars per answer: the LLM's blind guess agrees with the measured answer, disagrees, or gave none.
    sentences: columns answer, llm_guess ("" or NaN when no guess). Returns the agreement figures."""
    df = sentences[["answer", "llm_guess"]].copy()
    df["answer"] = df["answer"].astype(str)
    guess = df["llm_guess"].fillna("").astype(str).str.strip().str.lower()
    ans = df["answer"].str.strip().str.lower()
    df["outcome"] = np.where(guess == "", "no guess", np.where(guess == ans, "agree", "disagree"))
    answers = sorted(set(df["answer"]))
    outcomes = ["agree", "disagree", "no guess"]
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    bottom = np.zeros(len(answers))
    for outcome in outcomes:
        vals = np.array([int(((df["answer"] == a) & (df["outcome"] == outcome)).sum()) for a in answers], dtype=float)
        ax.bar(answers, vals, bottom=bottom, label=outcome)
        bottom += vals
    ax.set_ylabel("sentences")
    ax.set_title("LLM blind guess vs measured answer")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    _save_png(fig, path)
    guessed = df[df["outcome"] != "no guess"]
    return {
        "n": int(len(df)),
        "guessed": int(len(guessed)),
        "agreement": round(float((guessed["outcome"] == "agree").mean()), 4) if len(guessed) else None,
    }


def write_figures(release_dir: Path, items: pd.DataFrame, plot_tables: dict[str, pd.DataFrame]) -> dict[str, dict]:
    """Draw the card's figures into release_dir/figures/; returns {name: {"path", "caption", "stats"}}.

    The gap histogram uses plot_tables["pairs"] (task, basis, value_a, value_b, label) when given, else the
    released comparison items' value1/value2; the agreement plot needs plot_tables["sentences"] (answer, llm_guess).
    """
    out: dict[str, dict] = {}
    gaps: dict[str, np.ndarray] = {}
    axes: dict[str, str] = {}
    pairs = plot_tables.get("pairs")
    if pairs is not None and len(pairs) and {"task", "basis", "value_a", "value_b"} <= set(pairs.columns):
        table, cols, source = pairs, ("value_a", "value_b"), "candidate pairs (pairs stage)"
    else:
        table, cols, source = items[(items["span1"] != "") & (items["span2"] != "")], ("value1", "value2"), "released comparison items"
    for (task, basis), g in table.groupby(["task", "basis"], sort=True):
        if not basis:
            continue
        axes[str(basis)] = gap_axis(str(task))
        found = gaps_on_axis(g[cols[0]], g[cols[1]], axes[str(basis)])
        gaps[str(basis)] = np.concatenate([gaps[str(basis)], found]) if str(basis) in gaps else found
    gaps = {k: v for k, v in gaps.items() if len(v)}
    if gaps:
        rel = "figures/gap_histogram.png"
        stats = plot_gap_histogram(gaps, release_dir / rel, {b: axes[b] for b in gaps})
        units = ", ".join(AXES[a].split(" (")[0] for a in sorted(set(axes[b] for b in gaps), key=list(AXES).index))
        out["gap_histogram"] = {"path": rel, "caption": f"Gap between the compared sounds ({units}) of the {source}.",
                                "stats": stats}
    sentences = plot_tables.get("sentences")
    if sentences is not None and len(sentences) and {"answer", "llm_guess"} <= set(sentences.columns):
        rel = "figures/agreement.png"
        stats = plot_agreement(sentences, release_dir / rel)
        out["agreement"] = {"path": rel, "caption": "How often the LLM's blind guess agreed with the measured answer.",
                            "stats": stats}
    return out
