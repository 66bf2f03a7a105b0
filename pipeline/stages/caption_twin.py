"""The caption_twin stage: AudioBERT's caption twin — the text twin given the captions of the clips retrieved for its
spans as text after the sentence (same retrieval and re-ranking, no audio) — reading the span_detector stage's detector. Beside
AudioBERT it tells what the audio carries from what the captions that found it say."""

from __future__ import annotations

from pipeline.stages.audiobert import train_stage

__all__ = ["run"]


def run(ctx) -> dict:
    return train_stage(ctx, "caption_twin", "captions")
