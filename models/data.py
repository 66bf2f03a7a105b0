"""Data for training and inference: a release's items as dicts, the audio retrieved for their spans, padding.

    task_items(release, tasks, split) -> [{id, task, sentence, answer, spans, group_id, clip_ids, span1, span2, description}]
    SpanHits.compute(index, spans, k, rerank)   retrieval + re-ranking, once: span text -> its ranked hits, deep
                                                enough that k remain after an item's own clips are taken out
    SpanHits.audio(index, spans, exclude) -> float32[n_spans, inject_dim] per item        the system (and, with
                                                exclude, the control without the item's own clips)
    oracle_span_audio(index, spans, clip_ids) / shuffled_span_audio(index, spans, seed)   the ablation's controls
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

from benchmark.errors import InputError

__all__ = ["task_items", "groups_clips", "fit_rows", "SpanHits", "rows_text", "own_captions", "oracle_span_audio", "shuffled_span_audio", "pad_audio", "AUDIO_SOURCES", "EXCLUSION_DEPTH"]

# what an AudioBERT checkpoint injects at eval: the system (retrieved), the system without the item's own clips and
# every clip of its group (excluded), each span given its item's own clips (oracle), random clips (shuffled)
AUDIO_SOURCES = ("retrieved", "excluded", "oracle", "shuffled")
EXCLUSION_DEPTH = 64  # hits kept per span beyond k, so that k remain once an item's own clips and its group's are out


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


def groups_clips(release) -> tuple[dict[str, set[str]], set[str]]:
    """(group id -> every clip of every item of that group over all tasks and splits, the groups with a dev, test or
    wiki item)."""
    groups: dict[str, set[str]] = {}
    held_groups: set[str] = set()
    for split in ("train", "dev", "test", "wiki"):
        for it in task_items(release, release.tasks, split):
            groups.setdefault(it["group_id"], set()).update(it["clip_ids"])
            if split != "train":
                held_groups.add(it["group_id"])
    return groups, held_groups


def fit_rows(release, index) -> np.ndarray:
    """The index rows a learned part of a model may fit on: clips of no dev, test or wiki item, nor of any group such
    an item belongs to (train items' clips and clips no item uses). Every clip stays retrievable; this only keeps
    what dev and test captions say out of learned weights."""
    groups, held_groups = groups_clips(release)
    held = set().union(*(groups[g] for g in held_groups)) if held_groups else set()
    return np.array([r for r, c in enumerate(index.clip_ids) if c not in held], dtype=np.int64)


class SpanHits:
    """Retrieval and re-ranking computed once per (index, spans, k, rerank): each distinct span text -> its ranked
    hits (clip id, index row, similarity), k + EXCLUSION_DEPTH deep. Training, every eval variant and the controls
    read it instead of retrieving again."""

    def __init__(self, hits: dict[str, list], k: int):
        self.hits, self.k = hits, k

    @classmethod
    def compute(cls, index, spans: Iterable[str], k: int, rerank: int = 0, device: str = "cpu") -> "SpanHits":
        """Query "<span> sound" for every distinct span; rerank > 0: the first `rerank` hits re-ordered by their
        captions (`models.rerank.CaptionReranker`)."""
        from models.retrieval import query_text

        uniq = sorted(set(spans))
        if not uniq:
            return cls({}, k)
        depth = min(len(index), k + EXCLUSION_DEPTH)
        queries = [query_text(s) for s in uniq]
        found = index.search(queries, k=max(depth, rerank))
        if rerank:
            from models.rerank import CaptionReranker

            found = CaptionReranker(device=device).rerank(index, queries, found, depth)
        return cls(dict(zip(uniq, [list(h[:depth]) for h in found])), k)

    def ranked(self, span: str, exclude: set[str] = frozenset()) -> list:
        """The span's k best hits whose clip is not in exclude; InputError when fewer than k remain."""
        kept = [h for h in self.hits[span] if h.clip_id not in exclude][: self.k]
        if len(kept) < min(self.k, len(self.hits[span])):
            raise InputError(f"span {span!r}: only {len(kept)} of {self.k} hits left once {len(exclude)} clips are "
                             f"excluded (EXCLUSION_DEPTH {EXCLUSION_DEPTH})")
        return kept

    def captions(self, index, spans: Sequence[Sequence[str]], exclude: Sequence[set[str]] | None = None) -> list[str]:
        """Per item, the caption lines of the clips its spans retrieve (the same k hits the audio comes from), each
        line once, in hit order: what retrieval tells a text model (the caption twin's context)."""
        out = []
        for i, sp in enumerate(spans):
            rows = [h.row for s in sp for h in self.ranked(s, exclude[i] if exclude is not None else frozenset())]
            out.append(rows_text(index, rows))
        return out

    def audio(self, index, spans: Sequence[Sequence[str]], exclude: Sequence[set[str]] | None = None
              ) -> tuple[list[np.ndarray], list[list[dict]]]:
        """Per item: float32[n_spans, inject_dim], each span's k best hits (not in the item's exclude set) averaged,
        weighted by similarity, and the hits kept (clip id + similarity)."""
        audio, log = [], []
        for i, sp in enumerate(spans):
            vecs, rec = [], []
            for s in sp:
                hs = self.ranked(s, exclude[i] if exclude is not None else frozenset())
                w = np.array([max(h.similarity, 0.0) for h in hs]) + 1e-6
                vecs.append((index.inject_embeddings[[h.row for h in hs]] * (w / w.sum())[:, None]).sum(0))
                rec.append({"span": s, "hits": [{"clip_id": h.clip_id, "similarity": round(h.similarity, 4)} for h in hs]})
            audio.append(np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, index.inject_dim), np.float32))
            log.append(rec)
        return audio, log


def rows_text(index, rows: Sequence[int]) -> str:
    """The caption lines of these index rows, each distinct line once, in row order, joined by ' ; '."""
    from models.retrieval import caption_texts

    lines = [t for r in rows for t in caption_texts(index.captions[r])]
    return " ; ".join(dict.fromkeys(lines))


def own_captions(index, clip_ids: Sequence[Sequence[str]]) -> list[str]:
    """Per item, the caption lines of its own clips (what name dropout leaves the caption twin)."""
    row_of = {c: i for i, c in enumerate(index.clip_ids)}
    return [rows_text(index, [row_of[c] for c in cids if c in row_of]) for cids in clip_ids]


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
