"""Train AudioBERT (or its text-only twin) on a release, readable top to bottom.

    train(release_path, TrainConfig(), out_dir, RunOptions()) -> out_dir

1. Load the release (`benchmark.release_io.load_release`) and its audio index (`<release>/audio_index/`, or a path).
2. Train the span detector on every task's train split; report span P/R/F1 on dev (test when no dev).
3. The training examples, once: each item's spans, answer pieces, and the audio retrieved for its spans
   (`models.data.SpanHits`: retrieval and re-ranking computed once) — plus its own clips' audio for name dropout.
4. Each epoch, the augmentations are item transforms applied to those examples outside the loop (`augment`):
   name dropout (span words replaced by made-up words; the item's own clips' audio is then all it has) and swapped
   pairs (a comparison's two spans, their audio and the answer exchanged). The loop is AdamW with a cosine schedule
   and warmup, answers of several word pieces as several [MASK]s. After every epoch the trainable weights, optimiser
   and schedule are saved; a rerun with the same config resumes from them.
5. The checkpoint: config.json (format, this config, release, index models, metrics), model.pt (the trained weights:
   LoRA, the audio path, the MLM head when new), tokenizer/, detector/.

What each setting does and which recipe sets it: `models.config` (the published AudioBERT and the demo recipe).
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from benchmark.errors import ConfigError, InputError
from benchmark.hashing import stable_hash
from models.audiobert import audio_token, build_model
from models.config import CHECKPOINT_FORMAT, RunOptions, TrainConfig
from models.data import SpanHits, fit_rows, oracle_span_audio, own_captions, pad_audio, task_items
from models.infer import autocast
from models.placement import left_out_summary, placeable_items

__all__ = ["TrainConfig", "RunOptions", "train", "train_detector", "drop_names", "swap_spans", "augment", "Example", "MADE_UP_WORDS"]

# words no tokenizer knows as a name of anything (and no sentence of a task contains)
MADE_UP_WORDS = ("blicket", "wugsy", "daxen", "zorbo", "fepple", "tomble", "kikiri", "boubon", "gorpin", "snibbet",
                 "vornak", "quellip", "jebbin", "pilkor", "tufalo", "modrix")


# ---------------------------------------------------------------- training


def _lr_lambda(config: TrainConfig, total: int):
    """Linear warmup over warmup_frac of the steps, then cosine decay to 0."""
    warm = int(round(config.warmup_frac * total))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / max(1, warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return f


def drop_names(sentence: str, spans: list[str], rng: random.Random) -> tuple[str, list[str]]:
    """The sentence with each span (a whole-word occurrence, not overlapping another span or the [MASK]) replaced by a
    different made-up word, capitalised like the span, and the made-up words as its spans. When a span has no such
    occurrence the item is left as it was."""
    from benchmark.schema import MASK

    words = rng.sample(MADE_UP_WORDS, len(spans))
    taken = [(sentence.find(MASK), sentence.find(MASK) + len(MASK))] if MASK in sentence else []
    ranges = []
    for sp in spans:
        sp = sp.strip()
        hit = next((m for m in re.finditer(r"(?<!\w)" + re.escape(sp) + r"(?!\w)", sentence, flags=re.IGNORECASE)
                    if not any(a < m.end() and m.start() < b for a, b in taken)), None) if sp else None
        if hit is None:
            return sentence, list(spans)
        taken.append((hit.start(), hit.end()))
        ranges.append((hit.start(), hit.end()))
    new = [w.capitalize() if sentence[a:a + 1].isupper() else w for w, (a, _) in zip(words, ranges)]
    out = sentence
    for (a, b), w in sorted(zip(ranges, new), reverse=True):
        out = out[:a] + w + out[b:]
    return out, new


def swap_spans(sentence: str, spans: list[str]) -> tuple[str, list[str]] | None:
    """The sentence with its two spans' words exchanged ("A is [MASK] than B" -> "B is [MASK] than A") and the spans
    in their new order, or None when the item has not exactly two spans found apart in the sentence."""
    from models.span_detector import own_range

    if len(spans) != 2:
        return None
    try:
        a = own_range(sentence, spans[0], [])
        b = own_range(sentence, spans[1], [a])
    except InputError:
        return None
    (x0, x1), (y0, y1) = sorted([a, b])
    first, second = sentence[x0:x1], sentence[y0:y1]
    return sentence[:x0] + second + sentence[x1:y0] + first + sentence[y1:], list(reversed(spans))


@dataclass
class Example:
    """One training row of one epoch: the text the model reads, its spans, the answer's word pieces, the audio of its
    spans (float32[n_spans, inject_dim], None for the text twin)."""

    sentence: str
    spans: list[str]
    answer: list[int]
    audio: np.ndarray | None
    own: np.ndarray | None = None  # the item's own clips' audio (what name dropout leaves it)
    flipped: list[int] | None = None  # the answer's pieces with the spans exchanged (two-choice comparisons)
    context: str | None = None  # the caption twin's: the retrieved clips' captions, read after the sentence
    own_context: str | None = None  # the item's own clips' captions (what name dropout leaves the caption twin)


def augment(examples: list[Example], epoch: int, config: TrainConfig) -> list[Example]:
    """The examples of one epoch: name dropout, then swapped pairs, each drawn anew per epoch from the seed."""
    drop = random.Random(config.seed * 7919 + epoch)
    dropped = [bool(ex.spans) and drop.random() < config.name_dropout for ex in examples]  # decisions first, then words
    out = []
    for ex, d in zip(examples, dropped):
        if d:
            sentence, spans = drop_names(ex.sentence, ex.spans, drop)
            ex = replace(ex, sentence=sentence, spans=spans, audio=ex.own if ex.own is not None else ex.audio,
                         context=ex.own_context if ex.own_context is not None else ex.context)
        out.append(ex)
    swap = random.Random(config.seed * 104729 + epoch)
    for i, ex in enumerate(out):
        if ex.flipped is not None and config.swap_pairs and swap.random() < config.swap_pairs:
            turned = swap_spans(ex.sentence, ex.spans)
            if turned is not None:
                out[i] = replace(ex, sentence=turned[0], spans=turned[1], answer=ex.flipped, flipped=ex.answer,
                                 audio=None if ex.audio is None else ex.audio[::-1].copy())
    return out


def resume_key(config: TrainConfig, options: RunOptions, release, *files) -> str:
    """What a saved state (an epoch's, a trained detector's) must match to be resumed: the config, the caller's code
    version (options.resume_key), the release's item tables and the given files (the index's, the detector's
    weights). A rerun after any of them changed starts over instead of returning what the old inputs made."""
    from benchmark.hashing import sha256_file

    tables = sorted(Path(release.path).glob("*/*.parquet"))
    return stable_hash([config.key(), options.resume_key, *[[p.parent.name, p.name, sha256_file(p)] for p in tables],
                        *[sha256_file(f) if Path(f).is_file() else "" for f in files]])


def train_detector(release, tasks, config: TrainConfig, options: RunOptions, out_dir: Path, quiet: bool = True):
    """(the span detector, its report) in out_dir/detector/: trained on the train split of `tasks` with span P/R/F1
    on dev and test, or, with options.detector_dir, that folder's detector copied, its report (its scores) with it."""
    from models._io import atomic_write_text
    from models.span_detector import SpanConfig, SpanDetector, span_scores, train_span_detector

    # seeded first, whichever way the detector comes (build_model seeds again before the LM and its fresh head load)
    torch.manual_seed(config.seed)
    report_path = out_dir / "detector" / "report.json"
    state_key = resume_key(config, options, release)
    if report_path.exists():  # a resumed run keeps the detector it trained before
        report = json.loads(report_path.read_text(encoding="utf-8"))
        if report.get("state_key") == state_key:
            return SpanDetector.load(out_dir / "detector", device=options.device), report["report"]
    if options.detector_dir:
        det = SpanDetector.load(options.detector_dir, device=options.device)
        det.save(out_dir / "detector")
        given = Path(options.detector_dir) / "report.json"
        scores = json.loads(given.read_text(encoding="utf-8"))["report"].get("scores", {}) if given.exists() else {}
        return det, {"reused": options.detector_dir, "scores": scores}
    scfg = SpanConfig(encoder=config.lm, epochs=config.detector_epochs, batch_size=config.detector_batch_size,
                      lr=config.detector_lr, max_length=config.max_length, seed=config.seed, device=options.device)
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
    atomic_write_text(report_path, json.dumps({"state_key": state_key, "report": report}, indent=2) + "\n")
    return det, report


