"""The text_twin stage: AudioBERT's text-only twin (same LM and LoRA gate, no audio), reusing train's span detector."""

from __future__ import annotations

from pipeline.stages.audiobert import train_stage

__all__ = ["run"]


def run(ctx) -> dict:
    detector = ctx.input_paths("text_twin")["detector"].parent / "detector"  # in AudioBERT's checkpoint folder
    return train_stage(ctx, "text_twin", "text", detector_dir=str(detector))
