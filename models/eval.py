"""Evaluate models on a release: accuracy and macro-F1 per task and split (wiki included), one results table.

    evaluate(release_path, ["runs/audiobert", "runs/text", "mlm:bert-base-uncased", "causal:smollm2"], out_dir)

A model is a checkpoint folder written by `models.train.train`, `mlm:<hub id or path>` (a text-only masked LM
with its own head) or `causal:<hub id or path>` (a causal LM; 'smollm2' is the shipped GGUF). Writes
results.json, results.md (model, release version, seed, per task/split n, its independent units, accuracy and
macro-F1 each with a 95 % multiway-bootstrap interval over those units; each model against the text-only twin:
difference, interval, p-values; plus each checkpoint's span P/R/F1 and retrieval recall@k) and predictions.jsonl
(every model's answer to every item: what `models.seeds` reads to average runs over training seeds).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from benchmark.errors import UnknownNameError
from benchmark.hashing import stable_hash
from benchmark.metrics import CI_LEVEL, MIN_UNITS, N_BOOT, bootstrap_ci, compute_metrics, count_units, item_units, paired_test
from models.data import AUDIO_SOURCES, groups_clips

__all__ = ["evaluate", "load_model", "render_table", "text_twin", "twin_of", "compared_pairs", "seen_unseen", "CONTROLS"]


def load_model(spec: str | Path, device: str = "cpu", release=None, index_dir: str | Path | None = None):
    """A model spec -> an object with .name, .score(items, choices) -> float[n_items, n_choices]. An AudioBERT
    checkpoint retrieves from index_dir when given (see `models.infer.load_checkpoint`)."""
    from models.baselines import CausalLMBaseline, MaskedLMBaseline
    from models.infer import load_checkpoint

    s = str(spec)
    if s.startswith("mlm:"):
        return MaskedLMBaseline(s[4:], device=device)
    if s.startswith("causal:"):
        return CausalLMBaseline(s[7:], device=device)
    if (Path(s) / "config.json").exists():
        return load_checkpoint(s, device=device, release=release, index_dir=index_dir)
    raise UnknownNameError(f"model {s!r}: expected a checkpoint folder (with config.json), mlm:<id or path> or causal:<id or path>")


def evaluate(
    release_path: str | Path, models: Sequence[str | Path], out_dir: str | Path, *, tasks: Sequence[str] = (),
    splits: Sequence[str] = ("train", "dev", "test", "wiki"), metrics: Sequence[str] | None = None,
    device: str = "cpu", seed: int = 0, batch_size: int = 32, max_items: int = 0, n_boot: int = N_BOOT,
    index_dir: str | Path | None = None, ablation: Sequence[str] = (), quiet: bool = True, workers: int = 1,
) -> dict:
    """Score every model on every task and split; write out_dir/results.json and results.md; return the results.

    metrics: None scores each task by the metrics its YAML declares (the release manifest's `metrics`).
    Each metric comes with a 95 % interval from the multiway bootstrap over the items' units (sources, sound
    words, clips: `benchmark.metrics.item_units`; seeded by `seed`; none when a kind has fewer than MIN_UNITS), and
    every model is paired against the text-only twin (`text_twin`) on the same items and resamples: difference, its
    interval, bootstrap p, and the item-level exact McNemar p for accuracy.

    index_dir: the audio index AudioBERT checkpoints retrieve from (default: the release's, else their own).
    ablation: splits on which each AudioBERT checkpoint is also scored with retrieval that may not return the item's
    own clips nor any clip of its group ("excluded audio"), with its items' own clips injected ("oracle audio") and
    with random clips ("shuffled audio"); results["ablation"] then holds one row per task and split:
    text twin · retrieved · excluded · oracle · shuffled audio.

    Whole splits by default. max_items > 0 scores a fixed subset of each larger split (the items with the smallest
    hash of their id, so every model and every run sees the same ones); the table then says so and shows n of n_total.

    workers > 1 scores the models in that many processes at once (each as in one process: the same results)."""
    from benchmark.release_io import load_release
    from models._io import atomic_write_text
    from models.data import task_items

    release = load_release(release_path)
    tasks = list(tasks) or release.tasks
    # answers a model could have learned: those of the task's train items (an unseen answer is learnable only from
    # what the model is given: audio, captions)
    train_answers = {t: {it["answer"] for it in task_items(release, [t], "train")} for t in tasks}
    cells = _cells(release, tasks, splits, max_items, seed)
    jobs = [(str(spec), str(release_path), tuple(tasks), tuple(splits), tuple(ablation), device, batch_size,
             None if index_dir is None else str(index_dir), max_items, seed, quiet) for spec in models]
    if workers > 1 and len(models) > 1:  # a process per model, each single-threaded: the same predictions as one process
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(models)), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {i: pool.submit(_score_model, jobs[i]) for i in sorted(range(len(jobs)), key=lambda i: -_cost(models[i]))}
            scored = [futures[i].result() for i in range(len(jobs))]
    else:
        span_cache: dict = {}  # models sharing a detector detect each item's spans once
        scored = [_score_model(job, span_cache) for job in jobs]
    rows, extras, preds, modes = [], {}, {}, {}
    for spec, (model_name, meta, sources, model_preds) in zip(models, scored):
        name = model_name if model_name not in modes else f"{model_name} ({spec})"  # two checkpoints of one kind
        cfg = meta.get("config", {}) if meta else {}
        modes[name] = {"mode": cfg.get("mode", "text"), "lm": cfg.get("lm"), "checkpoint": bool(meta)}
        if meta:
            extras[name] = {
                "span_detector": meta.get("span_detector", {}).get("scores", {}),
                "retrieval": meta.get("retrieval_metrics", {}),
                "index_models": {k: v for k, v in meta.get("index_models", {}).items() if k in ("retrieval", "inject")},
                "trained_on": meta.get("release", {}),
                "seed": meta.get("config", {}).get("seed"),
            }
        for src in sources[1:]:
            modes[variant_name(name, src)] = dict(modes[name], variant_of=name, audio=src)
        for (src, task, split), pred in model_preds.items():
            vname = name if src == "retrieved" else variant_name(name, src)
            items, units, n_total = cells[(task, split)]
            gold = [it["answer"] for it in items]
            task_metrics = list(metrics or release.metrics(task))
            preds[(vname, task, split)] = pred
            m = compute_metrics(gold, pred, task_metrics)
            ci = {f"{k}_ci": list(bootstrap_ci(gold, pred, k, units, n_boot=n_boot, seed=seed)) for k in task_metrics}
            counts = count_units(units)
            rows.append({"model": vname, "spec": str(spec), "task": task, "split": split, "n": len(items),
                         "n_total": n_total, "units": counts, "too_few_units": min(counts.values()) < MIN_UNITS,
                         **m, **ci, **seen_unseen(gold, pred, train_answers.get(task, set()))})
            if not quiet:
                print(f"[eval] {vname} {task}/{split}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items()))
    comparisons = []
    for name, baseline in compared_pairs(modes):
        for (task, split), (items, units, _) in cells.items():
            if (name, task, split) not in preds or (baseline, task, split) not in preds:
                continue
            gold = [it["answer"] for it in items]
            for k in metrics or release.metrics(task):
                r = paired_test(gold, preds[(name, task, split)], preds[(baseline, task, split)], k, units, n_boot=n_boot, seed=seed)
                comparisons.append({"model": name, "baseline": baseline, "task": task, "split": split, "metric": k, **r})
    results = {
        "release": {"name": release.name, "version": release.version, "path": str(release.path)},
        "seed": seed,
        "metrics": list(metrics) if metrics else list(dict.fromkeys(m for t in tasks for m in release.metrics(t))),
        "uncertainty": {"ci_level": CI_LEVEL, "n_boot": n_boot, "min_units": MIN_UNITS,
                        "resampling": "multiway bootstrap over the items' sources, sound words and clips"},
        "max_items": max_items,
        "rows": rows,
        "comparisons": comparisons,
        "ablation": _ablation_rows(rows, modes, ablation),
        "models": extras,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, sort_keys=True, default=_nan) + "\n")
    atomic_write_text(out / "results.md", render_table(results))
    atomic_write_text(out / "predictions.jsonl", "".join(
        json.dumps({"model": m, "task": t, "split": s, "ids": [it["id"] for it in cells[(t, s)][0]], "pred": p}) + "\n"
        for (m, t, s), p in preds.items()))
    return results


def _cells(release, tasks: Sequence[str], splits: Sequence[str], max_items: int, seed: int) -> dict:
    """(task, split) -> (items, their units, n_total): whole splits, or with max_items the fixed hash-chosen subset."""
    from models.data import task_items

    cells = {}
    for task in tasks:
        for split in splits:
            items = task_items(release, [task], split)
            if not items:
                continue
            n_total = len(items)
            if max_items and n_total > max_items:
                items = sorted(items, key=lambda it: stable_hash([seed, it["id"]]))[:max_items]
            cells[(task, split)] = (items, [item_units(it, release.kind(task)) for it in items], n_total)
    return cells


def _cost(spec) -> int:
    """How many passes a model's scoring takes, roughly (the heaviest are started first): AudioBERT is scored with
    four audio sources, the caption twin with two and reads longer inputs, a text model once."""
    try:
        mode = json.loads((Path(spec) / "config.json").read_text(encoding="utf-8"))["config"]["mode"]
    except (OSError, ValueError, KeyError, TypeError):
        return 1
    return {"audiobert": 3, "captions": 2}.get(mode, 1)


def _score_model(job: tuple, span_cache: dict | None = None) -> tuple[str, dict, tuple[str, ...], dict]:
    """One model's answers to every cell: (its name, its checkpoint meta, the audio sources it was scored with,
    {(source, task, split): predicted answers}). A worker process's job in `evaluate` (args are plain values)."""
    import torch

    from benchmark.release_io import load_release

    spec, release_path, tasks, splits, ablation, device, batch_size, index_dir, max_items, seed, quiet = job
    torch.manual_seed(seed)
    release = load_release(release_path)
    cells = _cells(release, tasks, splits, max_items, seed)
    model = load_model(spec, device=device, release=release, index_dir=index_dir)
    meta = dict(getattr(model, "meta", {}) or {})
    meta.pop("_dir", None)
    sources = model.variants() if ablation and meta else ("retrieved",)
    group_clips = groups_clips(release)[0] if len(sources) > 1 else {}
    if hasattr(model, "span_cache") and span_cache is not None:
        model.span_cache = span_cache
    preds = {}
    for task in tasks:
        choices = release.choices(task)
        for split in splits:
            if (task, split) not in cells:
                continue
            items = cells[(task, split)][0]
            for src in sources:
                if src != "retrieved" and split not in ablation:
                    continue
                kw = {"audio_source": src} if src != "retrieved" else {}
                if src == "excluded":
                    kw["exclude"] = [set(it["clip_ids"]) | group_clips.get(it["group_id"], set()) for it in items]
                scores = model.score(items, choices, batch_size=batch_size, **kw)
                preds[(src, task, split)] = [choices[j] for j in scores.argmax(1)]
    return model.name, meta, tuple(sources), preds


