"""Inference: reload a checkpoint written by `models.train.train` and score the items of a task with it.

    load_checkpoint(ckpt_dir) -> TrainedModel;  TrainedModel.score(items, choices) -> float[n_items, n_choices]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from benchmark.errors import ConfigError, ModelLoadError
from models.config import TrainConfig
from models.data import AUDIO_SOURCES, oracle_span_audio, pad_audio, retrieve_span_audio, shuffled_span_audio

__all__ = ["TrainedModel", "load_checkpoint", "check_index_models", "build_model", "autocast", "audio_token", "reranker"]


class TrainedModel:
    """An AudioBERT checkpoint with its detector, tokenizer and audio index: scores items of a task."""

    def __init__(self, model, tokenizer, detector, index, config: TrainConfig, meta: dict):
        self.model, self.tokenizer, self.detector, self.index = model, tokenizer, detector, index
        self.config, self.meta = config, meta
        self.span_cache: dict = {}  # (detector digest, sentence) -> spans; evaluate shares one across models
        self._detector_key = _file_digest(meta.get("_dir", ""), "detector/span_detector.pt")
        self._reranker = None  # made on first use (retrieval with `rerank`)

    @property
    def name(self) -> str:
        return self.meta.get("name", "audiobert")

    def spans_for(self, items: Sequence[dict]) -> list[list[str]]:
        if self.config.eval_spans == "gold" or self.detector is None:
            return [it["spans"] for it in items]
        todo = sorted({it["sentence"] for it in items if (self._detector_key, it["sentence"]) not in self.span_cache})
        for sent, sp in zip(todo, self.detector.predict(todo)):
            self.span_cache[(self._detector_key, sent)] = sp
        return [list(self.span_cache[(self._detector_key, it["sentence"])]) for it in items]

    @torch.no_grad()
    def score(self, items: Sequence[dict], choices: Sequence[str], batch_size: int = 32, audio_source: str = "retrieved") -> np.ndarray:
        """float[n_items, n_choices]. audio_source (AudioBERT only): retrieved (the system), oracle (each span gets
        its item's own clip, with the item's gold spans), shuffled (random clips)."""
        from models.audiobert import score_choices

        self.model.eval()
        dev = self.config.device
        spans = [it["spans"] for it in items] if audio_source == "oracle" else self.spans_for(items)
        audio = None
        if self.config.mode == "audiobert" and self.index is not None:
            if audio_source == "retrieved":
                if self.config.rerank and self._reranker is None:
                    self._reranker = reranker(self.config)
                audio, _ = retrieve_span_audio(self.index, spans, self.config.retrieval_k, self.config.rerank, self._reranker)
            elif audio_source == "oracle":
                audio = oracle_span_audio(self.index, spans, [it.get("clip_ids", []) for it in items])
            elif audio_source == "shuffled":
                audio = shuffled_span_audio(self.index, spans, seed=self.config.seed)
            else:
                raise ConfigError(f"audio_source {audio_source!r}: expected one of {', '.join(AUDIO_SOURCES)}")
        dim = self.index.inject_dim if self.index is not None else 1

        def audio_fn(idx, batch):
            return None if audio is None else pad_audio([audio[i] for i in idx], dim).to(dev)

        with autocast(self.config):
            return score_choices(
                self.model.mask_logits, self.tokenizer, [it["sentence"] for it in items], spans, choices,
                audio_fn=audio_fn, batch_size=batch_size, max_length=self.config.max_length, device=dev,
                audio_token=audio_token(self.config, self.tokenizer),
            )


def _file_digest(root: str, rel: str) -> str:
    from benchmark.hashing import sha256_file

    p = Path(root) / rel
    return sha256_file(p) if root and p.exists() else f"unhashed:{root}"


def reranker(config: TrainConfig):
    """The caption re-ranker of retrieval hits when config.rerank > 0, else None."""
    from models.rerank import CaptionReranker

    return CaptionReranker(config.rerank_encoder, device=config.device) if config.rerank else None


def audio_token(config: TrainConfig, tokenizer) -> str | None:
    """The token put in front of each span for `insert` injection (the tokenizer's unknown token, whose embedding the
    audio replaces); None for the other injections and for the text twin."""
    return tokenizer.unk_token if config.mode == "audiobert" and config.injection == "insert" else None


def autocast(config: TrainConfig):
    import contextlib

    if config.device.startswith("cuda") and config.amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build_model(config: TrainConfig, inject_dim: int):
    from models.audiobert import AudioBERT, AudioBertConfig
    from models.loading import load_masked_lm, load_tokenizer

    tok = load_tokenizer(config.lm, need_mask=True)
    mlm, head_is_new = load_masked_lm(config.lm, allow_new_head=True)
    bcfg = AudioBertConfig(
        lm=config.lm, inject_audio=config.mode == "audiobert", injection=config.injection, inject_dim=inject_dim,
        lora_r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout, lora_targets=config.lora_targets,
        gate_init=config.audio_gate_init, span_slots=config.span_slots, audio_copy=config.audio_copy,
    )
    torch.manual_seed(config.seed)
    model = AudioBERT(mlm, bcfg, train_head=head_is_new)
    return model, tok, head_is_new


def load_checkpoint(ckpt_dir: str | Path, device: str = "cpu", release=None, index_dir: str | Path | None = None) -> TrainedModel:
    """Reload a checkpoint written by `train` (the base LM is loaded by the name in its config).

    An AudioBERT checkpoint retrieves from `index_dir` when given, else the release's audio_index/, else the index
    it was trained with; an index whose embedding models differ from the training index's is refused."""
    from models.retrieval import AudioIndex
    from models.span_detector import SpanDetector

    d = Path(ckpt_dir)
    try:
        meta = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{d}: not a training checkpoint ({type(e).__name__})") from e
    config = TrainConfig.from_dict(meta["config"])
    config.device = device
    meta["_dir"] = str(d)
    model, tok, _ = build_model(config, meta["inject_dim"])
    model.load_trainable_state(torch.load(d / "model.pt", map_location="cpu", weights_only=True))
    model.to(device).eval()
    detector = SpanDetector.load(d / "detector", device=device) if (d / "detector").is_dir() else None
    index = None
    if config.mode == "audiobert":
        idx_dir = Path(meta.get("index_dir") or "")
        if index_dir:
            idx_dir = Path(index_dir)
        elif release is not None and release.audio_index_dir is not None:
            idx_dir = release.audio_index_dir
        if not idx_dir.is_dir():
            raise ModelLoadError(f"{d}: its audio index {idx_dir} is missing (give one with --index)")
        index = AudioIndex.load(idx_dir)
        check_index_models(meta.get("index_models") or {}, index.models, f"{d}: index {idx_dir}")
        if index.inject_dim != meta["inject_dim"]:
            raise ModelLoadError(f"{d}: index {idx_dir} injects {index.inject_dim}-d audio; the checkpoint was trained on {meta['inject_dim']}-d")
    return TrainedModel(model, tok, detector, index, config, meta)


def check_index_models(trained: dict, given: dict, where: str) -> None:
    """Raise ModelLoadError when an index was embedded by other models than the one a checkpoint was trained with
    (retrieval or injection encoder), naming both; the corpus it covers may differ."""
    for side in ("retrieval", "inject"):
        want, got = trained.get(side), given.get(side)
        if want and got != want:
            raise ModelLoadError(f"{where}: {side} embeddings by {got!r}, but the checkpoint was trained with {want!r}")
