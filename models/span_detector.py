"""The auditory-knowledge span detector: a BERT-family token classifier (B/I/O over word pieces).

It tags the words that need auditory knowledge — the onomatopoeia of an animal item ("woof woof"), the two
sound sources of a comparison item ("a violin", "a tuba") — and is trained on every task at once
(published: 5 epochs, batch 16, lr 1e-5, AdamW). Spans come back as substrings of the sentence.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from benchmark.errors import InputError, ModelLoadError
from benchmark.schema import MASK

__all__ = [
    "SpanConfig",
    "SpanDetector",
    "own_range",
    "span_char_ranges",
    "label_tokens",
    "train_span_detector",
    "span_scores",
    "LABELS",
]

LABELS = ("O", "B", "I")
O, B, I = 0, 1, 2


@dataclass
class SpanConfig:
    """Published setting: 5 epochs, batch 16, lr 1e-5, AdamW."""

    encoder: str = "bert-base-uncased"
    epochs: int = 5
    batch_size: int = 16
    lr: float = 1e-5
    weight_decay: float = 0.01
    max_length: int = 96
    seed: int = 0
    device: str = "cpu"


def own_range(sentence: str, span: str, taken: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Character range of the span's first occurrence in the sentence (case-insensitive) that overlaps no `taken`
    range: a whole-word occurrence first ("pig" is not the start of "pigeon"), else any. InputError if none. Only an
    edge of the span that is a word character must meet a word boundary: a span of punctuation ('"') or one that ends
    in it ('Canada."') is whole wherever it occurs."""
    low, s = sentence.lower(), span.strip().lower()
    left = r"(?<!\w)" if s[:1].isalnum() or s[:1] == "_" else ""
    right = r"(?!\w)" if s[-1:].isalnum() or s[-1:] == "_" else ""
    whole = (m.span() for m in re.finditer(left + re.escape(s) + right, low))
    anywhere = ((i, i + len(s)) for i in range(len(low)) if low.startswith(s, i))
    for candidates in (whole, anywhere):
        for a, b in candidates:
            if not any(x < b and a < y for x, y in taken):
                return a, b
    raise InputError(f"span {span!r} is not in the sentence {sentence!r}")


def span_char_ranges(sentence: str, spans: Sequence[str]) -> list[tuple[int, int]]:
    """Character ranges of the spans in the sentence (each by `own_range`, in order), sorted. Raises InputError for
    a span that is not in the sentence."""
    taken: list[tuple[int, int]] = []
    for span in spans:
        if span.strip():
            taken.append(own_range(sentence, span, taken))
    return sorted(taken)


def label_tokens(offsets: Sequence[tuple[int, int]], ranges: Sequence[tuple[int, int]]) -> list[int]:
    """B/I/O label per token from its character offsets; special tokens ((0, 0) offsets) get -100."""
    labels = []
    prev_in: int | None = None
    for a, b in offsets:
        if a == b:
            labels.append(-100)
            prev_in = None
            continue
        hit = next((k for k, (s, e) in enumerate(ranges) if a < e and s < b), None)
        if hit is None:
            labels.append(O)
        else:
            labels.append(I if prev_in == hit else B)
        prev_in = hit
    return labels


