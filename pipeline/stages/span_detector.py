"""The span_detector stage: the span detector, trained once on the release's train split; AudioBERT, the text twin and the
caption twin all read it, so the three train side by side (make -j) after it (models.train.train_detector)."""

from __future__ import annotations

__all__ = ["run"]


def run(ctx) -> dict:
    from benchmark.release_io import load_release
    from models.config import RunOptions, TrainConfig
    from models.train import train_detector

    params = ctx.section("train")
    run = ctx.open_stage("span_detector", params)
    if run.fresh():
        return run.previous() or {}
    config = TrainConfig.from_params(params)
    release = load_release(ctx.release_dir())
    options = RunOptions.from_params({**params, "resume_key": run.code_version()})  # a detector of other code is not kept
    train_detector(release, list(config.tasks) or release.tasks, config, options, run.out_dir, quiet=ctx.quiet)
    run.record_output("detector/span_detector.pt")
    run.record_output("detector/report.json")
    return run.finish({"kept": 1})
