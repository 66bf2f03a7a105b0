"""Text-to-audio retrieval over the corpus clips: the audio index, its query encoders, and the demo retrieval model.

The index is built once from audio arrays and saved as a folder (the release's `audio_index/`):

    index.json                 clip ids, captions, the models that made the embeddings, retrieval recall@k
    retrieval_embeddings.npy   float32[n_clips, d_r], L2-normalised, in the text-audio joint space
    inject_embeddings.npy      float32[n_clips, d_i], what AudioBERT injects (AST / aisfx / CLAP audio)
    text_head.npy              demo retrieval model only: the text projection, float32[out, in + 1] (weight | bias) (its audio side is already applied)

A query ("<span> sound") is encoded by the index's text side (CLAP text tower, or the demo model:
a frozen sentence encoder + a trained projection) and ranked by cosine similarity; top-k keeps the similarity.

The demo retrieval model stands in for CLAP when its weights are unreachable: a frozen MiniLM text side and a
frozen aisfx audio side, each with a linear projection trained contrastively (symmetric InfoNCE) on the corpus
captions. A hashed fraction of clips is held out of that training; recall@k is measured on them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmark.errors import InputError, ModelLoadError, UnknownNameError
from benchmark.hashing import unit_interval
from models.clap_checkpoint import is_laion_checkpoint

__all__ = [
    "IndexConfig",
    "AudioIndex",
    "Hit",
    "build_index",
    "recall_at_k",
    "encode_sentences",
    "train_projection",
    "IndexPlan",
    "plan_index",
    "ClipEmbedder",
    "finish_index",
    "caption_texts",
    "query_text",
    "DEMO_RETRIEVAL_NAME",
]

DEMO_RETRIEVAL_NAME = "demo-contrastive(minilm-text+aisfx-audio)"


def demo_retrieval_name(audio_side: str) -> str:
    """The demo retrieval model's name, by its frozen audio side (DEMO_RETRIEVAL_NAME for aisfx)."""
    return DEMO_RETRIEVAL_NAME if audio_side == "aisfx" else f"demo-contrastive(minilm-text+{audio_side}-audio)"
PUBLISHED_CLAP = "laion/clap-htsat-unfused"
PUBLISHED_AST = "MIT/ast-finetuned-audioset-10-10-0.4593"


@dataclass
class IndexConfig:
    """How the audio index is built. Defaults are the published models; 'auto' uses them when the hub cache holds
    them (no network wait) and otherwise the demo retrieval model / the aisfx encoder (`resolve_auto`)."""

    retrieval: str = f"clap:{PUBLISHED_CLAP}"  # clap:<id or path> | clap:<laion-clap file.pt> | demo | auto
    inject: str = f"ast:{PUBLISHED_AST}"  # ast:<id> | clap:<id> | aisfx | melstats | auto | retrieval (reuse the retrieval audio embedding)
    demo_audio: str = "aisfx"  # the demo retrieval model's frozen audio side: aisfx | melstats
    text_encoder: str = "minilm"  # demo model's frozen text side (hub id, path or 'minilm')
    clap_tokenizer: str = "roberta-base"  # text tokenizer of a clap:<file.pt> (laion-clap checkpoint): hub id or path
    proj_dim: int = 256
    epochs: int = 200  # steps of the projection training (each a minibatch of batch_clips clips)
    batch_clips: int = 1024  # clips per training step: the step's memory is O(batch_clips²), whatever the corpus size
    recall_sample: int = 1000  # held-out clips recall@k is measured on (the first by hash): an O(sample²) matrix
    lr: float = 1e-2
    temperature: float = 0.07
    holdout_frac: float = 0.2
    seed: int = 0
    ks: tuple[int, ...] = (1, 5, 10)
    max_audio_s: float = 10.0  # audio beyond this is not encoded
    precision: str = "fp32"  # aisfx's convolutions: fp32 | bf16 (~2x faster on CPUs with AVX512-BF16; 1 - cosine < 1e-4)
    device: str = "cpu"

    @classmethod
    def from_params(cls, params: dict) -> "IndexConfig":
        known = {k: v for k, v in (params or {}).items() if k in cls.__dataclass_fields__}
        if "ks" in known:
            known["ks"] = tuple(int(k) for k in known["ks"])
        return cls(**known)


