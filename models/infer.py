"""Inference: reload a checkpoint written by `models.train.train` and score the items of a task with it.

    load_checkpoint(ckpt_dir) -> TrainedModel;  TrainedModel.score(items, choices) -> float[n_items, n_choices]

What an AudioBERT checkpoint is given at eval is an input, not a setting of the model: `audio_source` picks the
retrieved clips (the system), the retrieved clips without the item's own clips and its group's (`excluded`, given the
clips to leave out), the item's own clips (`oracle`) or random clips (`shuffled`). Retrieval and re-ranking are done
once per checkpoint (`models.data.SpanHits`) and read by every variant.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from benchmark.errors import ConfigError, ModelLoadError
from models.audiobert import audio_token, build_model
from models.config import CHECKPOINT_FORMAT, TrainConfig
from models.data import AUDIO_SOURCES, SpanHits, oracle_span_audio, pad_audio, shuffled_span_audio

__all__ = ["TrainedModel", "load_checkpoint", "check_index_models", "autocast"]


class TrainedModel:
    """An AudioBERT checkpoint with its detector, tokenizer and audio index: scores items of a task."""

    def __init__(self, model, tokenizer, detector, index, config: TrainConfig, meta: dict, device: str = "cpu"):
        self.model, self.tokenizer, self.detector, self.index = model, tokenizer, detector, index
        self.config, self.meta, self.device = config, meta, device
        self.span_cache: dict = {}  # (detector digest, sentence) -> spans; evaluate shares one across models
        self._detector_key = _file_digest(meta.get("_dir", ""), "detector/span_detector.pt")
        self._hits: SpanHits | None = None  # retrieval + re-ranking, grown as new spans come

    @property
    def name(self) -> str:
        return self.meta.get("name", "audiobert")

    def spans_for(self, items: Sequence[dict]) -> list[list[str]]:
        """The detector's spans of each item (gold spans only for a checkpoint without a detector)."""
        if self.detector is None:
            return [it["spans"] for it in items]
        todo = sorted({it["sentence"] for it in items if (self._detector_key, it["sentence"]) not in self.span_cache})
        for sent, sp in zip(todo, self.detector.predict(todo)):
            self.span_cache[(self._detector_key, sent)] = sp
        return [list(self.span_cache[(self._detector_key, it["sentence"])]) for it in items]

    def hits(self, spans: Sequence[Sequence[str]]) -> SpanHits:
        """The checkpoint's retrieval table, holding at least these spans (computed once per span)."""
        new = {s for sp in spans for s in sp} - set(self._hits.hits if self._hits else {})
        if new:
            more = SpanHits.compute(self.index, new, self.config.retrieval_k, self.config.rerank, self.device)
            self._hits = SpanHits({**(self._hits.hits if self._hits else {}), **more.hits}, self.config.retrieval_k)
        return self._hits or SpanHits({}, self.config.retrieval_k)

    def variants(self) -> tuple[str, ...]:
        """The audio sources this checkpoint can be scored with: every one for AudioBERT, retrieved and excluded for
        the caption twin (it reads the captions of the same hits), none but the plain run for the text twin."""
        return {"audiobert": AUDIO_SOURCES, "captions": AUDIO_SOURCES[:2]}.get(self.config.mode, AUDIO_SOURCES[:1])

    def context(self, spans: Sequence[Sequence[str]], audio_source: str, exclude: Sequence[set[str]] | None = None) -> list[str] | None:
        """The caption twin's per-item context: the captions of the hits AudioBERT's audio would come from."""
        if self.config.mode != "captions":
            return None
        if audio_source not in AUDIO_SOURCES[:2]:
            raise ConfigError(f"the caption twin reads retrieved captions: audio_source {audio_source!r} does not apply")
        return self.hits(spans).captions(self.index, spans, exclude if audio_source == "excluded" else None)

    def span_audio(self, items: Sequence[dict], spans: Sequence[Sequence[str]], audio_source: str,
                   exclude: Sequence[set[str]] | None = None) -> list[np.ndarray] | None:
        """Per item, float32[n_spans, inject_dim] of what the variant injects; None for the twins."""
        if self.config.mode != "audiobert" or self.index is None:
            return None
        if audio_source == "retrieved":
            return self.hits(spans).audio(self.index, spans)[0]
        if audio_source == "excluded":
            return self.hits(spans).audio(self.index, spans, exclude)[0]
        if audio_source == "oracle":
            return oracle_span_audio(self.index, spans, [it.get("clip_ids", []) for it in items])
        if audio_source == "shuffled":
            return shuffled_span_audio(self.index, spans, seed=self.config.seed)
        raise ConfigError(f"audio_source {audio_source!r}: expected one of {', '.join(AUDIO_SOURCES)}")

    @torch.no_grad()
    def score(self, items: Sequence[dict], choices: Sequence[str], batch_size: int = 32, audio_source: str = "retrieved",
              exclude: Sequence[set[str]] | None = None) -> np.ndarray:
        """float[n_items, n_choices]. audio_source (AudioBERT only): retrieved (the system), excluded (retrieved, but
        never a clip in the item's exclude set), oracle (each span gets its item's own clip, with the gold spans),
        shuffled (random clips)."""
        from models.audiobert import score_choices

        if audio_source == "excluded" and exclude is None:
            raise ConfigError("audio_source 'excluded' needs the clips to exclude per item")
        self.model.eval()
        spans = [it["spans"] for it in items] if audio_source == "oracle" else self.spans_for(items)
        audio = self.span_audio(items, spans, audio_source, exclude)
        contexts = self.context(spans, audio_source, exclude)
        dim = self.index.inject_dim if self.index is not None else 1

        def audio_fn(idx, batch):
            return None if audio is None else pad_audio([audio[i] for i in idx], dim).to(self.device)

        with autocast(self.device):
            return score_choices(
                self.model.mask_logits, self.tokenizer, [it["sentence"] for it in items], spans, choices,
                audio_fn=audio_fn, batch_size=batch_size, max_length=self.config.encoded_length(), device=self.device,
                audio_token=audio_token(self.config, self.tokenizer), contexts=contexts,
            )


