"""Import of the official AuditoryBench CSVs: converted to the release format, defects reported rather than hidden."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from benchmark.errors import InputError
from benchmark.official import DEFECTS_FILE, find_official_files, import_official
from benchmark.release_io import file_digests, load_release

ANIMAL_TRAIN = (
    "animal,description,sentence\n"
    "eagle owl,hoot,Hoot is the sound a [MASK] makes.\n"
    "dog,woof,\"Woof, woof is the sound a [MASK] makes.\"\n"
    "cat,meow,Meow is the sound a [MASK] makes.\n"
    "cow,moo,moo is what a cow says\n"  # no [MASK]: cannot be an item
)
ANIMAL_DEV = "animal,description,sentence\nduck,quack,Quack is the sound a [MASK] makes.\n"
ANIMAL_WIKI = (
    "animal,description,sentence\n"
    "Eagle owl,hoot,hoot is the sound a [MASK] makes.\n"
    "Dog,bark,bark is the sound a [MASK] makes.\n"
    "Fox,bark,bark is the sound a [MASK] makes.\n"  # the same sentence, another answer
)
PITCH_HEADER = "sentence,answer,span1,span2\n"


def pitch_row(a: str, b: str, answer: str) -> str:
    return f"The sound of {a} is [MASK] than the sound of {b},{answer},{a},{b}\n"


PITCH_TRAIN_ROWS = [pitch_row(f"flute {i}", f"tuba {i}", "higher" if i % 2 else "lower") for i in range(10)]


def write_fixture(root: Path) -> Path:
    ds = root / "dataset"
    ds.mkdir(parents=True)
    (ds / "animal_sound_recognition_train.csv").write_text(ANIMAL_TRAIN)
    (ds / "animal_sound_recognition_test.csv").write_text(ANIMAL_TRAIN)  # byte-identical to train, as in the original
    (ds / "animal_sound_recognition_dev.csv").write_text(ANIMAL_DEV)
    (ds / "animal_sound_recognition_wiki.csv").write_text(ANIMAL_WIKI)
    train = PITCH_HEADER + "".join(PITCH_TRAIN_ROWS) + PITCH_TRAIN_ROWS[0] + PITCH_TRAIN_ROWS[1]  # 2 duplicate rows
    (ds / "sound_pitch_comparsion_train.csv").write_text(train)
    test = PITCH_TRAIN_ROWS[2:4] + [pitch_row(f"bell {i}", f"drum {i}", "higher") for i in range(3)]  # 4 of 5 higher
    (ds / "sound_pitch_comparsion_test.csv").write_text(PITCH_HEADER + "".join(test))
    (ds / "sound_pitch_comparsion_dev.csv").write_text(PITCH_HEADER + pitch_row("piccolo", "cello", "higher")
                                                       + pitch_row("bassoon", "violin", "lower"))
    (ds / "sound_pitch_comparsion_wiki.csv").write_text(
        "span1,span2,sentence,answer\n"
        "Bass,alto,The sound of Bass is [MASK] than the sound of alto,lower\n"
        "Violin,cello,The sound of Violin is [MASK] than the sound of cello,higher\n"
    )
    return root


def test_import_official_converts_and_reports_defects(tmp_path):
    src = write_fixture(tmp_path / "AudioBERT")
    path = import_official(src, tmp_path / "releases", "0.1.0")
    assert path == tmp_path / "releases" / "official-0.1.0"
    rel = load_release(path)
    assert rel.name == "official" and rel.tasks == ["animal_sound_recognition", "sound_pitch_comparison"]
    assert rel.manifest["tasks"]["animal_sound_recognition"]["counts"] == {"train": 3, "dev": 1, "test": 3, "wiki": 3}
    assert rel.manifest["tasks"]["sound_pitch_comparison"]["counts"] == {"train": 12, "dev": 2, "test": 5, "wiki": 2}
    assert rel.choices("animal_sound_recognition") == ["cat", "dog", "duck", "eagle owl", "fox"]
    assert rel.choices("sound_pitch_comparison") == ["higher", "lower"]

    wiki = pd.read_csv(path / "sound_pitch_comparison" / "wiki.csv")
    assert list(wiki.columns) == ["sentence", "answer", "span1", "span2"]
    assert wiki.loc[wiki.span1 == "Bass", "answer"].item() == "lower"
    animal_wiki = rel.items("animal_sound_recognition", "wiki")
    assert sorted(animal_wiki["answer"]) == ["dog", "eagle owl", "fox"]
    assert (animal_wiki["source"] == "official").all()
    assert list(pd.read_csv(path / "animal_sound_recognition" / "train.csv").columns) == ["animal", "description", "sentence"]

    defects = rel.manifest["defects"]
    assert defects["identical_files"] == [["animal_sound_recognition_test.csv", "animal_sound_recognition_train.csv"]]
    assert defects["exact_duplicate_rows"] == {"sound_pitch_comparsion_train.csv": 2}
    assert defects["cross_split_overlap"]["sound_pitch_comparison"]["test rows also in train"] == 2
    assert defects["cross_split_overlap"]["animal_sound_recognition"]["test rows also in train"] == 3
    assert defects["answer_share"]["sound_pitch_comparison"]["test"] == {"higher": 0.8, "lower": 0.2}
    assert defects["answers_lower_cased"] == {"animal_sound_recognition/wiki": 3}
    assert defects["rejected_rows"] == 2  # the row without [MASK], in train and in its identical test copy
    violations = defects["violations"]
    assert any(v.startswith("balance: sound_pitch_comparison/test: higher 4/5") for v in violations)
    assert any(v.startswith("duplicate item id: sound_pitch_comparison/train: 2 extra rows") for v in violations)
    assert any(v.startswith("duplicate sentence: animal_sound_recognition/wiki") for v in violations)
    assert any(v.startswith("overlap item id: all tasks") for v in violations)
    assert rel.manifest["validation"]["ok"] is False

    details = json.loads((path / DEFECTS_FILE).read_text())
    originals = {d["original"] for d in details["answer_originals"]}
    assert originals == {"Eagle owl", "Dog", "Fox"}
    assert details["rejected"][0] == {"file": "animal_sound_recognition_test.csv", "row": 5,
                                      "reason": "Value error, sentence must hold exactly one [MASK]: 'moo is what a cow says'"}
    card = (path / "README.md").read_text()
    assert "Known defects, reported rather than hidden" in card and "identical_files" in card
    assert "- config_name: sound_pitch_comparison" in card and "    path: sound_pitch_comparison/wiki.parquet" in card


def test_import_is_deterministic_and_idempotent(tmp_path):
    src = write_fixture(tmp_path / "src")
    a = import_official(src, tmp_path / "a", "1")
    b = import_official(src / "dataset", tmp_path / "b", "1")  # the dataset/ folder itself works too
    assert file_digests(a) == file_digests(b)
    assert import_official(src, tmp_path / "a", "1") == a


def test_nested_layout_and_unknown_columns(tmp_path):
    ds = tmp_path / "dataset"
    (ds / "sound_pitch_comparsion").mkdir(parents=True)
    (ds / "sound_pitch_comparsion" / "train.csv").write_text(PITCH_HEADER + "".join(PITCH_TRAIN_ROWS))
    assert find_official_files(tmp_path) == {("sound_pitch_comparison", "train"): ds / "sound_pitch_comparsion" / "train.csv"}
    (ds / "weird_test.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"weird_test\.csv: columns \['a', 'b'\]"):
        import_official(tmp_path, tmp_path / "rel", "1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no official CSVs"):
        import_official(tmp_path / "empty", tmp_path / "rel", "1")
    with pytest.raises(InputError, match="official dataset folder not found"):
        import_official(tmp_path / "missing", tmp_path / "rel", "1")


def test_resplit_regroups_so_nothing_crosses_splits(tmp_path):
    from benchmark.official import RESPLIT_FILE, RESPLIT_NAME
    from benchmark.validate import validate_release

    src = write_fixture(tmp_path / "src")
    with open(src / "dataset" / "sound_pitch_comparsion_test.csv", "a") as f:  # train's pair (flute 5, tuba 5), reworded
        f.write("A tuba 5 sounds [MASK] than a flute 5,lower,tuba 5,flute 5\n")
    official = load_release(import_official(src, tmp_path / "rel", "1.0", resplit=True))
    path = tmp_path / "rel" / f"{RESPLIT_NAME}-1.0"
    rel = load_release(path)
    report = validate_release(path)
    leaks = [v for v in report.violations if v.startswith(("overlap", "duplicate"))]
    assert any(v.startswith("overlap") for v in validate_release(official.path).violations)  # the fixture does leak
    assert not leaks and all(v.startswith("balance") for v in report.violations)  # what is left: the official imbalance
    doc = json.loads((path / RESPLIT_FILE).read_text())["report"]
    pitch, animal = doc["sound_pitch_comparison"], doc["animal_sound_recognition"]
    # pitch: train holds 2 repeated rows, and 2 of its items are also the first 2 test items -> kept once, in test
    # (test first); the train item about the pair (flute 5, tuba 5) moves to test: the official test set stays whole
    assert pitch["dropped"] == {"repeated row": 2, "the same item in two splits, kept once": 2}
    assert pitch["moved"] == {"train -> test": 1} and pitch["official_test_kept"] == "6 of 6"
    assert pitch["after"] == {"dev": 2, "test": 7, "train": 7, "wiki": 2}
    assert "flute 5" in " ".join(rel.items("sound_pitch_comparison", "test")["sentence"])
    # animal: train and test are the same 3 items -> shared out by hash, not all pulled into test
    assert animal["policy"].startswith("contested groups shared out by hash")
    n_train, n_test = (len(rel.items("animal_sound_recognition", s)) for s in ("train", "test"))
    assert n_train + n_test == 2 and animal["before"] == {"dev": 1, "test": 3, "train": 3, "wiki": 3}
    # the wiki "bark" sentence has two answers (dog, fox): ambiguous, dropped; "hoot" (eagle owl) stays in wiki,
    # so the train/test "Hoot" item, the same sentence, is dropped from train/test
    assert animal["dropped"]["sentence given several answers"] == 2
    assert animal["dropped"]["shares an id, sentence or source pair with a wiki item"] == 2
    assert [s for s in rel.items("animal_sound_recognition", "wiki")["sentence"]] == ["hoot is the sound a [MASK] makes."]
    card = (path / "README.md").read_text()
    assert "resplit" in card and "train -> test" in card
    # the ids that stayed keep their content
    orig = {r.id: r.sentence for r in official.items("sound_pitch_comparison", "test").itertuples()}
    now = {r.id: r.sentence for r in rel.items("sound_pitch_comparison", "test").itertuples()}
    assert orig.items() <= now.items()