def _examples(release, tasks, config: TrainConfig, options: RunOptions, tok, detector, index) -> tuple[list[Example], list[dict]]:
    """The train split's items as examples — spans (gold or the detector's), answer pieces (and, for a two-choice
    comparison, the flipped answer's), the retrieved audio and, with name dropout, the item's own clips' audio — and
    the items left out because a span cannot be placed (models.placement), with their reasons."""
    from models.audiobert import answer_pieces

    items = task_items(release, tasks, "train")
    if not items:
        raise InputError(f"{release.path}: no train items for tasks {tasks}")
    spans = [it["spans"] for it in items] if config.train_spans == "gold" else detector.predict([it["sentence"] for it in items])
    # task -> answer -> the answer with the two spans exchanged (choices [more, less])
    other = {t: dict(zip(release.choices(t), release.choices(t)[::-1])) for t in tasks
             if release.kind(t) == "comparison" and len(release.choices(t)) == 2}
    # every item placed up front by the code training uses (as given, names dropped, sources swapped), or left out
    items, spans, left_out = placeable_items(items, spans, tok, config, other, drop=drop_names, swap=swap_spans)
    audio = own = context = own_context = [None] * len(items)
    if index is not None:
        hits = SpanHits.compute(index, [s for sp in spans for s in sp], config.retrieval_k, config.rerank, options.device)
        if config.mode == "audiobert":
            audio = hits.audio(index, spans)[0]
            if config.name_dropout:
                own = oracle_span_audio(index, spans, [it["clip_ids"] for it in items])
        else:  # the caption twin: the same hits, read as text
            context = hits.captions(index, spans)
            if config.name_dropout:
                own_context = own_captions(index, [it["clip_ids"] for it in items])
    return [Example(it["sentence"], list(sp), answer_pieces(tok, it["answer"]), a, o,
                    answer_pieces(tok, other[it["task"]][it["answer"]]) if it["answer"] in other.get(it["task"], {}) else None, c, oc)
            for it, sp, a, o, c, oc in zip(items, spans, audio, own, context, own_context)], left_out