@dataclass
class Hit:
    clip_id: str
    similarity: float
    row: int


def query_text(span: str) -> str:
    """The text that queries the index for a span: '<span> sound'."""
    span = span.strip()
    return span if span.lower().endswith("sound") else f"{span} sound"


# ---------------------------------------------------------------- text side


@torch.no_grad()
def encode_sentences(texts: Sequence[str], tokenizer, model, batch: int = 64, device: str = "cpu") -> np.ndarray:
    """Mean-pooled last hidden states: float32[n_texts, hidden] (the sentence-transformers recipe, unnormalised)."""
    model.eval()
    outs = []
    for s in range(0, len(texts), batch):
        enc = tokenizer(list(texts[s : s + batch]), padding=True, truncation=True, max_length=64, return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
        outs.append(((h * m).sum(1) / m.sum(1).clamp(min=1)).float().cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, model.config.hidden_size), np.float32)


class _DemoTextSide:
    def __init__(self, encoder_name: str, head: nn.Linear, device: str = "cpu"):
        from models.loading import load_encoder, load_tokenizer

        self.tokenizer = load_tokenizer(encoder_name)
        self.model = load_encoder(encoder_name).to(device)
        self.head = head.to(device).eval()
        self.device = device

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        x = torch.from_numpy(encode_sentences(texts, self.tokenizer, self.model, device=self.device)).to(self.device)
        return F.normalize(self.head(x), dim=-1).cpu().numpy()


class _ClapTextSide:
    """CLAP's text tower + projection (L2-normalised). name: hub id or folder (tokenizer from there too), or a
    laion-clap checkpoint file (models.clap_checkpoint) whose tokenizer is `tokenizer_name` (hub id or folder)."""

    def __init__(self, name: str, device: str = "cpu", model=None, tokenizer=None, tokenizer_name: str | None = None):
        from transformers import ClapModel

        from models.clap_checkpoint import DEFAULT_TOKENIZER, load_laion_clap
        from models.loading import _load, load_tokenizer

        if model is None and is_laion_checkpoint(name):
            model, tokenizer = load_laion_clap(name, tokenizer_name or DEFAULT_TOKENIZER)
        self.model = (model if model is not None else _load(ClapModel, name)[0]).to(device).eval()
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(name)
        self.device = device

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        out = self.model.get_text_features(**enc)
        out = out if isinstance(out, torch.Tensor) else out.pooler_output
        return F.normalize(out.float(), dim=-1).cpu().numpy()


# ---------------------------------------------------------------- the index