def _file_digest(root: str, rel: str) -> str:
    from benchmark.hashing import sha256_file

    p = Path(root) / rel
    return sha256_file(p) if root and p.exists() else f"unhashed:{root}"


def autocast(device: str, amp: bool = True):
    """bf16 autocast on cuda (amp); nothing on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") and amp else contextlib.nullcontext()


def load_checkpoint(ckpt_dir: str | Path, device: str = "cpu", release=None, index_dir: str | Path | None = None) -> TrainedModel:
    """Reload a checkpoint written by `train` (the base LM is loaded by the name in its config).

    An AudioBERT checkpoint retrieves from `index_dir` when given, else the release's audio_index/, else the index
    it was trained with; an index whose embedding models differ from the training index's is refused. A checkpoint of
    another format (written before the compact trainer) is refused with the format it has and how to get a new one."""
    from models.retrieval import AudioIndex
    from models.span_detector import SpanDetector

    d = Path(ckpt_dir)
    try:
        meta = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{d}: not a training checkpoint ({type(e).__name__})") from e
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(f"{d}: checkpoint format {meta.get('format')!r}, this version reads format {CHECKPOINT_FORMAT}; "
                             "retrain it (`auditorybench train`, or rerun the stage that made it)")
    config = TrainConfig.from_dict(meta["config"])
    meta["_dir"] = str(d)
    model, tok, _ = build_model(config, meta["inject_dim"], config.seed)
    model.load_trainable_state(torch.load(d / "model.pt", map_location="cpu", weights_only=True))
    model.to(device).eval()
    detector = SpanDetector.load(d / "detector", device=device) if (d / "detector").is_dir() else None
    index = None
    if config.mode != "text":
        idx_dir = Path(meta.get("index_dir") or "")
        if index_dir:
            idx_dir = Path(index_dir)
        elif release is not None and release.audio_index_dir is not None:
            idx_dir = release.audio_index_dir
        if not idx_dir.is_dir():
            raise ModelLoadError(f"{d}: its audio index {idx_dir} is missing (give one with --index)")
        index = AudioIndex.load(idx_dir)
        check_index_models(meta.get("index_models") or {}, index.models, f"{d}: index {idx_dir}")
        if config.mode == "audiobert" and index.inject_dim != meta["inject_dim"]:
            raise ModelLoadError(f"{d}: index {idx_dir} injects {index.inject_dim}-d audio; the checkpoint was trained on {meta['inject_dim']}-d")
    return TrainedModel(model, tok, detector, index, config, meta, device)


def check_index_models(trained: dict, given: dict, where: str) -> None:
    """Raise ModelLoadError when an index was embedded by other models than the one a checkpoint was trained with
    (retrieval or injection encoder), naming both; the corpus it covers may differ."""
    for side in ("retrieval", "inject"):
        want, got = trained.get(side), given.get(side)
        if want and got != want:
            raise ModelLoadError(f"{where}: {side} embeddings by {got!r}, but the checkpoint was trained with {want!r}")