def variant_name(name: str, src: str) -> str:
    """The row name of a checkpoint scored with another audio source ("AudioBERT(minilm) · excluded audio"); the
    caption twin's variants read captions ("caption twin(minilm) · excluded captions")."""
    return f"{name} · {src} {'captions' if name.startswith('caption twin') else 'audio'}"


def seen_unseen(gold: Sequence[str], pred: Sequence[str], seen: set[str]) -> dict:
    """Accuracy over the items whose answer is a train answer of the task (seen) and over the others (unseen)."""
    out = {}
    for part, keep in (("seen", [g in seen for g in gold]), ("unseen", [g not in seen for g in gold])):
        n = sum(keep)
        out[f"n_{part}"] = n
        out[f"accuracy_{part}"] = sum(g == p for g, p, k in zip(gold, pred, keep) if k) / n if n else float("nan")
    return out


CONTROLS = ("text twin", "caption twin", "caption twin · excluded", "retrieved audio", "excluded audio", "oracle audio",
            "shuffled audio")  # the control table's columns, in the order a reader weighs them


def _ablation_rows(rows: list[dict], modes: dict[str, dict], splits: Sequence[str]) -> list[dict]:
    """Per AudioBERT checkpoint, task and ablation split: accuracy [CI] (and seen / unseen accuracy) of each control:
    the text twin, the caption twin (retrieved and item-clips-excluded captions) and the checkpoint with retrieved,
    excluded, oracle and shuffled audio."""
    by = {(r["model"], r["task"], r["split"]): r for r in rows}
    out = []
    for name, m in modes.items():
        if m.get("variant_of") or m["mode"] != "audiobert" or not m["checkpoint"]:
            continue
        twin, captions = text_twin(name, modes), twin_of(name, modes, "captions")
        for (model, task, split), r in by.items():
            if model != name or split not in splits:
                continue
            cols = {"text twin": twin, "caption twin": captions,
                    "caption twin · excluded": variant_name(captions, "excluded") if captions else None,
                    **{f"{src} audio": (name if src == "retrieved" else variant_name(name, src)) for src in AUDIO_SOURCES}}
            cell = {k: ({f: by[(v, task, split)][f] for f in ("accuracy", "accuracy_seen", "accuracy_unseen", "n_seen", "n_unseen")}
                        | {"ci": by[(v, task, split)]["accuracy_ci"]} if (v, task, split) in by else None) for k, v in cols.items()}
            out.append({"model": name, "task": task, "split": split, "n": r["n"], "units": r.get("units", {}),
                        "too_few_units": bool(r.get("too_few_units")), **cell})
    return out