@dataclass
class AudioIndex:
    """Audio embeddings of the corpus clips, for retrieval (joint space) and for injection into AudioBERT."""

    clip_ids: list[str]
    captions: list[str]
    retrieval_embeddings: np.ndarray  # float32[n, d_r], L2-normalised
    inject_embeddings: np.ndarray  # float32[n, d_i]
    models: dict  # {"retrieval": ..., "inject": ..., "text_side": {...}, "notes": [...]}
    metrics: dict = field(default_factory=dict)  # {"recall@1": ..., "n_heldout": ...}
    text_head: nn.Linear | None = None  # demo model only
    _query_encoder: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.clip_ids)
        if self.retrieval_embeddings.shape[0] != n or self.inject_embeddings.shape[0] != n or len(self.captions) != n:
            raise InputError(f"audio index: {n} clip ids but embeddings/captions of other lengths")
        if len(set(self.clip_ids)) != n:
            raise InputError("audio index: duplicate clip ids")

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def inject_dim(self) -> int:
        return int(self.inject_embeddings.shape[1])

    def set_query_encoder(self, encoder) -> None:
        """Use a given callable texts -> float32[n, d_r] (e.g. an in-memory CLAP text side)."""
        self._query_encoder = encoder

    def encode_queries(self, texts: Sequence[str], device: str = "cpu") -> np.ndarray:
        if self._query_encoder is None:
            side = self.models.get("text_side", {})
            kind = side.get("kind")
            if kind == "demo":
                if self.text_head is None:
                    raise ModelLoadError("audio index: demo retrieval model has no text_head.npy")
                self._query_encoder = _DemoTextSide(side["encoder"], self.text_head, device=device)
            elif kind == "clap":
                self._query_encoder = _ClapTextSide(side["name"], device=device, tokenizer_name=side.get("tokenizer"))
            else:
                raise ModelLoadError(f"audio index: unknown text side {side!r}")
        return np.asarray(self._query_encoder(list(texts)), dtype=np.float32)

    def search_embeddings(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-k clips by cosine similarity for each query row (ties broken by row order)."""
        q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        sims = q @ self.retrieval_embeddings.T
        k = min(k, len(self))
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return [[Hit(self.clip_ids[j], float(sims[i, j]), int(j)) for j in row] for i, row in enumerate(order)]

    def search(self, texts: Sequence[str], k: int = 1) -> list[list[Hit]]:
        return self.search_embeddings(self.encode_queries(texts), k)

    def subset(self, keep: Sequence[str], why: str) -> "AudioIndex":
        """The index restricted to the clips in `keep` (row order kept); `why` is recorded in models["subset"].
        The demo text head and the recall figures are those of the whole index (its training set is unchanged)."""
        wanted = set(keep)
        rows = [i for i, c in enumerate(self.clip_ids) if c in wanted]
        models = {**self.models, "subset": f"{why}: {len(rows)} of {len(self)} clips"}
        return AudioIndex([self.clip_ids[i] for i in rows], [self.captions[i] for i in rows],
                          self.retrieval_embeddings[rows], self.inject_embeddings[rows], models, dict(self.metrics),
                          self.text_head)

    def save(self, out_dir: str | Path) -> Path:
        from models._io import atomic_write_text, save_npy

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, arr in (("retrieval_embeddings.npy", self.retrieval_embeddings), ("inject_embeddings.npy", self.inject_embeddings)):
            if isinstance(arr, np.memmap) and arr.filename and Path(arr.filename).resolve() == (out / name).resolve():
                continue  # written there block by block (finish_index with out_dir)
            save_npy(out / name, np.asarray(arr, dtype=np.float32))
        if self.text_head is not None:
            # one float32 array [out, in + 1] (weight | bias): .npy bytes depend on the values alone (byte-stable)
            head = torch.cat([self.text_head.weight.detach().cpu(), self.text_head.bias.detach().cpu()[:, None]], dim=1)
            save_npy(out / "text_head.npy", head.numpy().astype(np.float32))
        meta = {
            "format": 1,
            "clip_ids": self.clip_ids,
            "captions": self.captions,
            "models": self.models,
            "metrics": self.metrics,
            "retrieval_dim": int(self.retrieval_embeddings.shape[1]),
            "inject_dim": self.inject_dim,
        }
        atomic_write_text(out / "index.json", json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        return out

    @classmethod
    def load(cls, index_dir: str | Path) -> "AudioIndex":
        d = Path(index_dir)
        try:
            meta = json.loads((d / "index.json").read_text(encoding="utf-8"))
            r = np.load(d / "retrieval_embeddings.npy")
            i = np.load(d / "inject_embeddings.npy")
        except (OSError, ValueError, json.JSONDecodeError) as e:
            raise InputError(f"{d}: not a readable audio index ({type(e).__name__}: {e})") from e
        head = None
        if (d / "text_head.npy").exists():
            w = torch.from_numpy(np.load(d / "text_head.npy"))
            head = nn.Linear(w.shape[1] - 1, w.shape[0])
            head.load_state_dict({"weight": w[:, :-1].contiguous(), "bias": w[:, -1].contiguous()})
        return cls(list(meta["clip_ids"]), list(meta["captions"]), r, i, meta["models"], meta.get("metrics", {}), head)


# ---------------------------------------------------------------- building


def recall_at_k(text_emb: np.ndarray, audio_emb: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Row i of text_emb should retrieve row i of audio_emb: fraction of rows whose match is in the top k."""
    t = text_emb / np.maximum(np.linalg.norm(text_emb, axis=1, keepdims=True), 1e-12)
    a = audio_emb / np.maximum(np.linalg.norm(audio_emb, axis=1, keepdims=True), 1e-12)
    sims = t @ a.T
    rank = (sims > np.diag(sims)[:, None]).sum(axis=1)  # 0 = best
    return {f"recall@{k}": float((rank < k).mean()) for k in ks}


def train_projection(text_x, audio_x, pair_audio: np.ndarray, config: IndexConfig) -> tuple[nn.Linear, nn.Linear]:
    """Two linear heads mapping text rows and audio rows into one space; row t of text_x is a caption of
    audio row pair_audio[t]. Symmetric InfoNCE over minibatches of config.batch_clips clips (clips with several
    captions: one per step); with no more clips than that, every step sees them all (the full batch).
    text_x, audio_x: float32 [rows, dim] arrays, RowFiles or RowSubsets: read a minibatch of rows per step and in
    blocks for their mean and spread (the standardisation), never whole."""
    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    t_head = nn.Linear(text_x.shape[1], config.proj_dim)
    a_head = nn.Linear(audio_x.shape[1], config.proj_dim)
    opt = torch.optim.Adam(list(t_head.parameters()) + list(a_head.parameters()), lr=config.lr, weight_decay=1e-4)
    t_mu, t_sd = _moments(text_x)
    a_mu, a_sd = _moments(audio_x)
    owner = torch.from_numpy(pair_audio.astype(np.int64))
    counts = torch.bincount(owner, minlength=len(audio_x))
    rows_by_clip = torch.argsort(owner, stable=True)  # each clip's caption rows, clip after clip
    first_row = torch.cumsum(counts, 0) - counts
    clips = torch.nonzero(counts > 0).flatten()
    batch = max(2, int(config.batch_clips))
    for _ in range(config.epochs):  # a minibatch of batch_clips clips, one caption each drawn at random (vectorised)
        step = clips if len(clips) <= batch else clips[torch.sort(torch.randperm(len(clips), generator=g)[:batch]).values]
        pick = rows_by_clip[first_row[step] + torch.randint(1 << 30, (len(step),), generator=g) % counts[step]]
        te = F.normalize(t_head(_standard_rows(text_x, pick, t_mu, t_sd)), dim=-1)
        ae = F.normalize(a_head(_standard_rows(audio_x, step, a_mu, a_sd)), dim=-1)
        logits = te @ ae.T / config.temperature
        target = torch.arange(len(step))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
    # fold the standardisation into the heads so they apply to raw embeddings
    return _fold(t_head, t_mu, t_sd), _fold(a_head, a_mu, a_sd)


def _moments(x) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation (+1e-6) of x's rows, float32, summed in float64 a block at a time."""
    from models._io import row_chunks

    total = np.zeros(x.shape[1], np.float64)
    squares = np.zeros(x.shape[1], np.float64)
    for _, block in row_chunks(x):
        total += block.sum(0, dtype=np.float64)
        squares += np.square(block, dtype=np.float64).sum(0)
    mu = total / len(x)
    sd = np.sqrt(np.maximum(squares / len(x) - mu * mu, 0.0)) + 1e-6
    return mu.astype(np.float32), sd.astype(np.float32)


def _standard_rows(x, rows: torch.Tensor, mu: np.ndarray, sd: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(((np.asarray(x[rows.numpy()], dtype=np.float32) - mu) / sd).astype(np.float32))


@torch.no_grad()
def _fold(head: nn.Linear, mu: np.ndarray, sd: np.ndarray) -> nn.Linear:
    mu, sd = torch.from_numpy(mu), torch.from_numpy(sd)
    out = nn.Linear(head.in_features, head.out_features)
    out.weight.copy_(head.weight / sd)
    out.bias.copy_(head.bias - (head.weight / sd) @ mu)
    return out


def caption_texts(caption: str) -> list[str]:
    """A clip's caption field (texts separated by newlines) as its list of texts (one empty text when it has none)."""
    texts = [t.strip() for t in str(caption).split("\n") if t.strip()]
    return texts or [""]


def _trim(audio: np.ndarray, sr: int, max_s: float) -> np.ndarray:
    return np.asarray(audio, dtype=np.float32)[: int(max_s * sr)]


def resolve_auto(retrieval: str, inject: str) -> dict[str, str]:
    """The one resolver of the model name `auto` (the index build's plan and the index stage's freshness key both
    call it, so a key never names a model the build did not use): the published CLAP (retrieval) / AST (injection)
    when the hub cache (HF_HOME) holds them, else the demo retrieval model / aisfx. Returns {"retrieval": ...,
    "inject": ...} for the settings that are `auto` (clap:<id> / demo, ast:<id> / aisfx)."""
    from huggingface_hub import try_to_load_from_cache

    def cached(repo: str) -> bool:
        return isinstance(try_to_load_from_cache(repo, "config.json"), str)

    out = {}
    if retrieval == "auto":
        out["retrieval"] = f"clap:{PUBLISHED_CLAP}" if cached(PUBLISHED_CLAP) else "demo"
    if inject == "auto":
        out["inject"] = f"ast:{PUBLISHED_AST}" if cached(PUBLISHED_AST) else "aisfx"
    return out


@dataclass(frozen=True)
class IndexPlan:
    """Which encoders an index needs, resolved once in the driver (auto → what is available offline)."""

    retrieval: str  # clap | demo
    retrieval_spec: str  # the audio encoder of the retrieval side: clap:<id>, or the demo's aisfx | melstats
    inject_spec: str  # the injection encoder; "" = reuse the retrieval embedding
    inject_desc: str
    local_only: tuple[str, ...] = ()  # specs resolved from `auto`: load from local files only
    notes: tuple[str, ...] = ()

    @property
    def specs(self) -> tuple[str, ...]:
        """The encoders every clip goes through (each once)."""
        return tuple(dict.fromkeys(s for s in (self.retrieval_spec, self.inject_spec) if s))


def plan_index(config: IndexConfig) -> IndexPlan:
    notes: list[str] = []
    local: list[str] = []
    auto = resolve_auto(config.retrieval, config.inject)
    retrieval = auto.get("retrieval", config.retrieval)
    if "retrieval" in auto:
        if retrieval == "demo":
            notes.append(f"clap:{PUBLISHED_CLAP} not in the hub cache; retrieval auto -> demo")
        else:
            local.append(retrieval)  # from the cache only: a load that fails is an error, never another model
    if retrieval.startswith("clap:"):
        retrieval, r_spec = "clap", retrieval
    elif retrieval == "demo":
        r_spec = config.demo_audio
    else:
        raise UnknownNameError(f"index retrieval {config.retrieval!r}: expected clap:<id or path>, demo or auto")
    r_desc = r_spec if retrieval == "clap" else demo_retrieval_name(config.demo_audio)
    inject = auto.get("inject", config.inject)
    if "inject" in auto:
        if inject == "aisfx":
            notes.append(f"ast:{PUBLISHED_AST} not in the hub cache; inject auto -> aisfx")
        else:
            local.append(inject)
    if inject == "retrieval":
        i_spec, i_desc = "", f"retrieval:{r_desc}"
    else:
        i_spec, i_desc = inject, inject
    return IndexPlan(retrieval, r_spec, i_spec, i_desc, tuple(local), tuple(notes))


class ClipEmbedder:
    """The per-clip work of the index: every encoder of a plan, loaded once (one per worker process or Ray actor).
    `embed(audio: float32[samples] mono, sr Hz)` → {encoder spec: float32[d]}, audio beyond max_audio_s ignored;
    `embed_texts(texts)` → the demo retrieval model's frozen text side on one clip's texts, float32[len(texts), h]
    (None for CLAP, whose text side is not trained here). Both per clip, so that a clip's floats do not depend on
    which clips share its batch (the engines batch differently) and the text side runs where the audio side does."""

    def __init__(self, plan: IndexPlan, config: IndexConfig):
        from models.audio_encoders import load_audio_encoder

        self.max_audio_s = config.max_audio_s
        self.encoders = {s: load_audio_encoder(s, device=config.device, local_only=True if s in plan.local_only else None,
                                               precision=config.precision) for s in plan.specs}
        self.text_side = None
        if plan.retrieval == "demo":
            from models.loading import load_encoder, load_tokenizer

            self.text_side = (load_tokenizer(config.text_encoder), load_encoder(config.text_encoder).to(config.device))
        self.device = config.device

    def embed(self, audio: np.ndarray, sr: int) -> dict[str, np.ndarray]:
        a = _trim(audio, sr, self.max_audio_s)
        return {s: np.asarray(enc.encode([a], sr)[0], dtype=np.float32) for s, enc in self.encoders.items()}

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray | None:
        if self.text_side is None:
            return None
        return encode_sentences(list(texts), *self.text_side, batch=max(1, len(texts)), device=self.device)


def build_index(
    clips: Sequence[tuple[str, np.ndarray, int, str]], config: IndexConfig | None = None, quiet: bool = True
) -> AudioIndex:
    """Embed clips (clip_id, float32[samples] mono, sr Hz, caption text — several texts split by newlines)
    for retrieval and injection. With the demo retrieval model, train it first (held-out clips excluded).
    In memory: for a corpus, the index stage maps `ClipEmbedder` over the clips and calls `finish_index`."""
    from tqdm import tqdm

    config = config or IndexConfig()
    if not clips:
        raise InputError("build_index: no clips")
    plan = plan_index(config)
    embedder = ClipEmbedder(plan, config)
    rows = [embedder.embed(a, sr) for _, a, sr, _ in tqdm(clips, desc="embed", disable=quiet)]
    raw = {s: np.stack([r[s] for r in rows]).astype(np.float32) for s in plan.specs}
    texts = [embedder.embed_texts(caption_texts(str(c[3]))) for c in clips]
    text_raw = np.concatenate(texts) if embedder.text_side is not None else None
    return finish_index([c[0] for c in clips], [str(c[3]) for c in clips], raw, plan, config, text_raw)


def finish_index(ids: list[str], captions: list[str], raw: dict, plan: IndexPlan, config: IndexConfig, text_raw=None,
                 out_dir: str | Path | None = None, fit_ids: set[str] | None = None) -> AudioIndex:
    """The index from per-clip raw embeddings ({spec: float32[n, d]}, rows in ids order; arrays, RowFiles or
    RowSubsets): trains the demo retrieval model (or measures CLAP's recall) and picks the injection embeddings.
    text_raw (demo model): the frozen text side's rows of every clip's caption_texts, clip after clip
    (`ClipEmbedder.embed_texts`). With out_dir, the index's embeddings are written there a block of rows at a time
    (retrieval_embeddings.npy, inject_embeddings.npy; the index holds them memory-mapped, read-only), so no [n, d]
    array is ever whole in memory; `AudioIndex.save(out_dir)` then adds the rest.
    fit_ids: the clips the demo model may learn from (a build: its train split's clips, so no dev or test caption
    reaches a learned weight); None: a hash-chosen 1 - holdout_frac of the clips (an index of a foreign corpus).
    Every clip is retrievable either way; recall@k is measured on the clips it did not learn from."""
    if not ids:
        raise InputError("build_index: no clips")
    text_head, project = None, None
    r_desc = plan.retrieval_spec if plan.retrieval == "clap" else demo_retrieval_name(config.demo_audio)
    if plan.retrieval == "clap":
        name = plan.retrieval_spec.split(":", 1)[1]
        text_side = {"kind": "clap", "name": name}
        if is_laion_checkpoint(name):  # the file holds no tokenizer: the index names the one it was built with
            text_side["tokenizer"] = config.clap_tokenizer
        metrics = _clap_recall(name, ids, captions, raw[plan.retrieval_spec], config)
    else:
        if text_raw is None:
            raise InputError("build_index: the demo retrieval model needs the text side's embeddings (text_raw)")
        text_head, a_head, metrics = _train_demo(ids, captions, raw[plan.retrieval_spec], text_raw, config, fit_ids)
        metrics["model"] = r_desc
        text_side = {"kind": "demo", "encoder": config.text_encoder,
                     "audio_encoder": "aisfx-x-sequential-ce" if config.demo_audio == "aisfx" else config.demo_audio}
        project = functools.partial(_project, a_head)
    r_emb = _rows_out(raw[plan.retrieval_spec], project, out_dir, "retrieval_embeddings.npy")
    i_emb = _rows_out(raw[plan.inject_spec] if plan.inject_spec else r_emb, None, out_dir, "inject_embeddings.npy")
    models = {"retrieval": r_desc, "inject": plan.inject_desc, "text_side": text_side, "notes": list(plan.notes),
              "config": _jsonable(asdict(config))}
    return AudioIndex(list(ids), list(captions), r_emb, i_emb, models, metrics, text_head)


@torch.no_grad()
def _project(head: nn.Linear, block: np.ndarray) -> np.ndarray:
    """A demo head (text or audio side) on raw embeddings: L2-normalised rows in the joint space."""
    return F.normalize(head(torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))), dim=-1).numpy()


