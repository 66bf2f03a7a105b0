"""Bench for causal-LM scoring: sentences/s of the prefix-cache path (`CausalLMBaseline.score`) against running each
whole filled sentence (`CausalLMBaseline.loglik`, the path before it), the same model and items in one run.

    PYTHONPATH=. python bench/bench_causal.py [--model smollm2] [--items 6] [--choices 80] [--release DIR --task T]

Items: animal-recognition sentences in the official shapes (answer first, in the middle, at the end, a quoted
description) with `--choices` animal names, or the first `--items` test items of a release's task with all its
choices. Prints one JSON object: sentences/s of both paths, their ratio, and the largest |difference| of the scores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
import torch

SENTENCES = [
    "[MASK] make a chirp sound.",
    "Hoot is the sound a [MASK] makes.",
    "The sound of a [MASK] is \"Oh Canada-canada-canada.\"",
    "A [MASK] makes a honking sound.",
    "When you hear a long, descending whinny at night, it is probably a [MASK].",
    "The [MASK] barks.",
]
ANIMALS = ["dog", "cat", "cow", "sheep", "goat", "horse", "pig", "duck", "goose", "chicken", "rooster", "owl", "eagle owl",
           "crow", "raven", "frog", "toad", "cricket", "bee", "wolf", "lion", "tiger", "elephant", "monkey", "donkey", "mule",
           "seal", "whale", "dolphin", "bird", "canada goose", "white throated sparrow", "bobwhite", "whip-poor-will",
           "coyote", "fox", "hyena", "bear", "deer", "elk", "moose", "turkey", "peacock", "parrot", "pigeon", "dove",
           "mourning dove", "hawk", "red-tailed hawk", "loon", "gull", "cuckoo", "woodpecker", "hummingbird", "bat",
           "mouse", "rat", "squirrel", "chipmunk", "rabbit", "camel", "zebra", "giraffe", "hippopotamus", "rhinoceros",
           "gorilla", "chimpanzee", "baboon", "sea lion", "walrus", "penguin", "ostrich", "emu", "kookaburra", "cicada",
           "katydid", "grasshopper", "mosquito", "fly", "rattlesnake"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="hub id, local path or 'smollm2' (the packaged GGUF)")
    ap.add_argument("--items", type=int, default=6)
    ap.add_argument("--choices", type=int, default=80)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--release", default=None)
    ap.add_argument("--task", default="animal_sound_recognition")
    args = ap.parse_args()

    from models.baselines import CausalLMBaseline, fill_sentence

    torch.manual_seed(0)
    if args.release:
        from benchmark.release_io import load_release
        from models.data import task_items

        rel = load_release(args.release)
        items, choices = task_items(rel, [args.task], "test")[: args.items], rel.choices(args.task)
    else:
        items = [{"sentence": s} for s in itertools.islice(itertools.cycle(SENTENCES), args.items)]
        choices = ANIMALS[: args.choices]
    t = time.perf_counter()
    model = CausalLMBaseline(args.model)
    load_s = time.perf_counter() - t
    texts = [fill_sentence(it["sentence"], c) for it in items for c in choices]
    model.loglik(texts[:4])  # warm-up
    t = time.perf_counter()
    whole = model.loglik(texts, batch_size=args.batch).reshape(len(items), len(choices))
    whole_s = time.perf_counter() - t
    t = time.perf_counter()
    cached = model.score(items, choices, batch_size=args.batch)
    cached_s = time.perf_counter() - t
    print(json.dumps({
        "model": model.name, "items": len(items), "choices": len(choices), "sentences": len(texts),
        "torch_threads": torch.get_num_threads(), "load_s": round(load_s, 2),
        "whole_sentences_per_s": round(len(texts) / whole_s, 1), "prefix_cache_sentences_per_s": round(len(texts) / cached_s, 1),
        "speedup": round(whole_s / cached_s, 2), "max_abs_diff": float(np.abs(whole - cached).max()),
    }, indent=2))


if __name__ == "__main__":
    main()
