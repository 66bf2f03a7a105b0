"""How much of a published score do the official data's leaks explain? Train the text-only twin (and AudioBERT,
given an audio index) on the official release and on its leak-free resplit, and score each on its own test set.

    score_resplit(src_dir, version, TrainConfig(...), work_dir) -> {model: {task: {"original test": {...}, "resplit test": {...}}}}

The result goes into the resplit release's manifest and card (`benchmark.official.import_official(resplit_scores=...)`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from models.config import RunOptions, TrainConfig

__all__ = ["score_resplit"]


def score_resplit(src_dir: str | Path, version: str, config: TrainConfig, work_dir: str | Path,
                  options: RunOptions | None = None, quiet: bool = True) -> dict:
    """Import the official CSVs (original + resplit) under work_dir, train text-only (and AudioBERT when
    options.index_dir is set) on each release's train split, evaluate on its test split; accuracy, 95 % interval, n."""
    from benchmark.official import OFFICIAL_NAME, RESPLIT_NAME, import_official
    from models.eval import evaluate
    from models.train import train

    work = Path(work_dir)
    import_official(src_dir, work / "releases", version, resplit=True)
    scores: dict = {}
    for where, name in (("original test", OFFICIAL_NAME), ("resplit test", RESPLIT_NAME)):
        release = work / "releases" / f"{name}-{version}"
        ckpts = []
        options = options or RunOptions()
        if options.index_dir:
            ckpts.append(train(release, replace(config, mode="audiobert"), work / name / "audiobert", options, quiet=quiet))
        # the twin reuses AudioBERT's span detector, as in `make demo`
        det = str(ckpts[0] / "detector") if ckpts else options.detector_dir
        ckpts.append(train(release, replace(config, mode="text"), work / name / "text", replace(options, detector_dir=det), quiet=quiet))
        res = evaluate(release, ckpts, work / name / "eval", splits=("test",), seed=config.seed, quiet=quiet)
        for r in res["rows"]:
            model = "AudioBERT" if r["model"].startswith("AudioBERT") else "text-only"
            few = bool(r.get("too_few_units"))  # no interval below MIN_UNITS of a kind (benchmark.metrics)
            scores.setdefault(model, {}).setdefault(r["task"], {})[where] = {
                "accuracy": round(r["accuracy"], 4), "ci": None if few else [round(x, 4) for x in r["accuracy_ci"]],
                "n": r["n"], "units": r.get("units", {}), "too_few_units": few}
    return scores
