"""Training on official-style rows with quoted, repeated and punctuated spans: every item is placed up front by the
code training uses, and one that cannot be is left out with its reason, counted in the checkpoint — never a crash
mid-epoch."""

from __future__ import annotations

import json

import pandas as pd

from models.train import RunOptions, TrainConfig, drop_names, swap_spans, train

QUIRKS = [  # (animal, description, sentence): the shapes of the official animal CSVs
    ("white throated sparrow", '"Oh Canada-canada-canada."', 'The sound of a [MASK] is "Oh Canada-canada-canada."'),
    ("dog", "woof", "A woof, then woof woof: the [MASK] says woof."),  # the span repeated
    ("owl", "tu-whit, tu-whoo!", "Tu-whit, tu-whoo! goes the [MASK] at night."),  # punctuated, first in the sentence
    ("cow", "moo", "[MASK] make a moo sound."),  # the answer first
    ("duck", "quack quack", "Quack quack is the sound a [MASK] makes."),
    ("sheep", "baa", "The sound of baa comes from a [MASK]."),
]
LONG = ("cat", "meow", "When you hear meow " + "and a long story about the weather " * 12 + "it is a [MASK].")


def _official_src(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rows = [dict(zip(("animal", "description", "sentence"), r)) for r in QUIRKS + [LONG]]
    for split in ("train", "test"):
        pd.DataFrame(rows).to_csv(src / f"animal_sound_recognition_{split}.csv", index=False)
    return src


def test_a_punctuation_span_takes_its_own_place_not_the_quote_that_ends_the_next_one():
    from models.span_detector import span_char_ranges

    s = 'The sound of a [MASK] is "Oh Canada-canada-canada."'
    # what a span detector can return for the quoted description: the opening quote, then the rest
    (a, b), (c, d) = span_char_ranges(s, ['"', 'Oh Canada-canada-canada."'])
    assert s[a:b] == '"' and a == s.index('"') and s[c:d] == 'Oh Canada-canada-canada."'
    assert span_char_ranges("A woof, then woof woof.", ["woof woof"]) == [(13, 22)]  # whole words still first


def test_training_on_official_quirks_places_every_item_up_front(tiny_lm_dir, demo_index_dir, tmp_path):
    from benchmark.official import import_official
    from benchmark.release_io import load_release
    from models.data import task_items
    from models.loading import load_tokenizer
    from models.placement import placeable_items

    release = import_official(_official_src(tmp_path), tmp_path / "releases", "0.0.1")
    cfg = TrainConfig.demo(lm=str(tiny_lm_dir), epochs=1, batch_size=4, detector_epochs=1, lora_r=4, lora_alpha=8,
                           max_length=48)
    items = task_items(load_release(release), ["animal_sound_recognition"], "train")
    kept, spans, left = placeable_items(items, [it["spans"] for it in items], load_tokenizer(str(tiny_lm_dir), min_vocab=1), cfg, {},
                                        drop=drop_names, swap=swap_spans)
    assert len(items) == len(QUIRKS) + 1
    assert [r["sentence"] for r in left] == [LONG[2]] and "[MASK]" in left[0]["reason"] and left[0]["variant"] == "as given"
    assert sorted(it["sentence"] for it in kept) == sorted(q[2] for q in QUIRKS)
    assert all(sp for sp in spans)  # the quoted, repeated and punctuated spans are all placed

    # the detector's spans (the demo preset trains on them): whatever a one-epoch detector finds, training completes
    out = train(release, cfg, tmp_path / "run", RunOptions(index_dir=str(demo_index_dir)))
    meta = json.loads((out / "config.json").read_text())
    assert meta["left_out"]["n"] >= 1 and meta["train_items"] == len(items) - meta["left_out"]["n"]
    assert LONG[2] in [r["sentence"] for r in meta["left_out"]["items"]]
    assert meta["left_out"]["by_task"] == {"animal_sound_recognition": meta["left_out"]["n"]}