def compared_pairs(modes: dict[str, dict]) -> list[tuple[str, str]]:
    """(model, baseline) pairs tested on the same items: every checkpoint and baseline against the text twin, and
    each AudioBERT run against the caption twin given the same hits (retrieved with retrieved, excluded with excluded)."""
    out = []
    for name, m in modes.items():
        twin = text_twin(name, modes)
        if twin is not None and not m.get("variant_of"):
            out.append((name, twin))
        base = m.get("variant_of", name)
        captions = twin_of(base, modes, "captions") if m["mode"] == "audiobert" and m["checkpoint"] else None
        src = m.get("audio", "retrieved")
        if captions and src in ("retrieved", "excluded"):
            other = captions if src == "retrieved" else variant_name(captions, "excluded")
            if other in modes:
                out.append((name, other))
    return out


def twin_of(name: str, modes: dict[str, dict], mode: str) -> str | None:
    """The checkpoint of `mode` (text, captions) a model is paired against: one of the same LM when there is one,
    else the first; None for such a checkpoint itself (and when there is none)."""
    if modes[name]["checkpoint"] and modes[name]["mode"] == mode:
        return None
    found = [n for n, m in modes.items() if m["checkpoint"] and m["mode"] == mode and not m.get("variant_of")]
    same = [n for n in found if modes[n]["lm"] == modes[name]["lm"]]
    return (same or found or [None])[0]