def _rows_out(src, fn, out_dir: str | Path | None, name: str) -> np.ndarray:
    """fn (None: as they are) over src's rows a block at a time: into out_dir/name (returned memory-mapped,
    read-only: untouched rows cost no memory) or, without out_dir, into one array."""
    from models._io import RowFile, row_chunks

    blocks = ((s, b if fn is None else fn(b)) for s, b in row_chunks(src))
    if out_dir is None:
        return np.concatenate([b for _, b in blocks]).astype(np.float32, copy=False)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    sink = None
    try:
        for s, b in blocks:
            if sink is None:
                sink = RowFile.create(Path(out_dir) / name, len(src), b.shape[1])
            sink[s:s + len(b)] = b
        path = sink.commit()
    except BaseException:
        if sink is not None:
            sink.discard()
        raise
    return np.load(path, mmap_mode="r")


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=list))


def _heldout_mask(ids: Sequence[str], config: IndexConfig, fit_ids: set[str] | None = None) -> np.ndarray:
    """True for the clips the demo model does not learn from: those not in fit_ids, else a hash-chosen holdout_frac."""
    if fit_ids is not None:
        return np.array([i not in fit_ids for i in ids])
    return np.array([unit_interval(i, f"retrieval-holdout-{config.seed}") < config.holdout_frac for i in ids])


