"""Audio-to-word alignment: a warm-up of AudioBERT's audio projection before its masked-LM training.

    align_projection(model, index, tokenizer, steps) -> final loss

Each clip of the index comes with its caption. The projection is trained (InfoNCE over minibatches of clips) so that
a clip's projected audio lies nearest to the LM's own input embedding of its caption's words (their mean) among the
clips of the batch: injected audio then starts out looking like the words that describe that sound ("cow", "moo"), a
thing a masked LM can already read, instead of a random direction the adapter must learn to decode from a few
hundred items. Only the projection moves; the LM is untouched.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["caption_word_embeddings", "align_projection"]

_WORD = re.compile(r"[a-z]{3,}")


@torch.no_grad()
def caption_word_embeddings(captions, tokenizer, embeddings: torch.Tensor) -> torch.Tensor:
    """float[n, H]: per caption, the mean input embedding of its distinct words (letters only, 3+ long; a word of
    several word pieces is the mean of its pieces); zeros for a caption without such words."""
    out = torch.zeros(len(captions), embeddings.shape[1])
    cache: dict[str, torch.Tensor] = {}
    for i, cap in enumerate(captions):
        words = sorted(set(_WORD.findall(str(cap).lower())))
        vecs = []
        for w in words:
            if w not in cache:
                ids = tokenizer(w, add_special_tokens=False)["input_ids"]
                cache[w] = embeddings[ids].float().mean(0) if ids else torch.zeros(embeddings.shape[1])
            vecs.append(cache[w])
        if vecs:
            out[i] = torch.stack(vecs).mean(0)
    return out


def align_projection(model, index, tokenizer, steps: int, lr: float = 1e-2, batch: int = 256, temperature: float = 0.07,
                     seed: int = 0, rows=None) -> float:
    """Train model.proj / model.audio_norm for `steps` InfoNCE steps; return the last step's loss (nan for 0 steps).
    rows: the index rows whose captions it may learn from (training: `models.data.fit_rows`, no dev or test clip);
    None: every row."""
    emb = model._mlm.get_input_embeddings().weight.detach()
    allowed = np.arange(len(index)) if rows is None else np.asarray(rows, dtype=np.int64)
    target = torch.zeros(len(index), emb.shape[1])
    target[allowed] = caption_word_embeddings([index.captions[r] for r in allowed], tokenizer, emb)
    keep = torch.nonzero(target.norm(dim=-1) > 0).flatten()
    if steps <= 0 or len(keep) < 2:
        return float("nan")
    target = F.normalize(target[keep] - target[keep].mean(0), dim=-1)  # what all captions share tells no clip apart
    audio = torch.from_numpy(np.asarray(index.inject_embeddings, dtype=np.float32))[keep]
    params = list(model.proj.parameters()) + list(model.audio_norm.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    g = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        rows = torch.randperm(len(keep), generator=g)[:batch]
        v = F.normalize(model.project_audio(audio[rows].to(dev)), dim=-1)
        logits = v @ target[rows].to(dev).T / temperature
        y = torch.arange(len(rows), device=dev)
        loss = (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())
