"""Choose on dev: train a recipe and its variants on a release, score each on the dev split, pick by dev accuracy.

    sweep(release, TrainConfig.demo(), VARIANTS, out_dir) -> {"rows": [...], "chosen": name}   (+ sweep.md, sweep.json)

Each variant is the base recipe with one setting changed (by default: each addition of the demo recipe taken away in
turn). Every variant's AudioBERT and the text twin are scored on the dev split only; the test split is never read
here. The table is "what moved what", on dev; `make sweep` writes it for the demo release.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

from models.config import RunOptions, TrainConfig

__all__ = ["sweep", "VARIANTS", "render_sweep"]

# name -> the settings changed from the base recipe (each addition of the demo recipe taken away in turn)
VARIANTS: dict[str, dict] = {
    "the recipe": {},
    "add instead of insert": {"injection": "add", "audio_gate_init": 0.5},
    "no span slots": {"span_slots": 0},
    "no swapped pairs": {"swap_pairs": 0.0},
    "no name dropout": {"name_dropout": 0.0},
    "no alignment": {"align_steps": 0},
    "no copy": {"audio_copy": False},
    "no re-ranking": {"rerank": 0},
    "re-rank 20": {"rerank": 20},
}


def sweep(release: str | Path, base: TrainConfig, variants: dict[str, dict], out_dir: str | Path,
          options: RunOptions | None = None, quiet: bool = True, workers: int = 1) -> dict:
    """Train every variant (and the text twin once) on the release, score them on its dev split; write sweep.json and
    sweep.md under out_dir; return {"rows", "chosen"} (chosen: the best mean dev accuracy over tasks). workers > 1
    trains that many variants at once, each in its own process (the same rows as one process)."""
    from models.eval import evaluate
    from models.train import train

    out = Path(out_dir)
    options = options or RunOptions()
    twin = train(release, replace(base, mode="text"), out / "text_twin", options, quiet=quiet)
    twin_res = evaluate(release, [twin], out / "eval_text_twin", splits=("dev",), seed=base.seed, quiet=quiet)
    twin_acc = {r["task"]: r["accuracy"] for r in twin_res["rows"]}
    detector = replace(options, detector_dir=str(twin / "detector"))
    jobs = [(str(release), replace(base, **change), out / name.replace(" ", "_"), detector, quiet) for name, change in variants.items()]
    if workers > 1 and len(jobs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
            accs = list(pool.map(_dev_accuracy, jobs))
    else:
        accs = [_dev_accuracy(job) for job in jobs]
    rows = [{"variant": name, "change": change, "dev": acc, "mean": sum(acc.values()) / max(1, len(acc))}
            for (name, change), acc in zip(variants.items(), accs)]
    chosen = max(rows, key=lambda r: (r["mean"], -list(variants).index(r["variant"])))["variant"]
    result = {"release": str(release), "seed": base.seed, "text_twin_dev": twin_acc, "rows": rows, "chosen": chosen}
    (out / "sweep.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "sweep.md").write_text(render_sweep(result), encoding="utf-8")
    return result


def _dev_accuracy(job: tuple) -> dict[str, float]:
    """Train one variant into its folder and score it on dev: task -> accuracy (a worker process's job in `sweep`)."""
    from models.eval import evaluate
    from models.train import train

    release, config, folder, options, quiet = job
    ckpt = train(release, config, folder, options, quiet=quiet)
    res = evaluate(release, [ckpt], folder / "eval", splits=("dev",), seed=config.seed, quiet=quiet)
    return {r["task"]: r["accuracy"] for r in res["rows"]}


def render_sweep(result: dict) -> str:
    tasks = sorted(result["text_twin_dev"])
    lines = [f"# What moved what, on dev (seed {result['seed']}; {result['release']})", "",
             "| variant | " + " | ".join(tasks) + " | mean |", "|---|" + "---:|" * (len(tasks) + 1)]
    fmt = lambda v: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"  # noqa: E731
    twin = result["text_twin_dev"]
    lines.append("| text twin | " + " | ".join(fmt(twin.get(t)) for t in tasks) + f" | {fmt(sum(twin.values()) / max(1, len(twin)))} |")
    for r in result["rows"]:
        mark = " (**chosen**)" if r["variant"] == result["chosen"] else ""
        lines.append(f"| {r['variant']}{mark} | " + " | ".join(fmt(r["dev"].get(t)) for t in tasks) + f" | {fmt(r['mean'])} |")
    return "\n".join(lines) + "\n"
