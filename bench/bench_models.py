"""Bench for models/: AudioBERT's training step against the text-only step, and retrieval recall@k on held-out clips.

    PYTHONPATH=. python bench/bench_models.py [--lm minilm] [--steps 20] [--batch 16] [--index build/<c>/index/audio_index]

1. Step time: the same LM, LoRA gate and batch (every item has a span), with and without the injected audio
   (precomputed embeddings, as train does). Goal: ratio <= 1.3.
2. Retrieval: recall@k of the demo retrieval model on clips held out of its training — read from a built index
   (--index), or from one built here over synthetic clips of eight sound kinds (captions name the kind; a hit is
   the clip itself, and 'kind@1' counts a clip of the same kind).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def bench_step(lm: str, steps: int, batch: int, inject_dim: int = 512, device: str = "cpu") -> dict:
    from models.audiobert import build_model, encode_items
    from models.config import TrainConfig

    sents = [f"The sound of {s} is typically [MASK] in pitch than {t}." for s, t in
             [("a violin", "a tuba"), ("a flute", "a cello"), ("a whistle", "a bass drum"), ("a bird", "a cow")]]
    spans = [["a violin", "a tuba"], ["a flute", "a cello"], ["a whistle", "a bass drum"], ["a bird", "a cow"]]
    idx = [i % len(sents) for i in range(batch)]
    out = {}
    for mode in ("text", "audiobert"):
        model, tok, _ = build_model(TrainConfig.demo(lm=lm, mode=mode), inject_dim)
        model.to(device).train()
        b = encode_items(tok, [sents[i] for i in idx], [1] * batch, [spans[i] for i in idx]).to(device)
        target = torch.full(b.mask_pos.shape, tok.convert_tokens_to_ids("higher"), device=device)
        audio = torch.randn(batch, 2, inject_dim, device=device) if mode == "audiobert" else None
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        times = []
        for s in range(steps + 3):
            t = time.perf_counter()
            loss = model.loss(b, target, audio)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if s >= 3:
                times.append(time.perf_counter() - t)
        out[mode] = statistics.median(times)
    out["ratio"] = out["audiobert"] / out["text"]
    return out


def synthetic_clips(n_per_kind: int = 12, sr: int = 16000, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(sr * 2) / sr
    kinds = {
        "a low hum": lambda: np.sin(2 * np.pi * rng.uniform(60, 120) * t),
        "a high whistle": lambda: np.sin(2 * np.pi * rng.uniform(2500, 4000) * t),
        "white noise hiss": lambda: rng.normal(0, 0.5, t.size),
        "rapid clicks": lambda: (np.sin(2 * np.pi * rng.uniform(8, 14) * t) > 0.95) * rng.normal(0, 1, t.size),
        "a siren sweep": lambda: np.sin(2 * np.pi * (600 + 400 * np.sin(2 * np.pi * 0.5 * t)) * t),
        "a bell ring": lambda: np.sin(2 * np.pi * rng.uniform(700, 900) * t) * np.exp(-3 * t),
        "rumbling thunder": lambda: np.convolve(rng.normal(0, 1, t.size), np.ones(200) / 200, "same") * 5,
        "a buzzing square wave": lambda: np.sign(np.sin(2 * np.pi * rng.uniform(150, 300) * t)),
    }
    clips = []
    for k, (name, make) in enumerate(kinds.items()):
        for j in range(n_per_kind):
            clips.append((f"syn/{k}-{j}", (0.3 * make()).astype(np.float32), sr, f"{name}\n{name} sound"))
    return clips


def bench_retrieval(index_dir: str | None) -> dict:
    from models.retrieval import AudioIndex, IndexConfig, _heldout_mask, build_index

    if index_dir:
        index = AudioIndex.load(index_dir)
        return {"source": index_dir, **index.metrics}
    clips = synthetic_clips()
    cfg = IndexConfig(retrieval="demo", inject="aisfx", holdout_frac=0.25)
    index = build_index(clips, cfg)
    held = _heldout_mask(index.clip_ids, cfg)
    kinds = [c.split("-")[0] for c in index.clip_ids]
    q = index.encode_queries([index.captions[i].split("\n")[0] for i in np.flatnonzero(held)])
    sub = index.retrieval_embeddings[held]
    sims = q @ sub.T
    best = sims.argmax(1)
    hk = [kinds[i] for i in np.flatnonzero(held)]
    kind_at1 = float(np.mean([hk[i] == hk[b] for i, b in enumerate(best)]))
    return {"source": "synthetic (8 kinds x 12 clips)", **index.metrics, "kind@1": kind_at1, "kind_chance": 1 / 8}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lm", default="minilm")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    demo_index = Path("build/demo/index/audio_index")
    ap.add_argument("--index", default=str(demo_index) if demo_index.is_dir() else None,
                    help="a built audio index (default: the demo's, when make demo has run; else synthetic clips)")
    a = ap.parse_args()
    step = bench_step(a.lm, a.steps, a.batch, device=a.device)
    print(f"step time ({a.lm}, batch {a.batch}, every item with a span, {a.device}): text-only {step['text'] * 1e3:.1f} ms, "
          f"AudioBERT {step['audiobert'] * 1e3:.1f} ms, ratio {step['ratio']:.2f} (goal <= 1.3)")
    ret = bench_retrieval(a.index)
    print("retrieval on held-out clips: " + json.dumps(ret, sort_keys=True))
    print(json.dumps({"step_time": step, "retrieval": ret}, sort_keys=True, default=float))


if __name__ == "__main__":
    main()
