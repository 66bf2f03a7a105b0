"""The text_twin stage: AudioBERT's text-only twin (same LM and LoRA gate, no audio), reading the span_detector stage's detector."""

from __future__ import annotations

from pipeline.stages.audiobert import train_stage

__all__ = ["run"]


def run(ctx) -> dict:
    return train_stage(ctx, "text_twin", "text")
