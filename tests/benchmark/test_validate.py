"""Release validation: planted leaks, duplicates, imbalance and bad rows are reported; a clean release passes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmark.release import normalise_items
from benchmark.schema import COLUMNS, ITEM_ARROW_SCHEMA, item_id
from benchmark.validate import balance_ok, main, validate_release

PITCH = "sound_pitch_comparison"
ANIMAL = "animal_sound_recognition"


def pitch_item(i: int, split: str, answer: str, clips: tuple[str, str] | None = None, spans=None, sentence=None) -> dict:
    s1, s2 = spans or (f"flute {i}", f"bass {i}")
    sentence = sentence or f"A {s1} sounds [MASK] than a {s2}."
    cids = list(clips) if clips else [f"fs/p{i}a", f"fs/p{i}b"]
    return {"id": item_id(PITCH, sentence, answer, cids), "task": PITCH, "split": split, "sentence": sentence,
            "answer": answer, "spans": [s1, s2], "span1": s1, "span2": s2, "group_id": "|".join(cids), "clip_ids": cids,
            "basis": "f0", "value1": 500.0, "value2": 250.0, "source": "corpus"}


def animal_item(i: int, split: str, clip: str | None = None, sentence: str | None = None, word: str | None = None) -> dict:
    word = word or f"Bark number {i}"
    sentence = sentence or f"{word} is the sound a [MASK] makes."
    cids = [clip or f"fs/a{i}"]
    return {"id": item_id(ANIMAL, sentence, "dog", cids), "task": ANIMAL, "split": split, "sentence": sentence,
            "answer": "dog", "spans": [word], "description": word.lower(), "group_id": cids[0], "clip_ids": cids}


def clean_rows() -> list[dict]:
    rows = []
    for i, split in enumerate(["train"] * 4 + ["dev"] * 2 + ["test"] * 2):
        rows.append(pitch_item(i, split, "higher" if i % 2 else "lower"))
        rows.append(animal_item(i, split))
    return rows


def write_release_dir(root: Path, rows: list[dict]) -> Path:
    """Write <task>/<split>.parquet directly (no build_release, which would refuse a leaky release)."""
    df = normalise_items(pd.DataFrame(rows))
    for (task, split), part in df.groupby(["task", "split"]):
        (root / task).mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(part[COLUMNS["items"]].to_dict(orient="records"), schema=ITEM_ARROW_SCHEMA)
        pq.write_table(table, root / task / f"{split}.parquet")
    return root


def violations_of(tmp_path: Path, rows: list[dict]) -> list[str]:
    report = validate_release(write_release_dir(tmp_path, rows))
    assert report.ok == (not report.violations)
    return report.violations


def test_clean_release_passes(tmp_path):
    report = validate_release(write_release_dir(tmp_path, clean_rows()))
    assert report.ok and report.violations == []
    assert report.figures["counts"][PITCH] == {"train": 4, "dev": 2, "test": 2}
    assert report.figures["balance"][PITCH]["train"] == {"higher": 0.5, "lower": 0.5}
    assert main([str(tmp_path)]) == 0


def test_same_clip_in_train_and_test(tmp_path):
    rows = clean_rows()
    rows.append(animal_item(99, "test", clip="fs/a0"))  # fs/a0 is animal item 0's clip, in train
    v = violations_of(tmp_path, rows)
    assert any(x.startswith("overlap clip id: all tasks: 1 shared between train and test") and "fs/a0" in x for x in v)
    assert main([str(tmp_path)]) == 1


def test_same_sentence_in_train_and_test(tmp_path):
    rows = clean_rows()
    rows.append(animal_item(98, "test", sentence="bark  number 0 is the sound a [MASK] makes."))  # case/space folded
    v = violations_of(tmp_path, rows)
    assert any(x.startswith(f"overlap sentence: {ANIMAL}: 1 shared between train and test") for x in v)


def test_same_source_pair_in_train_and_test(tmp_path):
    rows = clean_rows()
    rows.append(pitch_item(52, "train", "higher", clips=("fs/y1", "fs/y3"), spans=("violin", "tuba")))
    rows.append(pitch_item(53, "dev", "lower", clips=("fs/y2", "fs/y4"), spans=("Tuba", "violin")))  # other order, case
    v = violations_of(tmp_path, rows)
    pair = [x for x in v if x.startswith(f"overlap source pair: {PITCH}")]
    assert any("train and dev" in x and "tuba" in x for x in pair)


def test_planted_source_name_leak_of_corpus_items_fails(tmp_path):
    """Two corpus items comparing the same two sources through four different clips: a leak by source name."""
    rows = clean_rows()
    rows.append(pitch_item(50, "train", "higher", clips=("fs/x1", "fs/x2"), spans=("oboe", "cello")))
    rows.append(pitch_item(51, "test", "lower", clips=("fs/x3", "fs/x4"), spans=("cello", "oboe"),
                           sentence="Compared with a oboe, a cello sounds [MASK]."))
    assert not {"fs/x1", "fs/x2"} & {"fs/x3", "fs/x4"}  # no clip is shared: only the names leak
    v = violations_of(tmp_path, rows)
    assert [x for x in v if x.startswith(f"overlap source pair: {PITCH}: 1 shared between train and test") and "cello" in x]
    assert main([str(tmp_path)]) == 1


def test_wiki_is_exempt_from_clip_checks_but_not_from_sentence_overlap(tmp_path):
    rows = clean_rows()
    rows.append(pitch_item(60, "wiki", "higher", clips=("fs/p0a", "fs/p0b"), spans=("piccolo", "cello")))
    rows.append(pitch_item(61, "wiki", "lower", clips=("fs/w1", "fs/w2"), sentence="A flute 1 sounds [MASK] than a bass 1."))
    v = violations_of(tmp_path, rows)
    assert not any(x.startswith(("overlap clip id", "overlap source pair")) for x in v)
    assert any(x.startswith(f"overlap sentence: {PITCH}: 1 shared between train and wiki") for x in v)


def test_duplicates_within_a_split(tmp_path):
    rows = clean_rows()
    rows.append(dict(rows[0]))  # the same item twice in train
    v = violations_of(tmp_path, rows)
    assert any(x.startswith(f"duplicate item id: {PITCH}/train: 1 extra rows") for x in v)
    assert any(x.startswith(f"duplicate sentence: {PITCH}/train") for x in v)


@pytest.mark.parametrize(
    "n_higher,n_lower,ok",
    [(11, 9, True), (12, 8, False), (9, 11, True), (5, 5, True), (6, 4, False), (3, 2, True), (2, 0, False), (1, 0, True)],
)
def test_balance_rule(n_higher, n_lower, ok):
    assert balance_ok({"higher": n_higher, "lower": n_lower}, ["higher", "lower"]) is ok


def test_imbalanced_split_is_reported(tmp_path):
    rows = clean_rows()
    rows += [pitch_item(100 + i, "test", "higher") for i in range(8)]  # test: 9 higher, 1 lower
    v = violations_of(tmp_path, rows)
    assert any(x.startswith(f"balance: {PITCH}/test: higher 9/10 (90.0 %)") for x in v)


def test_row_that_is_not_an_item_is_reported(tmp_path):
    rows = clean_rows()
    bad = animal_item(70, "dev", sentence="A [MASK] says [MASK].")
    bad["spans"] = []
    rows.append(bad)
    v = violations_of(tmp_path, rows)
    assert any(x.startswith(f"schema: {ANIMAL}/dev.parquet: 1 rows do not parse as schema.Item") for x in v)


def test_item_in_the_wrong_file_is_reported(tmp_path):
    write_release_dir(tmp_path, clean_rows())
    (tmp_path / PITCH / "train.parquet").rename(tmp_path / PITCH / "wiki.parquet")
    v = validate_release(tmp_path).violations
    assert any("wrong file" in x and f"{PITCH}/wiki.parquet" in x for x in v)


def test_a_recognition_fact_reworded_across_splits_is_a_leak(tmp_path):
    """The same (sound word, answer) in train and test, in other sentences and from other clips: one fact, a leak."""
    rows = clean_rows() + [animal_item(20, "train", word="Moo", sentence="A [MASK] goes moo."),
                           animal_item(21, "test", word="Moo", sentence="Moo! That must be a [MASK].")]
    v = violations_of(tmp_path, rows)
    assert any(x.startswith(f"overlap recognition fact (description, answer): {ANIMAL}: 1 shared between train and test")
               and "'moo -> dog'" in x for x in v), v
    rows[-1] = animal_item(21, "test", word="Woof", sentence="Woof! That must be a [MASK].")  # another fact: clean
    assert not violations_of(tmp_path / "clean", rows)


def test_a_held_out_name_in_a_train_item_breaks_the_cards_statement(tmp_path):
    """The split stage's held-out names (in the release manifest) must be named by no train item."""
    import json

    root = write_release_dir(tmp_path, clean_rows())
    (root / "manifest.json").write_text(json.dumps({"stages": {"split": {"counts": {"held_out_names": ["bass 0", "oboe"]}}}}))
    v = validate_release(root).violations
    assert v == [f"held-out name: {PITCH}/train: 1 names the split held out of train are named by train items, e.g. 'bass 0'"]
    (root / "manifest.json").write_text(json.dumps({"stages": {"split": {"counts": {"held_out_names": ["bass 6", "oboe"]}}}}))
    assert validate_release(root).ok  # bass 6 is a test item's source only