class SpanDetector(nn.Module):
    """Encoder + dropout + linear over B/I/O."""

    def __init__(self, encoder: nn.Module, tokenizer, config: SpanConfig):
        super().__init__()
        if not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError(f"{config.encoder}: span detector needs a fast tokenizer (offsets)")
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.config = config
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(encoder.config.hidden_size, len(LABELS))

    @classmethod
    def from_pretrained_encoder(cls, config: SpanConfig) -> "SpanDetector":
        from models.loading import load_encoder, load_tokenizer

        return cls(load_encoder(config.encoder), load_tokenizer(config.encoder), config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(self.dropout(h))  # [batch, tokens, 3]

    def encode(self, sentences: Sequence[str], spans: Sequence[Sequence[str]] | None = None) -> dict:
        enc = self.tokenizer(
            list(sentences), padding=True, truncation=True, max_length=self.config.max_length,
            return_offsets_mapping=True, return_tensors="pt",
        )
        out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "offsets": enc["offset_mapping"]}
        if spans is not None:
            labels = []
            for i, (s, sp) in enumerate(zip(sentences, spans)):
                offs = [tuple(map(int, o)) for o in enc["offset_mapping"][i]]
                lab = label_tokens(offs, span_char_ranges(s, sp))
                labels.append([(-100 if m == 0 else l) for l, m in zip(lab, enc["attention_mask"][i].tolist())])
            out["labels"] = torch.tensor(labels)
        return out

    @torch.no_grad()
    def predict(self, sentences: Sequence[str], batch_size: int = 64) -> list[list[str]]:
        """Detected spans per sentence, as substrings of it (in order of appearance)."""
        self.eval()
        dev = next(self.parameters()).device
        out: list[list[str]] = []
        for s in range(0, len(sentences), batch_size):
            chunk = list(sentences[s : s + batch_size])
            enc = self.encode(chunk)
            tags = self(enc["input_ids"].to(dev), enc["attention_mask"].to(dev)).argmax(-1).cpu()
            for i, sent in enumerate(chunk):
                out.append(_decode(sent, tags[i].tolist(), enc["offsets"][i].tolist(), enc["attention_mask"][i].tolist()))
        return out

    def save(self, out_dir: str | Path) -> Path:
        from models._io import atomic_write_text, save_torch

        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        save_torch(d / "span_detector.pt", {k: v.detach().cpu() for k, v in self.state_dict().items()})
        self.tokenizer.save_pretrained(str(d / "tokenizer"))
        self.encoder.config.save_pretrained(str(d / "encoder_config"))
        atomic_write_text(d / "span_config.json", json.dumps(asdict(self.config), indent=2) + "\n")
        return d

    @classmethod
    def load(cls, ckpt_dir: str | Path, device: str = "cpu") -> "SpanDetector":
        from transformers import AutoConfig, AutoModel

        from models.loading import load_tokenizer

        d = Path(ckpt_dir)
        try:
            config = SpanConfig(**json.loads((d / "span_config.json").read_text(encoding="utf-8")))
            enc = AutoModel.from_config(AutoConfig.from_pretrained(str(d / "encoder_config")))
            state = torch.load(d / "span_detector.pt", map_location="cpu", weights_only=True)
        except (OSError, ValueError, TypeError) as e:
            raise ModelLoadError(f"{d}: not a span detector checkpoint ({type(e).__name__}: {str(e)[:120]})") from e
        tok = load_tokenizer(str(d / "tokenizer"), min_vocab=1)
        model = cls(enc, tok, config)
        model.load_state_dict(state)
        config.device = device
        return model.to(device).eval()


def _decode(sentence: str, tags: list[int], offsets: list[list[int]], mask: list[int]) -> list[str]:
    ranges: list[list[int]] = []
    prev = O
    for t, (a, b), m in zip(tags, offsets, mask):
        if not m or a == b:
            prev = O
            continue
        if t == B or (t == I and prev == O):
            ranges.append([a, b])
        elif t == I and ranges:
            ranges[-1][1] = b
        prev = t
    # the answer's slot is never an auditory span: a range that reaches into a [MASK] ('a [MASK]' from an undertrained
    # detector) is dropped, or it would be given audio and placed over the answer
    slots = [(m.start(), m.end()) for m in re.finditer(re.escape(MASK), sentence)]
    return [sentence[a:b].strip() for a, b in ranges
            if sentence[a:b].strip() and not any(x < b and a < y for x, y in slots)]


def train_span_detector(
    detector: SpanDetector, sentences: Sequence[str], spans: Sequence[Sequence[str]], quiet: bool = True
) -> list[float]:
    """Fine-tune the whole detector (AdamW, linear decay); returns the mean loss per epoch."""
    from tqdm import tqdm

    cfg = detector.config
    if not sentences:
        raise InputError("span detector: no training sentences")
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    dev = torch.device(cfg.device)
    detector.to(dev).train()
    opt = torch.optim.AdamW(detector.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_steps = cfg.epochs * ((len(sentences) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / max(1, n_steps)))
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100)
    order = list(range(len(sentences)))
    losses = []
    for _ in tqdm(range(cfg.epochs), desc="span detector", disable=quiet):
        rng.shuffle(order)
        total, n = 0.0, 0
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s : s + cfg.batch_size]
            enc = detector.encode([sentences[i] for i in idx], [spans[i] for i in idx])
            logits = detector(enc["input_ids"].to(dev), enc["attention_mask"].to(dev))
            loss = loss_fn(logits.reshape(-1, len(LABELS)), enc["labels"].to(dev).reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + loss.item(), n + 1
        losses.append(total / max(1, n))
    detector.eval()
    return losses


def span_scores(predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> dict[str, float]:
    """Exact-match span precision / recall / F1 (case-insensitive), micro-averaged over sentences."""
    tp = n_pred = n_gold = 0
    for p, g in zip(predicted, gold):
        ps = [x.strip().lower() for x in p]
        gs = [x.strip().lower() for x in g]
        n_pred, n_gold = n_pred + len(ps), n_gold + len(gs)
        left = list(gs)
        for x in ps:
            if x in left:
                tp += 1
                left.remove(x)
    prec = tp / n_pred if n_pred else 0.0
    rec = tp / n_gold if n_gold else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"precision": prec, "recall": rec, "f1": f1, "n_gold": n_gold, "n_pred": n_pred}
