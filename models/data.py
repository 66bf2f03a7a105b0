"""Data for training and inference: a release's items as dicts, the audio retrieved for their spans, padding.

    task_items(release, tasks, split) -> [{id, task, sentence, answer, spans, group_id, clip_ids, span1, span2, description}]
    retrieve_span_audio(index, spans, k) -> (float32[n_spans, inject_dim] per item, hit log)   the system
    oracle_span_audio(index, spans, clip_ids) / shuffled_span_audio(index, spans, seed)         the ablation's controls
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["task_items", "retrieve_span_audio", "oracle_span_audio", "shuffled_span_audio", "pad_audio", "AUDIO_SOURCES"]

AUDIO_SOURCES = ("retrieved", "oracle", "shuffled")  # what an AudioBERT checkpoint injects at eval (the ablation)


def task_items(release, tasks: Sequence[str], split: str) -> list[dict]:
    """Items of the given tasks and split as dicts: id, task, sentence, answer, spans, and what ties items together
    (group_id, clip_ids, span1, span2, description: the units of `benchmark.metrics.item_units`)."""
    rows = []
    for task in tasks:
        df = release.items(task, split)
        for r in df.itertuples(index=False):
            rows.append({"id": r.id, "task": task, "sentence": r.sentence, "answer": str(r.answer), "spans": list(r.spans),
                         "group_id": str(r.group_id), "clip_ids": [str(c) for c in r.clip_ids], "span1": str(r.span1),
                         "span2": str(r.span2), "description": str(r.description)})
    return rows


def retrieve_span_audio(index, spans: Sequence[Sequence[str]], k: int = 1, rerank: int = 0, reranker=None
                        ) -> tuple[list[np.ndarray], list[list[dict]]]:
    """Per item: float32[n_spans, inject_dim] audio of the clip(s) retrieved for each span ("<span> sound"),
    and the hits kept (clip id + similarity). Each distinct span text is queried once. rerank > 0: the first
    `rerank` hits are re-ordered by their captions (`models.rerank.CaptionReranker`, given as reranker)."""
    from models.retrieval import query_text

    uniq = sorted({s for sp in spans for s in sp})
    hits = {}
    if uniq:
        queries = [query_text(s) for s in uniq]
        found = index.search(queries, k=max(k, rerank))
        if rerank:
            found = reranker.rerank(index, queries, found, k)
        hits = dict(zip(uniq, found))
    audio, log = [], []
    for sp in spans:
        vecs, rec = [], []
        for s in sp:
            hs = hits[s]
            w = np.array([max(h.similarity, 0.0) for h in hs]) + 1e-6
            vecs.append((index.inject_embeddings[[h.row for h in hs]] * (w / w.sum())[:, None]).sum(0))
            rec.append({"span": s, "hits": [{"clip_id": h.clip_id, "similarity": round(h.similarity, 4)} for h in hs]})
        audio.append(np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, index.inject_dim), np.float32))
        log.append(rec)
    return audio, log


def oracle_span_audio(index, spans: Sequence[Sequence[str]], clip_ids: Sequence[Sequence[str]]) -> list[np.ndarray]:
    """Per item: float32[n_spans, inject_dim], each span given the item's OWN clip(s) (an upper bound on retrieval).
    A span gets the item's clips whose index caption names a source the span mentions ("<source> sound" lines,
    averaged when several); when none does, the item's clip nearest to the span's query. Zeros for a span whose item
    has no clip in the index."""
    from models.retrieval import query_text

    row_of = {c: i for i, c in enumerate(index.clip_ids)}
    out = []
    for sp, cids in zip(spans, clip_ids):
        rows = [row_of[c] for c in cids if c in row_of]
        vecs = []
        for s in sp:
            if not rows:
                vecs.append(np.zeros(index.inject_dim, np.float32))
                continue
            low = s.lower()
            named = [r for r in rows if any(line.endswith(" sound") and line[: -len(" sound")].strip().lower() in low
                                            for line in index.captions[r].split("\n") if line[: -len(" sound")].strip())]
            if not named:
                q = index.encode_queries([query_text(s)])[0]
                named = [max(rows, key=lambda r: float(index.retrieval_embeddings[r] @ q))]
            vecs.append(index.inject_embeddings[named].mean(0))
        out.append(np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, index.inject_dim), np.float32))
    return out


def shuffled_span_audio(index, spans: Sequence[Sequence[str]], seed: int = 0) -> list[np.ndarray]:
    """Per item: float32[n_spans, inject_dim] of clips drawn at random from the index (seeded): audio that carries
    no information about the span (a control for what the audio path learns)."""
    rng = np.random.default_rng(seed)
    return [index.inject_embeddings[rng.integers(0, len(index), len(sp))].astype(np.float32).reshape(len(sp), index.inject_dim)
            for sp in spans]


def pad_audio(audio: Sequence[np.ndarray], dim: int) -> torch.Tensor:
    s = max([len(a) for a in audio] + [1])
    out = torch.zeros(len(audio), s, dim)
    for i, a in enumerate(audio):
        if len(a):
            out[i, : len(a)] = torch.from_numpy(a)
    return out
