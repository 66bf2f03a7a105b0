"""One comparison, several training seeds: mean ± sd per cell, each seed's paired difference, and the
seed-averaged difference with an interval that includes the seeds' spread.

    python -m models.seeds build/demo/seeds/seed-0 build/demo/seeds/seed-1 build/demo/seeds/seed-2 --out build/demo/seeds

Each run folder holds what `models.eval.evaluate` wrote for one training seed (results.json, predictions.jsonl), on
the same release and the same evaluation seed. Generic over what was compared: every (model, task, split) row the
runs share gets mean ± sd of each metric; every pairing the runs share (results.json `comparisons`: a model against
its baseline) gets each seed's difference with its own interval, and the seed-averaged difference
(`benchmark.metrics.seed_averaged_difference`: the multiway bootstrap over the items' units, every seed under the
same resamples, plus the seeds' variance, t at Welch–Satterthwaite degrees of freedom). Writes seeds.json and
seeds.md and returns the summary.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Sequence

from benchmark.metrics import MIN_UNITS, N_BOOT, item_units, seed_averaged_difference

__all__ = ["summarise_seeds", "render_seeds", "main"]


def _load(run: Path) -> tuple[dict, dict]:
    res = json.loads((run / "results.json").read_text(encoding="utf-8"))
    preds = {}
    with open(run / "predictions.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            preds[(r["model"], r["task"], r["split"])] = dict(zip(r["ids"], r["pred"]))
    return res, preds


def _seed_of(res: dict, run: Path) -> int | str:
    """The training seed of a run's checkpoints ("0/1" when they differ; the folder's name when none says)."""
    seeds = sorted({m.get("seed") for m in (res.get("models") or {}).values() if m.get("seed") is not None})
    return (seeds[0] if len(seeds) == 1 else "/".join(map(str, seeds))) if seeds else run.name


def summarise_seeds(runs: Sequence[str | Path], out_dir: str | Path | None = None, n_boot: int = N_BOOT) -> dict:
    """The runs' summary (see the module docstring); with out_dir, also seeds.json and seeds.md there."""
    from benchmark.release_io import load_release
    from models._io import atomic_write_text
    from models.data import task_items

    runs = [Path(r) for r in runs]
    loaded = [_load(r) for r in runs]
    first = loaded[0][0]
    releases = {(r["release"]["name"], r["release"]["version"]) for r, _ in loaded}
    if len(releases) != 1:
        raise ValueError(f"seeds: the runs evaluate different releases {sorted(releases)}: nothing to average")
    seeds = [_seed_of(r, p) for (r, _), p in zip(loaded, runs)]
    release = load_release(first["release"]["path"])
    eval_seed = first.get("seed", 0)

    cells = []
    keys = [(r["model"], r["task"], r["split"]) for r in first["rows"]]
    metrics = first["metrics"]
    for key in keys:
        rows = [next((r for r in res["rows"] if (r["model"], r["task"], r["split"]) == key), None) for res, _ in loaded]
        if any(r is None for r in rows):
            continue
        cell = {"model": key[0], "task": key[1], "split": key[2], "n": rows[0]["n"], "units": rows[0].get("units", {})}
        for m in metrics:
            vals = [r.get(m) for r in rows]
            if all(v is not None and not math.isnan(v) for v in vals):
                cell[m] = {"per_seed": vals, "mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else math.nan}
        cells.append(cell)

    items_of: dict[tuple[str, str], list[dict]] = {}
    diffs = []
    for c in first.get("comparisons") or []:
        if c["metric"] != "accuracy":
            continue
        key = (c["model"], c["baseline"], c["task"], c["split"])
        per = [next((x for x in res.get("comparisons") or [] if (x["model"], x["baseline"], x["task"], x["split"]) == key
                     and x["metric"] == "accuracy"), None) for res, _ in loaded]
        pa = [p.get((c["model"], c["task"], c["split"])) for _, p in loaded]
        pb = [p.get((c["baseline"], c["task"], c["split"])) for _, p in loaded]
        if any(x is None for x in per + pa + pb):
            continue
        if (c["task"], c["split"]) not in items_of:
            items_of[(c["task"], c["split"])] = task_items(release, [c["task"]], c["split"])
        ids = list(pa[0])  # the scored items (a fixed subset when eval.max_items): the same in every run
        by_id = {it["id"]: it for it in items_of[(c["task"], c["split"])]}
        items = [by_id[i] for i in ids]
        kind = release.kind(c["task"])
        avg = seed_averaged_difference([it["answer"] for it in items], [[p[i] for i in ids] for p in pa],
                                       [[p[i] for i in ids] for p in pb], "accuracy",
                                       [item_units(it, kind) for it in items], n_boot=n_boot, seed=eval_seed)
        diffs.append({"model": c["model"], "baseline": c["baseline"], "task": c["task"], "split": c["split"],
                      "per_seed": [{"diff": x["diff"], "ci_low": x["ci_low"], "ci_high": x["ci_high"], "p": x["p"]} for x in per],
                      **{k: avg[k] for k in ("diff", "sd_seed", "ci_low", "ci_high", "n", "units", "too_few_units")},
                      "df": avg.get("df")})
    summary = {"release": first["release"], "seeds": seeds, "eval_seed": eval_seed, "metrics": metrics, "cells": cells,
               "differences": diffs, "n_boot": n_boot, "min_units": MIN_UNITS, "runs": [str(r) for r in runs]}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "seeds.json", json.dumps(summary, indent=2, sort_keys=True, default=_nan) + "\n")
        atomic_write_text(out / "seeds.md", render_seeds(summary))
    return summary