def _train_demo(ids, captions, audio_raw, t_raw, config: IndexConfig, fit_ids: set[str] | None = None):
    """Train the demo projections on the non-held-out clips; return (text head, audio head, recall metrics).
    t_raw: the text side's rows of every clip's caption_texts, clip after clip (arrays or RowFiles: read by rows)."""
    from models._io import RowSubset

    owner = np.array([j for j, cap in enumerate(captions) for _ in caption_texts(cap)], dtype=np.int64)
    if len(owner) != len(t_raw):
        raise InputError(f"build_index: {len(t_raw)} text embeddings for {len(owner)} caption texts")
    held = _heldout_mask(ids, config, fit_ids)
    if held.all() or (~held).sum() < 2:
        raise InputError(f"build_index: {int((~held).sum())} clips left for the demo retrieval training; need at least 2")
    train_clips = np.flatnonzero(~held)
    remap = -np.ones(len(ids), dtype=np.int64)
    remap[train_clips] = np.arange(len(train_clips))
    rows = np.flatnonzero(~held[owner])
    t_head, a_head = train_projection(RowSubset(t_raw, rows), RowSubset(audio_raw, train_clips), remap[owner[rows]], config)
    metrics = {"n_heldout": int(held.sum()), "n_train": int(len(train_clips)), "model": DEMO_RETRIEVAL_NAME}
    sample = _recall_sample(ids, np.flatnonzero(held), config)
    if len(sample) >= 2:
        first = np.searchsorted(owner, sample)  # each held-out clip queried by its first caption (owner is sorted)
        t_emb = _project(t_head, np.asarray(t_raw[first]))
        metrics.update(recall_at_k(t_emb, _project(a_head, np.asarray(audio_raw[sample])), config.ks))
        metrics["chance@1"] = float(1.0 / len(sample))
        metrics["n_recall_sample"] = int(len(sample))
    return t_head, a_head, metrics


