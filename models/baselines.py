"""Text-only baselines, any hub id or local path.

- `MaskedLMBaseline`: a masked LM ranks all of a task's answers at [MASK]; an answer of n word pieces gets n
  [MASK]s and is scored by the mean log-probability of its pieces (`models.audiobert.score_choices`).
- `CausalLMBaseline`: a causal LM scores each filled sentence by its total log-likelihood: every token of the
  sentence, the first included, given the model's BOS (else its end-of-text token), as lm-evaluation-harness
  scores a continuation of an empty context. `score` runs the tokens the filled sentences share (before the answer)
  once per item and reuses their key/value cache for every choice; `loglik` runs each whole sentence (the reference).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from benchmark.errors import ModelLoadError

from benchmark.schema import MASK

__all__ = ["MaskedLMBaseline", "CausalLMBaseline", "fill_sentence", "prefix_token_id", "shared_prefix_len"]


def fill_sentence(sentence: str, answer: str) -> str:
    return sentence.replace(MASK, answer, 1)


class MaskedLMBaseline:
    """A pretrained masked LM with its own head (a head-less checkpoint is refused: its scores would be noise)."""

    def __init__(self, name: str, device: str = "cpu", model=None, tokenizer=None, max_length: int = 128):
        from models.loading import load_masked_lm, load_tokenizer

        self.name = f"mlm:{name}"
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(name, need_mask=True)
        self.model = (model if model is not None else load_masked_lm(name, allow_new_head=False)[0]).to(device).eval()
        self.device, self.max_length = device, max_length

    def _logits(self, batch, audio=None) -> torch.Tensor:
        out = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        idx = batch.mask_pos.clamp(min=0)
        return torch.gather(out, 1, idx.unsqueeze(-1).expand(-1, -1, out.shape[-1]))

    @torch.no_grad()
    def score(self, items: Sequence[dict], choices: Sequence[str], batch_size: int = 32) -> np.ndarray:
        from models.audiobert import score_choices

        return score_choices(
            self._logits, self.tokenizer, [it["sentence"] for it in items], [[] for _ in items], choices,
            batch_size=batch_size, max_length=self.max_length, device=self.device,
        )


def prefix_token_id(tokenizer) -> int:
    """The token a sentence is scored after: BOS, else end-of-text (lm-evaluation-harness's `prefix_token_id`), else
    [CLS]; so the sentence's first token is scored too (an answer-first sentence's answer included)."""
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id, getattr(tokenizer, "cls_token_id", None)):
        if tid is not None:
            return int(tid)
    raise ModelLoadError(f"{getattr(tokenizer, 'name_or_path', 'tokenizer')}: no BOS, end-of-text or [CLS] token to score a sentence's first token after")


def shared_prefix_len(ids: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token id lists, leaving every list at least one token past it."""
    n = min(len(x) for x in ids) - 1
    first = ids[0]
    for k in range(n):
        if any(x[k] != first[k] for x in ids[1:]):
            return k
    return max(n, 0)


class CausalLMBaseline:
    """A causal LM (a GGUF file is dequantised by transformers): log-likelihood of each filled sentence, its first
    token given BOS."""

    def __init__(self, name: str, device: str = "cpu", model=None, tokenizer=None):
        from models.loading import load_causal_lm, load_tokenizer

        self.name = f"causal:{name}"
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(name)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.prefix_id = prefix_token_id(self.tokenizer)
        self.model = (model if model is not None else load_causal_lm(name)).to(device).eval()
        self.device = device

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, after the prefix token (the tokenizer's own special tokens left out)."""
        enc = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [[self.prefix_id, *ids] for ids in enc]

    @torch.inference_mode()
    def loglik(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """float[n]: sum of log p(token_t | tokens_<t) over every token of each text (the first given the prefix
        token), each whole text run through the model: the reference path."""
        ids = self.encode(texts)
        out = np.zeros(len(ids))
        pad = self.tokenizer.pad_token_id
        for s in range(0, len(ids), batch_size):
            chunk = ids[s : s + batch_size]
            width = max(len(x) for x in chunk)
            inp = torch.tensor([x + [pad] * (width - len(x)) for x in chunk], device=self.device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in chunk], device=self.device)
            logits = self.model(input_ids=inp, attention_mask=mask).logits[:, :-1].float()
            tgt = inp[:, 1:]
            ll = (_token_logp(logits, tgt) * mask[:, 1:]).sum(1)
            out[s : s + len(chunk)] = ll.cpu().numpy()
        return out

    def score(self, items: Sequence[dict], choices: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """float[n_items, n_choices]: each choice's filled sentence's log-likelihood (`loglik`'s quantity), the
        tokens the filled sentences share run once per item and their key/value cache reused for every choice."""
        return np.stack([self.score_item(it["sentence"], choices, batch_size) for it in items]) if items else np.zeros((0, len(choices)))

    @torch.inference_mode()
    def score_item(self, sentence: str, choices: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """float[n_choices] for one sentence. The shared prefix is taken from the filled sentences' own token ids (BPE
        may merge the answer with the word before it); the rest of each sentence is run on the prefix's cache, in
        batches of equal length (no padding)."""
        import copy

        ids = self.encode([fill_sentence(sentence, c) for c in choices])
        p = shared_prefix_len(ids)
        out = self.model(input_ids=torch.tensor([ids[0][:p]], device=self.device), use_cache=True)
        logits = out.logits[0].float()
        prefix_ll = float(_token_logp(logits[:-1], torch.tensor(ids[0][1:p], device=self.device)).sum()) if p > 1 else 0.0
        first = F.log_softmax(logits[-1], dim=-1)  # the first token after the prefix, for every choice
        cache = out.cache
        scores = np.zeros(len(ids))
        by_len: dict[int, list[int]] = {}
        for j, x in enumerate(ids):
            by_len.setdefault(len(x) - p, []).append(j)
        for members in by_len.values():
            for s in range(0, len(members), batch_size):
                rows = members[s : s + batch_size]
                cont = torch.tensor([ids[j][p:] for j in rows], device=self.device)
                ll = first[cont[:, 0]]
                if cont.shape[1] > 1:
                    past = copy.deepcopy(cache)
                    past.batch_repeat_interleave(len(rows))
                    lg = self.model(input_ids=cont[:, :-1], cache=past, use_cache=True).logits.float()
                    ll = ll + _token_logp(lg, cont[:, 1:]).sum(1)
                scores[rows] = prefix_ll + ll.cpu().numpy()
        return scores


def _token_logp(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) at each position: logits float[..., vocab], targets int[...] -> float[...]."""
    return torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