def _nan(x):
    return None if isinstance(x, float) and math.isnan(x) else str(x)


def _pm(m: dict | None) -> str:
    if not m:
        return "–"
    return f"{m['mean']:.3f} ± {m['sd']:.3f}" if not math.isnan(m["sd"]) else f"{m['mean']:.3f}"


def _ci(lo, hi, few: bool = False) -> str:
    if few:
        return "too few units"
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return "–"
    return f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"


def render_seeds(s: dict) -> str:
    """Markdown: mean ± sd per cell over the seeds; then each pairing: every seed's difference (points) with its
    interval, and the seed-averaged difference with the interval that includes the seeds' spread."""
    from models.eval import fmt_units

    rel = s["release"]
    seeds = s["seeds"]
    lines = [f"# {len(seeds)} training seeds on {rel['name']}-{rel['version']} (seeds {', '.join(map(str, seeds))}; "
             f"evaluation seed {s['eval_seed']})", "",
             "Mean ± sd over the seeds (sd: the spread between seeds, n − 1 in the denominator).", "",
             "| model | task | split | n | units | " + " | ".join(s["metrics"]) + " |",
             "|---|---|---|---:|---|" + "---:|" * len(s["metrics"])]
    for c in s["cells"]:
        lines.append(f"| {c['model']} | {c['task']} | {c['split']} | {c['n']} | {fmt_units(c['units'])} | "
                     + " | ".join(_pm(c.get(m)) for m in s["metrics"]) + " |")
    if s["differences"]:
        head = " | ".join(f"seed {x}" for x in seeds)
        lines += ["", "## Paired differences (accuracy points, model − baseline, same items)", "",
                  "Each seed: its difference and 95 % multiway-bootstrap interval. **Seed-averaged**: the mean of the "
                  "seeds' differences; its 95 % interval adds the bootstrap variance over the items' units (every seed "
                  "under the same resamples) and the seeds' variance / number of seeds, with t at the "
                  "Welch–Satterthwaite degrees of freedom — a few seeds that disagree widen it.", "",
                  f"| model | vs | task | split | n | units | {head} | sd over seeds | **seed-averaged** | 95 % CI |",
                  "|---|---|---|---|---:|---|" + "---:|" * len(seeds) + "---:|---:|---:|"]
        for d in s["differences"]:
            per = " | ".join(f"{100 * x['diff']:+.1f} {_ci(x['ci_low'], x['ci_high'], d['too_few_units'])}" for x in d["per_seed"])
            sd = "–" if d["sd_seed"] is None or math.isnan(d["sd_seed"]) else f"{100 * d['sd_seed']:.1f}"
            lines.append(f"| {d['model']} | {d['baseline']} | {d['task']} | {d['split']} | {d['n']} | {fmt_units(d['units'])} | "
                         f"{per} | {sd} | **{100 * d['diff']:+.1f}** | {_ci(d['ci_low'], d['ci_high'], d['too_few_units'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.seeds", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="folders each holding results.json and predictions.jsonl of one training seed")
    ap.add_argument("--out", required=True, help="where seeds.json and seeds.md go")
    args = ap.parse_args(argv)
    summary = summarise_seeds(args.runs, args.out)
    print(render_seeds(summary), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
