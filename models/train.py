"""Train AudioBERT (or its text-only twin) on a release, readable top to bottom.

    train(release_path, TrainConfig(), out_dir) -> out_dir

1. Load the release (`benchmark.release_io.load_release`) and its audio index (`<release>/audio_index/`, or a path).
2. Train the span detector on every task's train split; report span P/R/F1 on dev (test when no dev).
3. Retrieve, once, the clip of each span ("<span> sound", top-k by similarity) and keep its injection embedding,
   so a training step costs about what a text-only step costs.
4. Train: AdamW, cosine schedule with warmup, answers of several word pieces as several [MASK]s. With
   `name_dropout` p, each epoch a share p of the items has its span words replaced by made-up words (the audio,
   retrieved for the real words, stays): the model has to learn to read the audio, which is all it has on a name it
   never saw in training; without it, names seen in training answer everything and the audio path stays shut.
   A checkpoint of
   the trainable weights, optimiser and schedule is written after every epoch; a rerun with the same config
   resumes from it.
5. Write the final checkpoint: config.json (this config, release name/version, index models, metrics),
   model.pt (trained weights: LoRA, projection, MLM head when new), tokenizer/, detector/.

The demo preset adds what made the model read the audio on the demo corpus (each off in the published setting):
`injection: insert` (the audio is a token of its own in front of the span, so the span's words stay readable),
`span_slots` (the projection knows a clip's place in a comparison), `swap_pairs` (comparison items also trained with
their two sources exchanged and the answer flipped), `align_steps` (the projection first aligned to the words of each
index clip's caption, `models.align`), `audio_copy` (the [MASK] is offered the words the audio looks like) and
`rerank` (retrieval hits re-ordered by their captions, `models.rerank`).

Published setting (the TrainConfig defaults): 20 epochs, batch 32, lr 3e-4, cosine, 10 % warmup; LoRA r 64,
alpha 128 on query/key/value; detector 5 epochs, batch 16, lr 1e-5. `TrainConfig.demo()` is the small demo setting.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import torch

from benchmark.errors import ConfigError, InputError
from models.config import CHECKPOINT_FORMAT, TrainConfig
from models.data import oracle_span_audio, pad_audio, retrieve_span_audio, task_items
from models.infer import audio_token, autocast, build_model, reranker
from models.placement import left_out_summary, placeable_items

__all__ = ["TrainConfig", "train", "drop_names", "MADE_UP_WORDS"]

# words no tokenizer knows as a name of anything (and no sentence of a task contains)
MADE_UP_WORDS = ("blicket", "wugsy", "daxen", "zorbo", "fepple", "tomble", "kikiri", "boubon", "gorpin", "snibbet",
                 "vornak", "quellip", "jebbin", "pilkor", "tufalo", "modrix")


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


def drop_names(sentence: str, spans: list[str], rng: random.Random) -> tuple[str, list[str]]:
    """The sentence with each span (a whole-word occurrence, not overlapping another span or the [MASK]) replaced by a
    different made-up word, capitalised like the span, and the made-up words as its spans. When a span has no such
    occurrence the item is left as it was."""
    import re

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


def _train_detector(release, tasks, config: TrainConfig, out_dir: Path, quiet: bool):
    from models._io import atomic_write_text
    from models.span_detector import SpanConfig, SpanDetector, span_scores, train_span_detector

    # seeded first, whichever way the detector comes: what draws from torch's generator next (the fresh MLM head of an
    # LM that has none) must not depend on whether this process trained a detector (the text twin reuses AudioBERT's)
    torch.manual_seed(config.seed)
    report_path = out_dir / "detector" / "report.json"
    if report_path.exists():  # a resumed run keeps the detector it trained before
        report = json.loads(report_path.read_text(encoding="utf-8"))
        if report.get("config_key") == config.key():
            return SpanDetector.load(out_dir / "detector", device=config.device), report["report"]
    if config.detector_dir:
        det = SpanDetector.load(config.detector_dir, device=config.device)
        det.save(out_dir / "detector")
        return det, {"reused": config.detector_dir}
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
            raise InputError(f"{release.path}: no audio_index/ in the release and no --index DIR given; AudioBERT needs one "
                             "(`auditorybench index CORPUS --out DIR` builds one from any corpus)")
        index = AudioIndex.load(idx_dir)
    inject_dim = index.inject_dim if index is not None else 1

    # 2. span detector
    detector, det_report = _train_detector(release, tasks, config, out, quiet)

    # 3. data: widened masks, answer pieces, retrieved audio (once)
    model, tok, head_is_new = build_model(config, inject_dim)
    items = task_items(release, tasks, "train")
    if not items:
        raise InputError(f"{release.path}: no train items for tasks {tasks}")
    spans = [it["spans"] for it in items] if config.train_spans == "gold" else detector.predict([it["sentence"] for it in items])
    # comparison items can be trained the other way round: spans exchanged, answer flipped (choices: [more, less])
    other = {t: dict(zip(release.choices(t), release.choices(t)[::-1])) for t in tasks
             if release.kind(t) == "comparison" and len(release.choices(t)) == 2}  # task -> answer -> the flipped one
    items, spans, left_out = placeable_items(items, spans, tok, config, other, drop=drop_names, swap=swap_spans)  # every item placed up front, or left out
    pieces = [answer_pieces(tok, it["answer"]) for it in items]
    flipped_pieces = [answer_pieces(tok, other[it["task"]][it["answer"]]) if it["answer"] in other.get(it["task"], {}) else None
                      for it in items]
    audio = retrieve_span_audio(index, spans, config.retrieval_k, config.rerank, reranker(config))[0] if index is not None else None
    # an item whose names are dropped stands on its own clips' audio (what its answer was measured from)
    own = oracle_span_audio(index, spans, [it["clip_ids"] for it in items]) if index is not None and config.name_dropout else None

    # 4. optimiser, schedule, resume (the alignment warm-up first: a resumed run overwrites it with its saved state)
    dev = torch.device(config.device)
    model.to(dev)
    align_loss = float("nan")
    if index is not None and config.align_steps:
        from models.align import align_projection

        torch.manual_seed(config.seed)
        align_loss = align_projection(model, index, tok, config.align_steps, lr=config.audio_lr or config.lr, seed=config.seed)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    is_head = lambda n: "cls." in n or "lm_head" in n  # noqa: E731
    is_audio = lambda n: n.split(".")[0] in ("proj", "audio_norm", "audio_gate", "slot_embed", "copy_scale")  # noqa: E731
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
    marker = audio_token(config, tok)
    for epoch in range(start_epoch, config.epochs):
        model.train()
        order = list(range(len(items)))
        random.Random(config.seed * 1000 + epoch).shuffle(order)
        total, n = 0.0, 0
        drop = random.Random(config.seed * 7919 + epoch)
        dropped = [bool(spans[i]) and drop.random() < config.name_dropout for i in range(len(items))]
        texts = [drop_names(items[i]["sentence"], spans[i], drop) if dropped[i] else (items[i]["sentence"], spans[i])
                 for i in range(len(items))]
        swap = random.Random(config.seed * 104729 + epoch)
        swapped = [False] * len(items)
        for i in range(len(items)):
            if flipped_pieces[i] is not None and config.swap_pairs and swap.random() < config.swap_pairs:
                turned = swap_spans(*texts[i])
                if turned is not None:
                    texts[i], swapped[i] = turned, True
        answer = [flipped_pieces[i] if swapped[i] else pieces[i] for i in range(len(items))]
        for s in tqdm(range(0, len(order), config.batch_size), desc=f"epoch {epoch + 1}/{config.epochs}", disable=quiet):
            idx = order[s : s + config.batch_size]
            n_masks = [len(answer[i]) for i in idx]
            batch = encode_items(tok, [texts[i][0] for i in idx], n_masks, [texts[i][1] for i in idx], config.max_length, marker).to(dev)
            targets = torch.full(batch.mask_pos.shape, -100, dtype=torch.long)
            for r, i in enumerate(idx):
                targets[r, : len(answer[i])] = torch.tensor(answer[i])
            clips = [own[i] if own is not None and dropped[i] else audio[i] for i in idx] if audio is not None else None
            a = pad_audio([c[::-1].copy() if swapped[i] else c for c, i in zip(clips, idx)], inject_dim).to(dev) if clips else None
            with autocast(config):
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
        "index_dir": str(Path(idx_dir).resolve()) if idx_dir is not None else "",
        "index_models": index.models if index is not None else {},
        "retrieval_metrics": index.metrics if index is not None else {},
        "head_is_new": head_is_new,
        "history": history,
        "span_detector": det_report,
        "train_items": len(items),
        "left_out": left_out_summary(left_out),
        "align_loss": None if math.isnan(align_loss) else round(align_loss, 4),
        "train_s": round(time.perf_counter() - t0, 2),
    }
    atomic_write_text(out / "config.json", json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return out


def _short(name: str) -> str:
    return Path(str(name)).name if "/" in str(name) or "\\" in str(name) else str(name)
