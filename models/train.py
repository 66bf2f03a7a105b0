"""Train AudioBERT (or its text-only twin) on a release, readable top to bottom.

    train(release_path, TrainConfig(), out_dir) -> out_dir

1. Load the release (`benchmark.release_io.load_release`) and its audio index (`<release>/audio_index/`, or a path).
2. Train the span detector on every task's train split; report span P/R/F1 on dev (test when no dev).
3. Retrieve, once, the clip of each span ("<span> sound", top-k by similarity) and keep its injection embedding,
   so a training step costs about what a text-only step costs.
4. Train: AdamW, cosine schedule with warmup, answers of several word pieces as several [MASK]s. A checkpoint of
   the trainable weights, optimiser and schedule is written after every epoch; a rerun with the same config
   resumes from it.
5. Write the final checkpoint: config.json (this config, release name/version, index models, metrics),
   model.pt (trained weights: LoRA, projection, MLM head when new), tokenizer/, detector/.

Published setting (the TrainConfig defaults): 20 epochs, batch 32, lr 3e-4, cosine, 10 % warmup; LoRA r 64,
alpha 128 on query/key/value; detector 5 epochs, batch 16, lr 1e-5. `TrainConfig.demo()` is the small demo setting.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from benchmark.errors import ConfigError, InputError, ModelLoadError
from benchmark.hashing import stable_hash

__all__ = [
    "TrainConfig",
    "train",
    "TrainedModel",
    "load_checkpoint",
    "retrieve_span_audio",
    "task_items",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = 1


@dataclass
class TrainConfig:
    """Everything a training run depends on; the defaults are the published AudioBERT settings."""

    lm: str = "bert-base-uncased"  # hub id, local path, or 'minilm'
    detector_encoder: str = ""  # '' = the same as lm
    mode: str = "audiobert"  # audiobert | text (same model and gate, no audio injected)
    tasks: tuple[str, ...] = ()  # () = every task of the release
    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-4
    head_lr: float = 0.0  # 0 = lr; used for a freshly initialised MLM head
    audio_lr: float = 0.0  # 0 = lr; for the fresh audio projection and its gate (audiobert mode)
    weight_decay: float = 0.01
    warmup_frac: float = 0.1
    schedule: str = "cosine"  # cosine | linear | constant
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("query", "key", "value")
    injection: str = "add"  # add | replace
    retrieval_k: int = 1  # top-k clips per span; k > 1 averages them weighted by similarity
    detector_epochs: int = 5
    detector_batch_size: int = 16
    detector_lr: float = 1e-5
    detector_dir: str = ""  # reuse a trained span detector (a detector/ folder) instead of training one
    train_spans: str = "gold"  # gold | detector: where training spans come from
    eval_spans: str = "detector"  # detector | gold
    max_length: int = 128
    seed: int = 0
    device: str = "cpu"  # cpu | cuda
    amp: bool = True  # bf16 autocast on cuda
    index_dir: str = ""  # '' = the release's audio_index/
    stop_after_epoch: int = 0  # > 0: stop (resumably) after this epoch; for tests and time-boxed runs

    @classmethod
    def demo(cls, **overrides) -> "TrainConfig":
        """The small demo setting: MiniLM (shipped offline), fewer epochs, a smaller adapter, larger lr."""
        base = dict(
            lm="minilm", epochs=4, batch_size=16, lr=2e-3, head_lr=2e-3, lora_r=8, lora_alpha=16,
            detector_epochs=3, detector_lr=1e-4, max_length=64,
            train_spans="detector",  # train on the spans eval will see: retrieval of a slightly other span finds another clip
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"train config: unknown keys {unknown}")
        d = dict(d)
        for k in ("tasks", "lora_targets"):
            if k in d and d[k] is not None:
                d[k] = tuple(d[k])
        return cls(**d)

    @classmethod
    def from_params(cls, params: dict) -> "TrainConfig":
        """From the `train:` section of params.yaml: `preset: demo|published` plus overrides."""
        p = dict(params or {})
        preset = p.pop("preset", "published")
        if preset not in ("demo", "published"):
            raise ConfigError(f"train.preset {preset!r}: expected demo or published")
        base = asdict(cls.demo() if preset == "demo" else cls())
        base.update({k: v for k, v in p.items() if v is not None})
        return cls.from_dict(base)

    def key(self) -> str:
        """Hash of the settings that change the result (not stop_after_epoch / device)."""
        d = asdict(self)
        for k in ("stop_after_epoch", "device", "amp"):
            d.pop(k)
        return stable_hash(d)


# ---------------------------------------------------------------- data


def task_items(release, tasks: Sequence[str], split: str) -> list[dict]:
    """Items of the given tasks and split as dicts (task, sentence, answer, spans, id)."""
    rows = []
    for task in tasks:
        df = release.items(task, split)
        for r in df.itertuples(index=False):
            rows.append({"id": r.id, "task": task, "sentence": r.sentence, "answer": str(r.answer), "spans": list(r.spans)})
    return rows


def retrieve_span_audio(index, spans: Sequence[Sequence[str]], k: int = 1) -> tuple[list[np.ndarray], list[list[dict]]]:
    """Per item: float32[n_spans, inject_dim] audio of the clip(s) retrieved for each span ("<span> sound"),
    and the hits kept (clip id + similarity). Each distinct span text is queried once."""
    from models.retrieval import query_text

    uniq = sorted({s for sp in spans for s in sp})
    hits = {}
    if uniq:
        found = index.search([query_text(s) for s in uniq], k=k)
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


def _pad_audio(audio: Sequence[np.ndarray], dim: int) -> torch.Tensor:
    s = max([len(a) for a in audio] + [1])
    out = torch.zeros(len(audio), s, dim)
    for i, a in enumerate(audio):
        if len(a):
            out[i, : len(a)] = torch.from_numpy(a)
    return out


# ---------------------------------------------------------------- the trained model, as eval uses it


class TrainedModel:
    """An AudioBERT checkpoint with its detector, tokenizer and audio index: scores items of a task."""

    def __init__(self, model, tokenizer, detector, index, config: TrainConfig, meta: dict):
        self.model, self.tokenizer, self.detector, self.index = model, tokenizer, detector, index
        self.config, self.meta = config, meta
        self.span_cache: dict = {}  # (detector digest, sentence) -> spans; evaluate shares one across models
        self._detector_key = _file_digest(meta.get("_dir", ""), "detector/span_detector.pt")

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
    def score(self, items: Sequence[dict], choices: Sequence[str], batch_size: int = 32) -> np.ndarray:
        from models.audiobert import score_choices

        self.model.eval()
        dev = self.config.device
        spans = self.spans_for(items)
        audio = None
        if self.config.mode == "audiobert" and self.index is not None:
            audio, _ = retrieve_span_audio(self.index, spans, self.config.retrieval_k)
        dim = self.index.inject_dim if self.index is not None else 1

        def audio_fn(idx, batch):
            return None if audio is None else _pad_audio([audio[i] for i in idx], dim).to(dev)

        with _autocast(self.config):
            return score_choices(
                self.model.mask_logits, self.tokenizer, [it["sentence"] for it in items], spans, choices,
                audio_fn=audio_fn, batch_size=batch_size, max_length=self.config.max_length, device=dev,
            )


def _file_digest(root: str, rel: str) -> str:
    from benchmark.hashing import sha256_file

    p = Path(root) / rel
    return sha256_file(p) if root and p.exists() else f"unhashed:{root}"


def _autocast(config: TrainConfig):
    import contextlib

    if config.device.startswith("cuda") and config.amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _build_model(config: TrainConfig, inject_dim: int):
    from models.audiobert import AudioBERT, AudioBertConfig
    from models.loading import load_masked_lm, load_tokenizer

    tok = load_tokenizer(config.lm, need_mask=True)
    mlm, head_is_new = load_masked_lm(config.lm, allow_new_head=True)
    bcfg = AudioBertConfig(
        lm=config.lm, inject_audio=config.mode == "audiobert", injection=config.injection, inject_dim=inject_dim,
        lora_r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout, lora_targets=config.lora_targets,
    )
    torch.manual_seed(config.seed)
    model = AudioBERT(mlm, bcfg, train_head=head_is_new)
    return model, tok, head_is_new


def load_checkpoint(ckpt_dir: str | Path, device: str = "cpu", release=None) -> TrainedModel:
    """Reload a checkpoint written by `train` (the base LM is loaded by the name in its config)."""
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
    model, tok, _ = _build_model(config, meta["inject_dim"])
    model.load_trainable_state(torch.load(d / "model.pt", map_location="cpu", weights_only=True))
    model.to(device).eval()
    detector = SpanDetector.load(d / "detector", device=device) if (d / "detector").is_dir() else None
    index = None
    if config.mode == "audiobert":
        idx_dir = Path(meta.get("index_dir") or "")
        if release is not None and release.audio_index_dir is not None:
            idx_dir = release.audio_index_dir
        if not idx_dir.is_dir():
            raise ModelLoadError(f"{d}: its audio index {idx_dir} is missing")
        index = AudioIndex.load(idx_dir)
    return TrainedModel(model, tok, detector, index, config, meta)


# ---------------------------------------------------------------- training


def _lr_lambda(config: TrainConfig, total: int):
    warm = int(round(config.warmup_frac * total))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / max(1, warm)
        if config.schedule == "constant":
            return 1.0
        frac = (step - warm) / max(1, total - warm)
        if config.schedule == "linear":
            return max(0.0, 1.0 - frac)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))

    return f


def _train_detector(release, tasks, config: TrainConfig, out_dir: Path, quiet: bool):
    from models._io import atomic_write_text
    from models.span_detector import SpanConfig, SpanDetector, span_scores, train_span_detector

    report_path = out_dir / "detector" / "report.json"
    if report_path.exists():  # a resumed run keeps the detector it trained before
        report = json.loads(report_path.read_text(encoding="utf-8"))
        if report.get("config_key") == config.key():
            return SpanDetector.load(out_dir / "detector", device=config.device), report["report"]
    if config.detector_dir:
        det = SpanDetector.load(config.detector_dir, device=config.device)
        det.save(out_dir / "detector")
        return det, {"reused": config.detector_dir}
    torch.manual_seed(config.seed)
    scfg = SpanConfig(
        encoder=config.detector_encoder or config.lm, epochs=config.detector_epochs, batch_size=config.detector_batch_size,
        lr=config.detector_lr, max_length=config.max_length, seed=config.seed, device=config.device,
    )
    det = SpanDetector.from_pretrained_encoder(scfg)
    train = task_items(release, tasks, "train")
    losses = train_span_detector(det, [it["sentence"] for it in train], [it["spans"] for it in train], quiet=quiet)
    scores = {}
    for split in ("dev", "test"):
        items = task_items(release, tasks, split)
        if items:
            scores[split] = span_scores(det.predict([it["sentence"] for it in items]), [it["spans"] for it in items])
    det.save(out_dir / "detector")
    report = {"losses": losses, "scores": scores}
    atomic_write_text(report_path, json.dumps({"config_key": config.key(), "report": report}, indent=2) + "\n")
    return det, report


def train(release_path: str | Path, config: TrainConfig | None = None, out_dir: str | Path = "runs/audiobert", quiet: bool = True) -> Path:
    """Train on a release and write a self-describing checkpoint to out_dir; resumes an interrupted run."""
    from tqdm import tqdm

    from benchmark.release_io import load_release
    from models._io import atomic_write_text, save_torch
    from models.audiobert import answer_pieces, encode_items
    from models.retrieval import AudioIndex

    config = config or TrainConfig()
    if config.mode not in ("audiobert", "text"):
        raise ConfigError(f"train.mode {config.mode!r}: expected audiobert or text")
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("train.device cuda: no CUDA device is available")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    release = load_release(release_path)
    tasks = list(config.tasks) or release.tasks
    t0 = time.perf_counter()

    # 1. audio index
    index = None
    idx_dir = Path(config.index_dir) if config.index_dir else release.audio_index_dir
    if config.mode == "audiobert":
        if idx_dir is None or not Path(idx_dir).is_dir():
            raise InputError(f"{release.path}: no audio_index/ in the release (and no index_dir given); AudioBERT needs one")
        index = AudioIndex.load(idx_dir)
    inject_dim = index.inject_dim if index is not None else 1

    # 2. span detector
    detector, det_report = _train_detector(release, tasks, config, out, quiet)

    # 3. data: widened masks, answer pieces, retrieved audio (once)
    model, tok, head_is_new = _build_model(config, inject_dim)
    items = task_items(release, tasks, "train")
    if not items:
        raise InputError(f"{release.path}: no train items for tasks {tasks}")
    spans = [it["spans"] for it in items] if config.train_spans == "gold" else detector.predict([it["sentence"] for it in items])
    pieces = [answer_pieces(tok, it["answer"]) for it in items]
    audio = retrieve_span_audio(index, spans, config.retrieval_k)[0] if index is not None else None

    # 4. optimiser, schedule, resume
    dev = torch.device(config.device)
    model.to(dev)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    is_head = lambda n: "cls." in n or "lm_head" in n  # noqa: E731
    is_audio = lambda n: n.split(".")[0] in ("proj", "audio_norm", "audio_gate")  # noqa: E731
    groups = [{"params": [p for n, p in named if not is_head(n) and not is_audio(n)], "lr": config.lr}]
    for params, lr in (([p for n, p in named if is_head(n)], config.head_lr), ([p for n, p in named if is_audio(n)], config.audio_lr)):
        if params:
            groups.append({"params": params, "lr": lr or config.lr})
    opt = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    steps_per_epoch = (len(items) + config.batch_size - 1) // config.batch_size
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(config, steps_per_epoch * config.epochs))
    start_epoch, history = 0, []
    last = out / "last" / "state.pt"
    if last.exists():
        state = torch.load(last, map_location="cpu", weights_only=True)
        if state.get("config_key") == config.key():
            model.load_trainable_state(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            start_epoch, history = state["epoch"], state["history"]
            if not quiet:
                print(f"[train] resuming from epoch {start_epoch} ({last})")

    # 5. the loop
    for epoch in range(start_epoch, config.epochs):
        model.train()
        order = list(range(len(items)))
        random.Random(config.seed * 1000 + epoch).shuffle(order)
        total, n = 0.0, 0
        for s in tqdm(range(0, len(order), config.batch_size), desc=f"epoch {epoch + 1}/{config.epochs}", disable=quiet):
            idx = order[s : s + config.batch_size]
            n_masks = [len(pieces[i]) for i in idx]
            batch = encode_items(tok, [items[i]["sentence"] for i in idx], n_masks, [spans[i] for i in idx], config.max_length).to(dev)
            targets = torch.full(batch.mask_pos.shape, -100, dtype=torch.long)
            for r, i in enumerate(idx):
                targets[r, : len(pieces[i])] = torch.tensor(pieces[i])
            a = _pad_audio([audio[i] for i in idx], inject_dim).to(dev) if audio is not None else None
            with _autocast(config):
                loss = model.loss(batch, targets.to(dev), a)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            opt.step()
            sched.step()
            total, n = total + loss.item(), n + 1
        history.append({"epoch": epoch + 1, "loss": total / max(1, n), "audio_share": round(model.audio_share(), 4)})
        save_torch(last, {
            "config_key": config.key(), "epoch": epoch + 1, "history": history, "model": model.trainable_state(),
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(),
        })
        if config.stop_after_epoch and epoch + 1 >= config.stop_after_epoch and epoch + 1 < config.epochs:
            return out

    # 6. the checkpoint
    save_torch(out / "model.pt", model.trainable_state())
    tok.save_pretrained(str(out / "tokenizer"))
    meta = {
        "format": CHECKPOINT_FORMAT,
        "name": f"{'AudioBERT' if config.mode == 'audiobert' else 'text-only'}({_short(config.lm)})",
        "config": asdict(config),
        "release": {"name": release.name, "version": release.version, "path": str(release.path)},
        "tasks": tasks,
        "inject_dim": inject_dim,
        "index_dir": str(idx_dir) if idx_dir is not None else "",
        "index_models": index.models if index is not None else {},
        "retrieval_metrics": index.metrics if index is not None else {},
        "head_is_new": head_is_new,
        "history": history,
        "span_detector": det_report,
        "train_items": len(items),
        "train_s": round(time.perf_counter() - t0, 2),
    }
    atomic_write_text(out / "config.json", json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return out


def _short(name: str) -> str:
    return Path(str(name)).name if "/" in str(name) or "\\" in str(name) else str(name)
