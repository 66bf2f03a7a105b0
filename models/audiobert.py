"""AudioBERT: a masked LM that receives the audio embedding of the clip retrieved for each auditory span.

Read top to bottom:

1. `encode_items` turns sentences into token ids with the single [MASK] widened to as many [MASK]s as the answer
   has word pieces, and finds the first token of each span.
2. `AudioBERT.embed` looks up the token embeddings and, at each span's first token, adds
   tanh(gate) · proj(audio) (`add`, published: the gate starts at `audio_gate_init`, 0 = as the text twin) or, with
   `insert`, puts proj(audio) at a token of its own in front of the span (no gate: the token is the audio's alone);
   proj ends in a LayerNorm scaled to the size of a token embedding (with `span_slots`, it also sees the span's place
   in the sentence). With `audio_copy`, the [MASK]'s logits also get a learned scale times the cosine of each word's
   embedding and the injected audio. The LM then runs with
   its LoRA adapter (peft, on query/key/value) switched on ONLY for rows whose sentence has a span; other rows
   run the unchanged LM (`disable_adapter`). Logits are computed at the [MASK] positions only.
3. `score_choices` ranks a task's answers by the mean log-probability of their word pieces.

The MLM head is trained too when the LM came without one (all-MiniLM-L6-v2); it is shared by both paths.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmark.errors import ConfigError, InputError, ModelLoadError
from benchmark.schema import MASK
from models.span_detector import own_range

__all__ = ["ModelSettings", "AudioBertConfig", "build_model", "audio_token", "AudioBERT", "EncodedBatch", "encode_items", "widen_mask", "answer_pieces", "score_choices"]


@dataclass
class ModelSettings:
    """The model's settings, as a training config holds them (models.config.TrainConfig extends this class, so they
    are declared once, here). The published AudioBERT: `add` injection behind a gate that starts shut, LoRA r 64,
    alpha 128 on query/key/value; the demo recipe: `insert`, span slots and the copy path."""

    lm: str = "bert-base-uncased"  # hub id, local path, or 'minilm' (the packaged MiniLM)
    # text: the same model and adapter, no audio (the text twin); captions: no audio either, but the captions of the
    # clips retrieved for its spans are given as text after the sentence (the caption twin: what retrieval alone
    # would tell a text model)
    mode: Literal["audiobert", "text", "captions"] = "audiobert"
    injection: Literal["add", "insert"] = "add"  # add: tanh(gate) x proj(audio) added to the span's first token
    #                                              (published); insert: the audio is a token of its own before the span
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("query", "key", "value")
    audio_gate_init: float = 0.0  # `add` only: tanh of it is the audio's share at the start (0: start as the text twin)
    span_slots: int = 0  # > 0: a learned embedding of the span's place (1st, 2nd, ...) enters the projection
    audio_copy: bool = False  # the [MASK]'s logits also get copy_scale x cos(word, injected audio)


@dataclass
class AudioBertConfig(ModelSettings):
    """What build_model needs: the model's settings and the size of the audio it is given."""

    inject_dim: int = 768

    @classmethod
    def derive(cls, settings: ModelSettings, inject_dim: int) -> "AudioBertConfig":
        """The model config of a training config (every ModelSettings field, by name: nothing copied by hand)."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(ModelSettings)}, inject_dim=inject_dim)

    @property
    def inject_audio(self) -> bool:
        return self.mode == "audiobert"


@dataclass
class EncodedBatch:
    input_ids: torch.Tensor  # long[B, T]
    attention_mask: torch.Tensor  # long[B, T]
    mask_pos: torch.Tensor  # long[B, M], -1 = padding (M = most [MASK]s in the batch)
    span_pos: torch.Tensor  # long[B, S], first token of each span, -1 = none
    has_span: torch.Tensor  # bool[B]

    def to(self, device) -> "EncodedBatch":
        return EncodedBatch(*(getattr(self, f).to(device) for f in ("input_ids", "attention_mask", "mask_pos", "span_pos", "has_span")))


def widen_mask(sentence: str, n: int) -> str:
    """The sentence with its one [MASK] replaced by n [MASK]s separated by spaces."""
    if sentence.count(MASK) != 1:
        raise InputError(f"sentence must hold exactly one {MASK}: {sentence!r}")
    return sentence.replace(MASK, " ".join([MASK] * n))


def answer_pieces(tokenizer, answer: str) -> list[int]:
    """Word-piece ids of an answer (never empty: an answer the tokenizer drops is an error, not a silent skip)."""
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if not ids:
        raise InputError(f"answer {answer!r} has no word pieces in this tokenizer")
    return list(ids)


def encode_items(
    tokenizer, sentences: Sequence[str], n_masks: Sequence[int], spans: Sequence[Sequence[str]], max_length: int = 128,
    audio_token: str | None = None, contexts: Sequence[str] | None = None,
) -> EncodedBatch:
    """Tokenise sentences with widened masks; locate [MASK] tokens and each span's first token. With audio_token
    (`insert` injection), that token is put in front of each span and span_pos points at it instead. With contexts
    (the caption twin), each sentence is followed by its context as a second segment, which alone is truncated."""
    texts, starts = zip(*[_layout(s, n, sp, audio_token) for s, n, sp in zip(sentences, n_masks, spans)]) if sentences else ((), ())
    pair = {"text_pair": list(contexts), "truncation": "only_second"} if contexts is not None else {"truncation": True}
    enc = tokenizer(list(texts), padding=True, max_length=max_length, return_offsets_mapping=True, return_tensors="pt", **pair)
    ids = enc["input_ids"]
    mask_id = tokenizer.mask_token_id
    n_m = max(n_masks) if len(n_masks) else 1
    n_s = max([len(s) for s in spans] + [1])
    mask_pos = torch.full((len(texts), n_m), -1, dtype=torch.long)
    span_pos = torch.full((len(texts), n_s), -1, dtype=torch.long)
    for i in range(len(texts)):
        pos = (ids[i] == mask_id).nonzero().flatten()
        if len(pos) != n_masks[i]:
            raise InputError(f"sentence {sentences[i]!r}: {len(pos)} of {n_masks[i]} [MASK] tokens survived tokenisation (too long?)")
        mask_pos[i, : len(pos)] = pos
        offs = enc["offset_mapping"][i].tolist()
        in_sentence = enc.sequence_ids(i) if contexts is not None else [0] * len(offs)
        for k, (a, b) in enumerate(starts[i]):
            first = next((t for t, (x, y) in enumerate(offs) if y > x and x < b and a < y and in_sentence[t] == 0), None)
            span_pos[i, k] = -1 if first is None else first
    has_span = torch.tensor([len(s) > 0 for s in spans], dtype=torch.bool)
    return EncodedBatch(ids, enc["attention_mask"], mask_pos, span_pos, has_span)


def _layout(sentence: str, n: int, spans: Sequence[str], audio_token: str | None) -> tuple[str, list[tuple[int, int]]]:
    """(the text to tokenise, per span the character range its audio goes to in that text): the [MASK] widened to n,
    and with audio_token, "<audio_token> " put in front of each span (whose range is then the inserted token's)."""
    widened = widen_mask(sentence, n)
    at, extra = sentence.index(MASK), len(widened) - len(sentence)
    mask = (at, at + len(MASK))  # a span is never placed inside the [MASK] ('k' of a detector's 'cr oa k')
    taken: list[tuple[int, int]] = []
    for sp in spans:
        taken.append(own_range(sentence, sp, [mask, *taken]))  # first occurrence not taken by an earlier span
    widen = lambda p: p + (extra if p >= at + len(MASK) else 0)  # noqa: E731  (a place in the widened text)
    if not audio_token:
        return widened, [(widen(a), b + (extra if b > at else 0)) for a, b in taken]
    ins = f"{audio_token} "
    inserts = sorted(a for a, _ in taken)
    text = widened
    for a in reversed(inserts):  # right to left: the places further left have not moved yet
        text = text[: widen(a)] + ins + text[widen(a):]
    shift = lambda p: widen(p) + len(ins) * sum(q < p for q in inserts)  # noqa: E731
    return text, [(shift(a), shift(a) + len(audio_token)) for a, _ in taken]


def _head(mlm: nn.Module) -> nn.Module:
    for name in ("cls", "lm_head", "vocab_projector"):
        if hasattr(mlm, name):
            return getattr(mlm, name)
    raise ModelLoadError(f"{type(mlm).__name__}: no masked-LM head found (cls / lm_head)")


def _encoder(mlm: nn.Module) -> nn.Module:
    return getattr(mlm, mlm.base_model_prefix)


class AudioBERT(nn.Module):
    """A masked LM + audio projection + a LoRA adapter gated by 'the detector found a span'."""

    def __init__(self, mlm: nn.Module, config: AudioBertConfig, train_head: bool):
        from peft import LoraConfig, get_peft_model

        super().__init__()
        check_choices(config)
        self.config = config
        for p in mlm.parameters():
            p.requires_grad_(False)
        lora = LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_targets), bias="none",
        )
        self.lm = get_peft_model(mlm, lora)
        self._mlm = mlm  # the wrapped model (same modules as inside self.lm)
        hidden = mlm.config.hidden_size
        self.audio_norm = nn.LayerNorm(config.inject_dim)
        self.proj = nn.Sequential(nn.Linear(config.inject_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        # proj(audio) is layer-normed and scaled to a token embedding's size, so it can never swamp the span's own
        # token (docs/models.md: unscaled, Adam grew it far past the token's norm within one demo epoch); with `add`, a
        # learnable gate tanh(audio_gate) in [-1, 1] says how much of it to let in (at audio_gate_init 0 the model starts
        # as its text twin). `insert` has no gate: the audio has a token of its own.
        self.proj_norm = nn.LayerNorm(hidden, elementwise_affine=False)
        # a comparison reads two clips in two roles ("A is [MASK] than B"): with span_slots, the projection knows which
        # span a clip is for, so it can map the two in opposite directions and the [MASK] reads their difference
        self.slot_embed = nn.Embedding(config.span_slots, hidden) if config.span_slots else None
        # audio_copy: the [MASK] is also offered the words the injected audio looks like (see copy_logits)
        self.copy_scale = nn.Parameter(torch.tensor(2.0)) if config.audio_copy else None
        if config.audio_copy:  # the (frozen) word embeddings, centred and unit-length once, not at every step
            words = mlm.get_input_embeddings().weight.detach()
            self.register_buffer("copy_words", F.normalize(words - words.mean(0), dim=-1), persistent=False)
        if self.slot_embed is not None:
            nn.init.zeros_(self.slot_embed.weight)
        self.audio_gate = nn.Parameter(torch.tensor(float(config.audio_gate_init))) if config.injection == "add" else None
        emb_w = mlm.get_input_embeddings().weight.detach().float()
        self.register_buffer("token_rms", emb_w.pow(2).mean().sqrt(), persistent=False)  # per-dim RMS of token embeddings
        self.train_head = train_head
        head = _head(mlm)
        out_emb = mlm.get_output_embeddings()
        tied = {id(out_emb.weight)} if out_emb is not None else set()
        for p in head.parameters():
            if id(p) not in tied:  # the decoder matrix is tied to the (frozen) input embeddings
                p.requires_grad_(train_head)

    # -- parts
    def trainable_state(self) -> dict[str, torch.Tensor]:
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v.detach().cpu().clone() for k, v in self.state_dict().items() if k in names}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        own = {n for n, p in self.named_parameters() if p.requires_grad}
        missing = sorted(own - set(state))
        if missing:
            raise ModelLoadError(f"checkpoint lacks {len(missing)} trained weights (e.g. {missing[0]})")
        self.load_state_dict(state, strict=False)

    # -- forward
    def injected(self, batch: EncodedBatch, audio: torch.Tensor | None):
        """(row, token position, projected audio float[N, hidden]) of every span that gets audio, or None."""
        if not self.config.inject_audio or audio is None:
            return None
        valid = batch.span_pos >= 0
        if not bool(valid.any()):
            return None
        b_idx, s_idx = valid.nonzero(as_tuple=True)
        # a span's place is its order in the sentence (not in the span list): what a detector's spans also give
        place = ((batch.span_pos.unsqueeze(-1) > batch.span_pos.unsqueeze(-2)) & valid.unsqueeze(-2)).sum(-1)
        return b_idx, batch.span_pos[b_idx, s_idx], self.project_audio(audio[b_idx, s_idx], place[b_idx, s_idx])

    def embed(self, batch: EncodedBatch, audio: torch.Tensor | None, injected=None) -> torch.Tensor:
        """Token embeddings with proj(audio[b, s]) put in at span_pos[b, s]; audio float[B, S, inject_dim]."""
        emb = self._mlm.get_input_embeddings()(batch.input_ids)
        inj = injected if injected is not None else self.injected(batch, audio)
        if inj is None:
            return emb
        b_idx, tok, vec = inj
        vec = vec.to(emb.dtype)
        emb = emb.clone()
        if self.config.injection == "insert":  # span_pos is the audio token put before the span
            emb[b_idx, tok] = vec
        else:
            emb[b_idx, tok] = emb[b_idx, tok] + torch.tanh(self.audio_gate).to(emb.dtype) * vec
        return emb

    def project_audio(self, audio: torch.Tensor, slot: torch.Tensor | None = None) -> torch.Tensor:
        """float[N, hidden] of the size of a token embedding (per-dim RMS token_rms) from audio float[N, inject_dim];
        slot long[N]: each clip's span place in its sentence (used with span_slots; beyond the last slot, the last)."""
        h = self.proj[0](self.audio_norm(audio))
        if self.slot_embed is not None:
            if slot is None:
                slot = torch.zeros(len(audio), dtype=torch.long, device=audio.device)
            h = h + self.slot_embed(slot.clamp(max=self.config.span_slots - 1)).to(h.dtype)
        return self.token_rms.to(audio.dtype) * self.proj_norm(self.proj[2](self.proj[1](h)))

    def audio_share(self) -> float | None:
        """tanh(audio_gate): the injected audio's size as a share of a token embedding's (`add`); 0 for the text twin;
        None with `insert`, which has no gate to read."""
        if not self.config.inject_audio:
            return 0.0
        return None if self.audio_gate is None else float(torch.tanh(self.audio_gate.detach()))

    def audio_parameters(self) -> list[str]:
        """Names of the trainable parameters of the audio path (projection, its norms, gate, slots, copy scale): the
        ones that get their own learning rate. Everything the model adds beside the LM and its head."""
        return [n for n, p in self.named_parameters() if p.requires_grad and not n.startswith(("lm.", "_mlm."))]

    def hidden_states(self, batch: EncodedBatch, audio: torch.Tensor | None = None, injected=None) -> torch.Tensor:
        """float[B, T, H]: adapter on for rows with a span, off (the unchanged LM) for the others."""
        emb = self.embed(batch, audio, injected)
        enc = _encoder(self._mlm)
        out = torch.empty(emb.shape, dtype=emb.dtype, device=emb.device)
        on = batch.has_span
        if bool(on.any()):
            out[on] = enc(inputs_embeds=emb[on], attention_mask=batch.attention_mask[on]).last_hidden_state.to(emb.dtype)
        if bool((~on).any()):
            with self.lm.disable_adapter():
                off = ~on
                out[off] = enc(inputs_embeds=emb[off], attention_mask=batch.attention_mask[off]).last_hidden_state.to(emb.dtype)
        return out

    def mask_logits(self, batch: EncodedBatch, audio: torch.Tensor | None = None) -> torch.Tensor:
        """float[B, M, vocab] at the [MASK] positions (padding rows of mask_pos give garbage, ignore them)."""
        inj = self.injected(batch, audio)
        h = self.hidden_states(batch, audio, inj)
        idx = batch.mask_pos.clamp(min=0)
        picked = torch.gather(h, 1, idx.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
        logits = _head(self._mlm)(picked)
        if self.copy_scale is not None and inj is not None:
            logits = logits + self.copy_logits(inj, len(logits)).unsqueeze(1).to(logits.dtype)
        return logits

    def copy_logits(self, injected, n_rows: int) -> torch.Tensor:
        """float[B, vocab]: copy_scale x the cosine between each word's embedding and the row's injected audio (summed
        over its spans), both centred: the words the audio looks like are offered to the [MASK] (`audio_copy`)."""
        b_idx, _, vec = injected
        row = torch.zeros(n_rows, vec.shape[-1], dtype=vec.dtype, device=vec.device).index_add_(0, b_idx, vec)
        return self.copy_scale * (F.normalize(row, dim=-1) @ self.copy_words.T.to(row.dtype)) * (row.norm(dim=-1, keepdim=True) > 0)

    def full_logits(self, batch: EncodedBatch, audio: torch.Tensor | None = None) -> torch.Tensor:
        """float[B, T, vocab] everywhere (for tests and inspection)."""
        return _head(self._mlm)(self.hidden_states(batch, audio))

    def loss(self, batch: EncodedBatch, targets: torch.Tensor, audio: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy of the answer pieces at the [MASK] positions; targets long[B, M], -100 = padding."""
        logits = self.mask_logits(batch, audio)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100)


@torch.no_grad()
def score_choices(
    logits_fn, tokenizer, sentences: Sequence[str], spans: Sequence[Sequence[str]], choices: Sequence[str],
    audio_fn=None, batch_size: int = 32, max_length: int = 128, device: str = "cpu", audio_token: str | None = None,
    contexts: Sequence[str] | None = None,
) -> np.ndarray:
    """float[n_items, n_choices]: mean log-probability of each choice's word pieces at its widened [MASK]s.

    logits_fn(EncodedBatch, audio) -> float[B, M, vocab]; audio_fn(item indices, EncodedBatch) -> float[B, S, d] or None.
    Items are run once per distinct answer length, so every choice of that length is scored from one pass.
    """
    pieces = [answer_pieces(tokenizer, c) for c in choices]
    lengths = sorted({len(p) for p in pieces})
    scores = np.full((len(sentences), len(choices)), -np.inf, dtype=np.float64)
    for n in lengths:
        cols = [j for j, p in enumerate(pieces) if len(p) == n]
        target = torch.tensor([pieces[j] for j in cols], device=device)  # [C_n, n]
        for s in range(0, len(sentences), batch_size):
            idx = list(range(s, min(len(sentences), s + batch_size)))
            batch = encode_items(tokenizer, [sentences[i] for i in idx], [n] * len(idx), [spans[i] for i in idx], max_length, audio_token,
                                 [contexts[i] for i in idx] if contexts is not None else None).to(device)
            audio = audio_fn(idx, batch) if audio_fn is not None else None
            logp = F.log_softmax(logits_fn(batch, audio).float(), dim=-1)[:, :n]  # [B, n, V]
            # gather [B, C_n, n]
            g = torch.stack([logp[:, k, :][:, target[:, k]] for k in range(n)], dim=-1)
            scores[np.ix_(idx, cols)] = g.mean(-1).cpu().numpy()
    return scores


def check_choices(config) -> None:
    """Every Literal-typed field of a (model or training) config holds one of its choices; else ConfigError naming the
    field, the value and the choices. Run when a config is built or loaded, so a typo never falls back silently."""
    from typing import get_args, get_origin, get_type_hints

    for name, hint in get_type_hints(type(config)).items():
        if get_origin(hint) is Literal and getattr(config, name) not in get_args(hint):
            raise ConfigError(f"{type(config).__name__}.{name} {getattr(config, name)!r}: expected one of {', '.join(map(str, get_args(hint)))}")


def audio_token(config: ModelSettings, tokenizer) -> str | None:
    """The token put in front of each span for `insert` injection (the tokenizer's unknown token, whose embedding the
    audio replaces); None for `add` and for the text twin."""
    return tokenizer.unk_token if config.mode == "audiobert" and config.injection == "insert" else None


def build_model(settings: ModelSettings, inject_dim: int, seed: int = 0):
    """(AudioBERT, tokenizer, head_is_new) for a training config's model settings; torch seeded first, so the fresh
    projection (and a fresh MLM head) start the same in every process."""
    from models.loading import load_masked_lm, load_tokenizer

    tok = load_tokenizer(settings.lm, need_mask=True)
    torch.manual_seed(seed)  # before the LM: a fresh MLM head is drawn while it loads
    mlm, head_is_new = load_masked_lm(settings.lm, allow_new_head=True)
    model = AudioBERT(mlm, AudioBertConfig.derive(settings, inject_dim), train_head=head_is_new)
    return model, tok, head_is_new