def text_twin(name: str, modes: dict[str, dict]) -> str | None:
    """The text-only checkpoint a model is paired against (twin_of with mode text); None for text-only checkpoints."""
    if modes[name]["checkpoint"] and modes[name]["mode"] == "text":
        return None
    return twin_of(name, modes, "text")


def _nan(x):
    return None if isinstance(x, float) and math.isnan(x) else str(x)


def _isnan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _fmt_acc(v) -> str:
    return "–" if _isnan(v) else f"{v:.3f}"


def fmt_units(counts: dict) -> str:
    """"12 sources, 40 words, 180 clips": the distinct units of each kind (`benchmark.metrics.count_units`)."""
    order = {"source": 0, "word": 1, "clip": 2, "group": 3}
    return ", ".join(f"{v} {k}s" for k, v in sorted(counts.items(), key=lambda kv: (order.get(kv[0], 9), kv[0])))


def fmt_ci(v, ci, few: bool = False) -> str:
    """"0.717 [0.650, 0.790]"; "0.460 (too few units)" when the interval was not computed for that reason."""
    if _isnan(v):
        return "–"
    if few:
        return f"{v:.3f} (too few units)"
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and not _isnan(ci[0]) else f"{v:.3f}"


def fmt_p(p) -> str:
    """A p-value to 2 significant digits; a bootstrap p is never 0 (its floor is 2 / (B + 1))."""
    if _isnan(p):
        return "–"
    return f"{p:.2g}" if p < 0.01 else f"{p:.3f}"


def uncertainty_legend(unc: dict) -> list[str]:
    """What the brackets, units and p-values of every table mean (one paragraph)."""
    if not unc:
        return []
    b = unc["n_boot"]
    return [f"Brackets: {unc['ci_level']:.0%} interval of a multiway bootstrap ({b} resamples): sources, sound words "
            "and clips are each resampled with replacement, and an item counts with the product of its units' "
            "multiplicities, so items that share a source or a clip rise and fall together. *units*: the distinct "
            f"units of each kind; where a kind has fewer than {unc.get('min_units', MIN_UNITS)}, the bootstrap cannot "
            "show the uncertainty and the table says *too few units* instead of an interval. A bootstrap p is never 0: "
            f"its floor is 2 / ({b} + 1) = {2 / (b + 1):.2g}. McNemar's exact p treats items as independent and is "
            "shown beside it, not instead of it.", ""]


