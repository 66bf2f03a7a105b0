"""Check, before training starts, that every training item's spans can be placed, by the code training itself uses.

    kept, spans, left_out = placeable_items(items, spans, tok, config, flip)

An item is tokenised by `models.audiobert.encode_items` (widened [MASK]s, the span's character range, the inserted
audio token) as it is, with its span names dropped (`models.train.drop_names`, when `name_dropout` is on) and with its
two sources exchanged (`models.train.swap_spans`, when `swap_pairs` is on and the item has a flipped answer). An item
that fails any of them (a span that is not in its sentence, [MASK] tokens cut off by `max_length`) is left out with
its reason — counted in the checkpoint's config.json — instead of stopping the run mid-epoch.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Callable, Sequence

from benchmark.errors import InputError

__all__ = ["placeable_items", "left_out_summary"]


def placeable_items(items: Sequence[dict], spans: Sequence[Sequence[str]], tokenizer, config, flip: dict[str, dict[str, str]],
                    *, drop: Callable, swap: Callable) -> tuple[list[dict], list[list[str]], list[dict]]:
    """(kept items, their spans, left-out records {id, task, sentence, spans, variant, reason}).

    flip: task -> answer -> the answer of the swapped item (comparison tasks with two choices); only those items are
    checked swapped. drop, swap: the trainer's own transforms (`models.train.drop_names`, `swap_spans`). The n of
    [MASK]s is the answer's word pieces, as in training."""
    from models.audiobert import answer_pieces, audio_token, encode_items

    marker = audio_token(config, tokenizer)
    kept, kept_spans, left = [], [], []
    for it, sp in zip(items, spans):
        sp = list(sp)
        variants = [("as given", it["sentence"], sp, it["answer"])]
        if config.name_dropout and sp:
            variants.append(("names dropped", *drop(it["sentence"], sp, random.Random(0)), it["answer"]))
        flipped = flip.get(it["task"], {}).get(it["answer"])
        if config.swap_pairs and flipped is not None:
            turned = swap(it["sentence"], sp)
            if turned is not None:
                variants.append(("sources swapped", *turned, flipped))
        reason = None
        for name, sentence, s, answer in variants:
            try:
                encode_items(tokenizer, [sentence], [len(answer_pieces(tokenizer, answer))], [s], config.max_length, marker)
            except InputError as e:
                reason = (name, str(e))
                break
        if reason is None:
            kept.append(it)
            kept_spans.append(sp)
        else:
            left.append({"id": it["id"], "task": it["task"], "sentence": it["sentence"], "spans": sp, "variant": reason[0],
                         "reason": reason[1]})
    return kept, kept_spans, left


def left_out_summary(left: Sequence[dict]) -> dict:
    """For a manifest: how many items were left out, by task and by the variant that failed, and each of them."""
    return {"n": len(left), "by_task": dict(Counter(r["task"] for r in left)),
            "by_variant": dict(Counter(r["variant"] for r in left)), "items": list(left)}