def _recall_sample(ids, rows: np.ndarray, config: IndexConfig) -> np.ndarray:
    """At most config.recall_sample of the given rows (the first by a hash of the clip id), in row order: recall@k
    costs an O(sample²) matrix whatever the corpus size, and the sample does not depend on row order."""
    if len(rows) <= config.recall_sample:
        return np.asarray(rows, dtype=np.int64)
    h = np.array([unit_interval(ids[j], f"retrieval-recall-{config.seed}") for j in rows])
    return np.sort(np.asarray(rows)[np.argsort(h, kind="stable")[: config.recall_sample]])


def _clap_recall(name: str, ids, captions, r_emb: np.ndarray, config: IndexConfig) -> dict:
    """CLAP is not trained here, so every clip counts as held out: recall@k of first captions over a fixed-size
    sample of the index (config.recall_sample clips)."""
    side = _ClapTextSide(name, device=config.device, tokenizer_name=config.clap_tokenizer)
    sample = _recall_sample(ids, np.arange(len(ids)), config)
    t = side([caption_texts(captions[j])[0] for j in sample])
    out = {"n_heldout": len(ids), "n_recall_sample": int(len(sample)), "model": f"clap:{name}"}
    out.update(recall_at_k(t, r_emb[sample], config.ks))
    return out