def render_table(results: dict) -> str:
    """Markdown: one row per model, task and split, each metric with its 95 % interval and the row's units; then
    each model against its text-only twin; then the ablation."""
    rel = results["release"]
    ms = results["metrics"]
    lines = [f"# Results on {rel['name']}-{rel['version']} (seed {results['seed']})", ""]
    lines += uncertainty_legend(results.get("uncertainty", {}))
    if results.get("max_items"):
        lines += [f"**Subsample**: at most {results['max_items']} items per task and split (a fixed hash-chosen subset); "
                  "`n of N` below. Whole-split figures need `--max-items 0`.", ""]
    lines.append("| model | task | split | n | units | " + " | ".join(ms) + " |")
    lines.append("|---|---|---|---:|---|" + "---:|" * len(ms))
    for r in results["rows"]:
        n = f"{r['n']} of {r['n_total']}" if r.get("n_total", r["n"]) != r["n"] else str(r["n"])
        few = bool(r.get("too_few_units"))
        lines.append(f"| {r['model']} | {r['task']} | {r['split']} | {n} | {fmt_units(r.get('units', {}))} | "
                     + " | ".join(fmt_ci(r.get(m), r.get(f"{m}_ci"), few) for m in ms) + " |")
    comps = results.get("comparisons") or []
    if comps:
        lines += ["", "## Paired comparisons (same items, same resamples): against the text twin, and AudioBERT against the caption twin", "",
                  "| model | vs | task | split | metric | n | units | difference | 95 % CI | p (bootstrap over units) "
                  "| p (McNemar, items as independent) |",
                  "|---|---|---|---|---|---:|---|---:|---:|---:|---:|"]
        for c in comps:
            if c.get("too_few_units"):
                ci = "too few units"
            else:
                ci = "–" if _isnan(c["ci_low"]) else f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]"
            diff = "–" if _isnan(c["diff"]) else f"{c['diff']:+.3f}"
            lines.append(f"| {c['model']} | {c['baseline']} | {c['task']} | {c['split']} | {c['metric']} | {c['n']} | "
                         f"{fmt_units(c.get('units', {}))} | {diff} | {ci} | {fmt_p(c['p'])} | {fmt_p(c.get('mcnemar_p'))} |")
    abl = results.get("ablation") or []
    if abl:
        cols = [c for c in CONTROLS if any(a.get(c) for a in abl)]
        lines += ["", "## Controls: what the audio carries beyond the captions that found it (accuracy, 95 % CI)", "",
                  "| model | task | split | n | units | " + " | ".join(cols) + " |", "|---|---|---|---:|---|" + "---:|" * len(cols)]
        for a in abl:
            few = bool(a.get("too_few_units"))
            lines.append(f"| {a['model']} | {a['task']} | {a['split']} | {a['n']} | {fmt_units(a.get('units', {}))} | "
                         + " | ".join(fmt_ci(a[c]["accuracy"], a[c]["ci"], few) if a.get(c) else "–" for c in cols) + " |")
        # results written before the seen/unseen split carry no n_seen: their table has no such rows
        by_answer = [a for a in abl if "n_seen" in next(a[c] for c in cols if a.get(c))]
        if by_answer:
            lines += ["", "Split by the answer: seen (a train answer of the task) / unseen (never a train answer; only what "
                      "the model is given can name it). Accuracy, with n:", "",
                      "| model | task | split | n seen / unseen | " + " | ".join(cols) + " |", "|---|---|---|---:|" + "---:|" * len(cols)]
        for a in by_answer:
            first = next(a[c] for c in cols if a.get(c))
            lines.append(f"| {a['model']} | {a['task']} | {a['split']} | {first['n_seen']} / {first['n_unseen']} | "
                         + " | ".join(f"{_fmt_acc(a[c]['accuracy_seen'])} / {_fmt_acc(a[c]['accuracy_unseen'])}" if a.get(c) else "–"
                                      for c in cols) + " |")
        lines += ["", "Caption twin ≈ retrieved audio: the gain is what retrieval's captions say, not what the audio says. "
                  "Excluded ≪ retrieved: the gain came from finding the item's own clips (or its group's). Oracle ≫ "
                  "retrieved: retrieval is the bottleneck. Shuffled ≈ retrieved: the model does not use what the audio says."]
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