def _optimiser(model, config: TrainConfig, total_steps: int):
    """AdamW over three groups — the adapter (lr), a fresh MLM head (head_lr), the audio path (audio_lr) — and the
    warmup + cosine schedule. The audio path is whatever the model names as such (AudioBERT.audio_parameters)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    audio = set(model.audio_parameters())
    is_head = lambda n: "cls." in n or "lm_head" in n  # noqa: E731
    groups = [{"params": [p for n, p in named if not is_head(n) and n not in audio], "lr": config.lr}]
    for params, lr in (([p for n, p in named if is_head(n)], config.head_lr), ([p for n, p in named if n in audio], config.audio_lr)):
        if params:
            groups.append({"params": params, "lr": lr or config.lr})
    opt = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(config, total_steps))


def _step(model, tok, batch: list[Example], config: TrainConfig, inject_dim: int, dev, marker) -> torch.Tensor:
    """The loss of one batch of examples."""
    from models.audiobert import encode_items

    contexts = [ex.context or "" for ex in batch] if config.mode == "captions" else None
    enc = encode_items(tok, [ex.sentence for ex in batch], [len(ex.answer) for ex in batch], [ex.spans for ex in batch],
                       config.encoded_length(), marker, contexts).to(dev)
    targets = torch.full(enc.mask_pos.shape, -100, dtype=torch.long)
    for r, ex in enumerate(batch):
        targets[r, : len(ex.answer)] = torch.tensor(ex.answer)
    audio = pad_audio([ex.audio for ex in batch], inject_dim).to(dev) if batch[0].audio is not None else None
    return model.loss(enc, targets.to(dev), audio)


def train(release_path: str | Path, config: TrainConfig | None = None, out_dir: str | Path = "runs/audiobert",
          options: RunOptions | None = None, quiet: bool = True) -> Path:
    """Train on a release and write a self-describing checkpoint to out_dir; resumes an interrupted run."""
    from tqdm import tqdm

    from benchmark.release_io import load_release
    from models._io import atomic_write_text, save_torch
    from models.retrieval import AudioIndex

    config, options = config or TrainConfig(), options or RunOptions()
    if options.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device cuda: no CUDA device is available")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    release = load_release(release_path)
    tasks = list(config.tasks) or release.tasks
    t0 = time.perf_counter()

    # 1. audio index (AudioBERT injects its audio; the caption twin reads its captions)
    index = None
    idx_dir = Path(options.index_dir) if options.index_dir else release.audio_index_dir
    if config.mode != "text":
        if idx_dir is None or not Path(idx_dir).is_dir():
            raise InputError(f"{release.path}: no audio_index/ in the release and no --index DIR given; {config.mode} needs one "
                             "(`auditorybench index CORPUS --out DIR` builds one from any corpus)")
        index = AudioIndex.load(idx_dir)
    inject_dim = index.inject_dim if index is not None and config.mode == "audiobert" else 1

    # 2. span detector; 3. the model and the examples (retrieval once)
    detector, det_report = train_detector(release, tasks, config, options, out, quiet)
    model, tok, head_is_new = build_model(config, inject_dim, config.seed)
    examples, left_out = _examples(release, tasks, config, options, tok, detector, index)

    # 4. the alignment warm-up, optimiser, schedule, resume (a resumed run overwrites the warm-up with its saved state)
    dev = torch.device(options.device)
    model.to(dev)
    align_loss = float("nan")
    if index is not None and config.mode == "audiobert" and config.align_steps:
        from models.align import align_projection

        torch.manual_seed(config.seed)
        align_loss = align_projection(model, index, tok, config.align_steps, lr=config.audio_lr or config.lr, seed=config.seed,
                                      rows=fit_rows(release, index))
    steps_per_epoch = (len(examples) + config.batch_size - 1) // config.batch_size
    opt, sched = _optimiser(model, config, steps_per_epoch * config.epochs)
    start_epoch, history = 0, []
    last = out / "last" / "state.pt"
    state_key = resume_key(config, options, release, *([Path(idx_dir) / "index.json"] if index is not None else []),
                           out / "detector" / "span_detector.pt")
    if last.exists():
        state = torch.load(last, map_location="cpu", weights_only=True)
        if state.get("state_key") == state_key:
            model.load_trainable_state(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            start_epoch, history = state["epoch"], state["history"]
            if not quiet:
                print(f"[train] resuming from epoch {start_epoch} ({last})")

    # 5. the loop
    marker = audio_token(config, tok)
    params = [p for g in opt.param_groups for p in g["params"]]
    for epoch in range(start_epoch, config.epochs):
        model.train()
        epoch_examples = augment(examples, epoch, config)
        order = list(range(len(epoch_examples)))
        random.Random(config.seed * 1000 + epoch).shuffle(order)
        total, n = 0.0, 0
        for s in tqdm(range(0, len(order), config.batch_size), desc=f"epoch {epoch + 1}/{config.epochs}", disable=quiet):
            with autocast(options.device, options.amp):
                loss = _step(model, tok, [epoch_examples[i] for i in order[s: s + config.batch_size]], config, inject_dim, dev, marker)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            total, n = total + loss.item(), n + 1
        share = model.audio_share()
        history.append({"epoch": epoch + 1, "loss": total / max(1, n), **({"audio_share": round(share, 4)} if share is not None else {})})
        save_torch(last, {
            "state_key": state_key, "epoch": epoch + 1, "history": history, "model": model.trainable_state(),
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(),
        })
        if options.stop_after_epoch and epoch + 1 >= options.stop_after_epoch and epoch + 1 < config.epochs:
            return out

    # 6. the checkpoint
    save_torch(out / "model.pt", model.trainable_state())
    tok.save_pretrained(str(out / "tokenizer"))
    meta = {
        "format": CHECKPOINT_FORMAT,
        "name": f"{MODEL_NAMES[config.mode]}({_short(config.lm)})",
        "config": asdict(config),
        "release": {"name": release.name, "version": release.version, "path": str(release.path)},
        "tasks": tasks,
        "inject_dim": inject_dim,
        "index_dir": str(Path(idx_dir).resolve()) if idx_dir is not None else "",
        "index_models": index.models if index is not None else {},
        "retrieval_metrics": index.metrics if index is not None else {},
        "head_is_new": head_is_new,
        "history": history,
        "span_detector": det_report,
        "train_items": len(examples),
        "left_out": left_out_summary(left_out),
        "align_loss": None if math.isnan(align_loss) else round(align_loss, 4),
        "train_s": round(time.perf_counter() - t0, 2),
    }
    atomic_write_text(out / "config.json", json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return out


MODEL_NAMES = {"audiobert": "AudioBERT", "text": "text-only", "captions": "caption twin"}


def _short(name: str) -> str:
    return Path(str(name)).name if "/" in str(name) or "\\" in str(name) else str(name)
