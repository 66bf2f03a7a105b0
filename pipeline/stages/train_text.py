"""The train_text stage: AudioBERT's text-only twin (same LM and LoRA gate, no audio), reusing train's span detector."""

from __future__ import annotations

from pipeline.stages.train import train_stage

__all__ = ["run"]


def run(ctx) -> dict:
    return train_stage(ctx, "train_text", "text", detector_dir=str(ctx.stage_dir("train") / "detector"))
