"""Evaluate models on a release: accuracy and macro-F1 per task and split (wiki included), one results table.

    evaluate(release_path, ["runs/audiobert", "runs/text", "mlm:bert-base-uncased", "causal:smollm2"], out_dir)

A model is a checkpoint folder written by `models.train.train`, `mlm:<hub id or path>` (a text-only masked LM
with its own head) or `causal:<hub id or path>` (a causal LM; 'smollm2' is the shipped GGUF). Writes
results.json and results.md (model, release version, seed, per task/split n, accuracy, macro-F1; plus each
checkpoint's span P/R/F1 and retrieval recall@k).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from benchmark.errors import UnknownNameError
from benchmark.hashing import stable_hash
from benchmark.metrics import compute_metrics

__all__ = ["evaluate", "load_model", "render_table"]


def load_model(spec: str | Path, device: str = "cpu", release=None):
    """A model spec -> an object with .name, .score(items, choices) -> float[n_items, n_choices]."""
    from models.baselines import CausalLMBaseline, MaskedLMBaseline
    from models.train import load_checkpoint

    s = str(spec)
    if s.startswith("mlm:"):
        return MaskedLMBaseline(s[4:], device=device)
    if s.startswith("causal:"):
        return CausalLMBaseline(s[7:], device=device)
    if (Path(s) / "config.json").exists():
        return load_checkpoint(s, device=device, release=release)
    raise UnknownNameError(f"model {s!r}: expected a checkpoint folder (with config.json), mlm:<id or path> or causal:<id or path>")


def evaluate(
    release_path: str | Path, models: Sequence[str | Path], out_dir: str | Path, *, tasks: Sequence[str] = (),
    splits: Sequence[str] = ("train", "dev", "test", "wiki"), metrics: Sequence[str] | None = None,
    device: str = "cpu", seed: int = 0, batch_size: int = 32, max_items: int = 0, quiet: bool = True,
) -> dict:
    """Score every model on every task and split; write out_dir/results.json and results.md; return the results.

    metrics: None scores each task by the metrics its YAML declares (the release manifest's `metrics`).
    max_items > 0 scores a fixed subset of each larger split (the items with the smallest hash of their id, so every
    model and every run sees the same ones); the table shows n of n_total."""
    import torch

    from benchmark.release_io import load_release
    from models._io import atomic_write_text
    from models.train import task_items

    torch.manual_seed(seed)
    release = load_release(release_path)
    tasks = list(tasks) or release.tasks
    rows, extras, span_cache = [], {}, {}
    for spec in models:
        model = load_model(spec, device=device, release=release)
        meta = getattr(model, "meta", {})
        if meta:
            extras[model.name] = {
                "span_detector": meta.get("span_detector", {}).get("scores", {}),
                "retrieval": meta.get("retrieval_metrics", {}),
                "index_models": {k: v for k, v in meta.get("index_models", {}).items() if k in ("retrieval", "inject")},
                "trained_on": meta.get("release", {}),
                "seed": meta.get("config", {}).get("seed"),
            }
        for task in tasks:
            choices = release.choices(task)
            for split in splits:
                items = task_items(release, [task], split)
                if not items:
                    continue
                n_total = len(items)
                if max_items and n_total > max_items:
                    items = sorted(items, key=lambda it: stable_hash([seed, it["id"]]))[:max_items]
                if hasattr(model, "span_cache"):
                    model.span_cache = span_cache  # models sharing a detector detect each item's spans once
                scores = model.score(items, choices, batch_size=batch_size)
                pred = [choices[j] for j in scores.argmax(1)]
                gold = [it["answer"] for it in items]
                m = compute_metrics(gold, pred, metrics or release.metrics(task))
                rows.append({"model": model.name, "spec": str(spec), "task": task, "split": split, "n": len(items), "n_total": n_total, **m})
                if not quiet:
                    print(f"[eval] {model.name} {task}/{split}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items()))
        del model
    results = {
        "release": {"name": release.name, "version": release.version, "path": str(release.path)},
        "seed": seed,
        "metrics": list(metrics) if metrics else list(dict.fromkeys(m for t in tasks for m in release.metrics(t))),
        "rows": rows,
        "models": extras,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, sort_keys=True, default=_nan) + "\n")
    atomic_write_text(out / "results.md", render_table(results))
    return results


def _nan(x):
    return None if isinstance(x, float) and math.isnan(x) else str(x)


def _fmt(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def render_table(results: dict) -> str:
    """Markdown: one row per model, task and split."""
    rel = results["release"]
    ms = results["metrics"]
    lines = [f"# Results on {rel['name']}-{rel['version']} (seed {results['seed']})", ""]
    lines.append("| model | task | split | n | " + " | ".join(ms) + " |")
    lines.append("|---|---|---|---:|" + "---:|" * len(ms))
    for r in results["rows"]:
        n = f"{r['n']} of {r['n_total']}" if r.get("n_total", r["n"]) != r["n"] else str(r["n"])
        lines.append(f"| {r['model']} | {r['task']} | {r['split']} | {n} | " + " | ".join(_fmt(r.get(m)) for m in ms) + " |")
    for name, ex in results.get("models", {}).items():
        im = ex.get("index_models") or {}
        lines += ["", f"**{name}**" + (f" — retrieval: {im['retrieval']}, injected audio: {im.get('inject', '–')}" if im else " — text only")]
        rec = ex.get("retrieval") or {}
        ks = [k for k in rec if k.startswith("recall@")]
        if ks:
            lines.append(f"- retrieval on {rec.get('n_heldout', '?')} held-out clips: " + ", ".join(f"{k} {rec[k]:.3f}" for k in ks)
                         + (f" (chance@1 {rec['chance@1']:.3f})" if "chance@1" in rec else ""))
        for split, sc in (ex.get("span_detector") or {}).items():
            lines.append(f"- span detector on {split}: precision {sc['precision']:.3f}, recall {sc['recall']:.3f}, F1 {sc['f1']:.3f}")
    return "\n".join(lines) + "\n"
