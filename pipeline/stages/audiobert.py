"""The audiobert stage: AudioBERT, trained on the corpus's release with the span_detector stage's detector (models.train).

Training resumes from its last state in the checkpoint folder when it was killed; the manifest is written last."""

from __future__ import annotations

__all__ = ["run", "train_stage"]


def train_stage(ctx, name: str, mode: str) -> dict:
    """Train `mode` (audiobert | text | captions) on ctx's release into build/<corpus id>/<name>/, reusing the detector
    stage's span detector; return the manifest."""
    from models.config import RunOptions, TrainConfig
    from models.train import train

    detector = ctx.input_paths(name)["detector"].parent / "detector"  # the span_detector stage's folder
    params = {**ctx.section("train"), "mode": mode, "detector_dir": str(detector)}
    run = ctx.open_stage(name, params)
    if run.fresh():
        return run.previous() or {}
    config = TrainConfig.from_params(params)
    options = RunOptions.from_params({**params, "resume_key": run.code_version()})  # a state of other code is not resumed
    train(ctx.release_dir(), config, run.out_dir, options, quiet=ctx.quiet)
    run.record_output("config.json")
    return run.finish({"kept": 1}, extra={"release": ctx.release_dir().name, "config_key": config.key()})


def run(ctx) -> dict:
    return train_stage(ctx, "audiobert", "audiobert")
