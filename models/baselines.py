"""Text-only baselines, any hub id or local path.

- `MaskedLMBaseline`: a masked LM ranks all of a task's answers at [MASK]; an answer of n word pieces gets n
  [MASK]s and is scored by the mean log-probability of its pieces (`models.audiobert.score_choices`).
- `CausalLMBaseline`: a causal LM scores each filled sentence by its total log-likelihood (sum over tokens).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from benchmark.schema import MASK

__all__ = ["MaskedLMBaseline", "CausalLMBaseline", "fill_sentence"]


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


class CausalLMBaseline:
    """A causal LM (a GGUF file is dequantised by transformers): log-likelihood of each filled sentence."""

    def __init__(self, name: str, device: str = "cpu", model=None, tokenizer=None):
        from models.loading import load_causal_lm, load_tokenizer

        self.name = f"causal:{name}"
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(name)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model = (model if model is not None else load_causal_lm(name)).to(device).eval()
        self.device = device

    @torch.no_grad()
    def loglik(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """float[n]: sum of log p(token_t | tokens_<t) over each text (the first token is given)."""
        out = np.zeros(len(texts))
        self.tokenizer.padding_side = "right"
        for s in range(0, len(texts), batch_size):
            enc = self.tokenizer(list(texts[s : s + batch_size]), padding=True, return_tensors="pt").to(self.device)
            logp = F.log_softmax(self.model(**enc).logits[:, :-1].float(), dim=-1)
            tgt = enc["input_ids"][:, 1:]
            ll = torch.gather(logp, 2, tgt.unsqueeze(-1)).squeeze(-1) * enc["attention_mask"][:, 1:]
            out[s : s + len(tgt)] = ll.sum(1).cpu().numpy()
        return out

    def score(self, items: Sequence[dict], choices: Sequence[str], batch_size: int = 32) -> np.ndarray:
        texts = [fill_sentence(it["sentence"], c) for it in items for c in choices]
        return self.loglik(texts, batch_size).reshape(len(items), len(choices))
