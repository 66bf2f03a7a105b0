"""Splits by content group, pairs inside splits, and the filter's rules, on small hand-made tables."""

from __future__ import annotations

import json
import math
from collections import Counter

import pandas as pd
import pytest

from benchmark.errors import ConfigError, InputError
from benchmark.hashing import unit_interval
from benchmark.schema import item_id
from benchmark.tasks import get_task
from pipeline.filter import apply_review_decisions, balance_labels, comparison_items, drop_repeated_sentences
from pipeline.pairs import make_pairs, side_table
from pipeline.params import default_params
from pipeline.split import assign_split, clip_names, held_out_names, split_clips

FRACTIONS = {"train": 0.7, "dev": 0.1, "test": 0.2}


def test_split_is_by_group_and_deterministic() -> None:
    n = 3000
    clips = pd.DataFrame({"clip_id": [f"fs/{i}" for i in range(n)], "audio_sha256": [f"{i // 2:064x}" for i in range(n)]})
    df = split_clips(clips, quarantined={"fs/0"}, seed=7, fractions=FRACTIONS)
    assert "fs/0" not in set(df["clip_id"])
    assert df.groupby("group_id")["split"].nunique().max() == 1  # the same audio never reaches two splits
    share = df["split"].value_counts(normalize=True)
    assert abs(share["train"] - 0.7) < 0.04 and abs(share["dev"] - 0.1) < 0.03 and abs(share["test"] - 0.2) < 0.03
    # row order does not matter; the seed does
    again = split_clips(clips.sample(frac=1.0, random_state=1), set(), seed=7, fractions=FRACTIONS).set_index("clip_id")["split"]
    assert (again.loc[df["clip_id"]].values == df["split"].values).all()
    other = split_clips(clips, set(), seed=8, fractions=FRACTIONS).set_index("clip_id")["split"]
    assert (other.loc[df["clip_id"]].values != df["split"].values).any()
    assert assign_split("abc", 7, FRACTIONS) == assign_split("abc", 7, FRACTIONS)


def test_held_out_names_never_reach_train_and_the_rest_splits_as_before() -> None:
    n = 2000
    sources = [f"source{i % 40}" for i in range(n)]
    clips = pd.DataFrame({"clip_id": [f"fs/{i}" for i in range(n)], "audio_sha256": [f"{i:064x}" for i in range(n)]})
    categories = pd.DataFrame({"clip_id": clips["clip_id"], "category": ["animal" if i % 40 == 0 else "music" for i in range(n)],
                               "source_name": sources})
    animal = pd.DataFrame({"clip_id": [f"fs/{i}" for i in range(0, n, 40)], "description": [f"woof{i % 7}" for i in range(0, n, 40)],
                           "answer": "dog"})
    names = clip_names(categories, animal)
    assert "source0" not in set(names["name"])  # an animal is an answer: never held out (its sound words are)
    held = held_out_names(names["name"], 3, 0.4)
    assert 8 <= len(held) <= 22 and held == held_out_names(names["name"].sample(frac=1.0, random_state=2), 3, 0.4)
    df = split_clips(clips, set(), seed=3, fractions=FRACTIONS, names=names, holdout_frac=0.4).set_index("clip_id")
    plain = split_clips(clips, set(), seed=3, fractions=FRACTIONS).set_index("clip_id")
    name_of = names.groupby("clip_id")["name"].apply(set)
    on = [c for c in df.index if name_of.get(c, set()) & held]
    assert on and set(df.loc[on, "split"]) == {"dev", "test"}  # every clip of a held-out name is out of train
    assert (df.loc[on, "split"] == "test").mean() > 0.55  # dev : test as 1 : 2
    rest = df.index.difference(on)
    assert (df.loc[rest, "split"] == plain.loc[rest, "split"]).all()  # the others keep their split
    assert (df.loc[rest, "split"] == "train").any()
    with pytest.raises(ConfigError, match="holdout_frac"):
        held_out_names(["a"], 0, 1.0)


def test_a_held_out_sound_word_never_takes_every_train_example_of_its_animal() -> None:
    """Of an animal whose sound words all hash below the fraction, one stays in train: every test answer is a
    train answer too. Names that are no answer's cue (sources) are held out as hashed."""
    words = [f"w{i}" for i in range(60)]
    answers = [f"animal{i // 3}" for i in range(60)]  # three words each
    plain = held_out_names(words, 5, 0.9)
    kept = held_out_names(words, 5, 0.9, answers)
    by = {}
    for w, a in zip(words, answers):
        by.setdefault(a, set()).add(w)
    assert all(not ws <= kept for ws in by.values())  # every animal keeps a word in train
    lost = [a for a, ws in by.items() if ws <= plain]
    assert lost and plain - kept == {max(by[a], key=lambda w: (unit_interval(w, "5/holdout"), w)) for a in lost}
    assert held_out_names(words, 5, 0.9, [""] * 60) == plain


def _table(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame([
        {"clip_id": cid, "category": cat, "source_name": src, "pitched": pitched, "f0_hz": f0 if pitched else math.nan,
         "centroid_hz": cen, "title": src, "captions": [f"{src} recording"], "description": ""}
        for cid, cat, src, pitched, f0, cen in rows
    ])


PARAMS = {**default_params(), "pairs": {**default_params()["pairs"], "min_gap": 1.1, "max_pairs_per_clip": 2}}


def test_pairs_follow_the_gap_rule_and_never_mix_bases() -> None:
    task = get_task("sound_pitch_comparison")
    rows = [(f"c{i}", "music", src, True, f0, 1000.0) for i, (src, f0) in enumerate(
        [("violin", 660), ("tuba", 90), ("flute", 880), ("cello", 200), ("piccolo", 1500), ("bassoon", 120), ("oboe", 600), ("violin", 680)])]
    rows += [("e1", "environment", "rain", False, 0, 3000.0), ("e2", "environment", "wind", False, 0, 600.0),
             ("e3", "environment", "stream", False, 0, 3100.0)]  # stream vs rain: centroid gap < 10 %
    sides, _ = side_table(task, _table(rows), PARAMS)
    pairs, dropped = make_pairs(task, "train", sides, PARAMS, blocked=set(), seed=0)
    assert pairs and dropped["gap_below_min"] >= 1
    for p in pairs:
        assert p["source_a"] != p["source_b"]
        assert max(p["value_a"], p["value_b"]) / min(p["value_a"], p["value_b"]) >= 1.1
        assert p["label"] == ("higher" if p["value_a"] > p["value_b"] else "lower")  # the label is the measurement
        assert (p["basis"] == "centroid") == (p["category"] == "environment")  # f0 never compared with a centroid
    assert not any({p["source_a"], p["source_b"]} == {"rain", "stream"} for p in pairs)
    per_clip = Counter(c for p in pairs for c in p["clip_ids"])
    assert max(per_clip.values()) <= 2
    assert len({frozenset((p["source_a"], p["source_b"])) for p in pairs}) == len(pairs)  # one pair per source pair
    labels = Counter(p["label"] for p in pairs)
    assert abs(labels["higher"] - labels["lower"]) <= 1


def test_dev_test_pairs_avoid_train_source_pairs() -> None:
    task = get_task("sound_pitch_comparison")
    rows = [("a", "music", "violin", True, 660, 0.0), ("b", "music", "tuba", True, 90, 0.0)]
    sides, _ = side_table(task, _table(rows), PARAMS)
    pairs, dropped = make_pairs(task, "test", sides, PARAMS, blocked={frozenset(("violin", "tuba"))}, seed=0)
    assert pairs == [] and dropped["source_pair_in_train"] == 1


def test_clips_whose_estimators_disagree_give_no_f0_pair() -> None:
    task = get_task("sound_pitch_comparison")
    rows = [("a", "music", "violin", True, 660, 2000.0), ("b", "music", "tuba", True, 90, 400.0),
            ("c", "music", "cello", True, 200, 900.0), ("d", "music", "flute", False, 0, 3000.0)]
    table = _table(rows).assign(estimator_disagree=[False, True, False, False])  # tuba: the check heard another pitch
    sides, left_out = side_table(task, table, PARAMS)
    assert left_out["f0_estimators_disagree"] == 1
    assert set(sides[sides["basis"] == "f0"]["side_id"]) == {"a", "c"}
    assert set(sides[sides["basis"] == "centroid"]["side_id"]) == {"b", "d"}  # it still serves the centroid basis
    pairs, _ = make_pairs(task, "train", sides, PARAMS, blocked=set(), seed=0)
    assert not any(p["basis"] == "f0" and "b" in p["clip_ids"] for p in pairs)
    assert any(p["basis"] == "centroid" and set(p["clip_ids"]) == {"b", "d"} for p in pairs)


def _pair(pid: str, split: str, label: str, a: str = "violin", b: str = "tuba") -> dict:
    return {"pair_id": pid, "task": "sound_pitch_comparison", "split": split, "category": "music", "basis": "f0",
            "clip_a": f"{pid}a", "clip_b": f"{pid}b", "clip_ids": [f"{pid}a", f"{pid}b"], "source_a": a, "source_b": b,
            "caption_a": a, "caption_b": b, "value_a": 600.0 if label == "higher" else 100.0,
            "value_b": 100.0 if label == "higher" else 600.0, "gap": 6.0, "label": label}


def test_filter_keeps_only_agreeing_pairs_and_swapped_measurements_fail() -> None:
    pairs = pd.DataFrame([_pair("p1", "train", "higher"), _pair("p2", "train", "lower", "flute", "cello")])
    splits = pd.DataFrame({"clip_id": ["p1a", "p1b", "p2a", "p2b"], "group_id": ["g1", "g2", "g3", "g4"], "split": ["train"] * 4})
    sentences = pd.DataFrame([
        {"pair_id": "p1", "sentence": "The sound of a violin is typically [MASK] than the sound of a tuba.", "span1": "violin", "span2": "tuba", "llm_guess": "higher"},
        {"pair_id": "p2", "sentence": "The sound of a flute is typically [MASK] than the sound of a cello.", "span1": "flute", "span2": "cello", "llm_guess": "higher"},
    ])
    rejects: list[dict] = []
    items, agreement = comparison_items(pairs, sentences, splits, {}, True, 1.25, rejects)
    assert [i["span1"] for i in items] == ["violin"] and items[0]["answer"] == "higher"
    assert [r["reason"] for r in rejects] == ["disagrees_with_measurement"]
    assert agreement["sound_pitch_comparison"]["agreement_rate"] == 0.5


def test_repeated_sentences_and_balance() -> None:
    base = {"task": "sound_pitch_comparison", "spans": [], "clip_ids": []}
    items = [
        {**base, "id": "1", "split": "train", "sentence": "S one [MASK]", "answer": "higher"},
        {**base, "id": "2", "split": "test", "sentence": "s one [MASK]", "answer": "higher"},
        {**base, "id": "3", "split": "test", "sentence": "S two [MASK]", "answer": "higher"},
        {**base, "id": "4", "split": "test", "sentence": "S two [MASK]", "answer": "higher"},
    ] + [{**base, "id": f"h{k}", "split": "dev", "sentence": f"h{k} [MASK]", "answer": "higher"} for k in range(5)] + [
        {**base, "id": "l0", "split": "dev", "sentence": "l0 [MASK]", "answer": "lower"}]
    rejects: list[dict] = []
    kept = drop_repeated_sentences(items, rejects)
    assert {r["reason"] for r in rejects} == {"sentence_in_other_split", "duplicate_sentence"}
    assert sorted(i["id"] for i in kept if i["split"] != "dev") == ["1", "3"]
    balanced, notes = balance_labels(kept, rejects)
    dev = Counter(i["answer"] for i in balanced if i["split"] == "dev")
    assert dev == {"higher": 2, "lower": 1}
    assert sum(r["reason"] == "rebalance" for r in rejects) == 3
    # train ("1") and test ("3") hold one label each: they cannot be balanced, so they are emptied and named
    assert {i["split"] for i in balanced} == {"dev"}
    assert sorted(r["key"] for r in rejects if r["reason"] == "one_label_split") == ["1", "3"]
    assert [n.split(":")[0] for n in notes] == ["sound_pitch_comparison/test", "sound_pitch_comparison/train"]


def test_one_label_split_is_dropped_and_the_release_says_so(tmp_path) -> None:
    """The 142-clip case: duration dev ends with 2 "longer", 0 "shorter". The filter drops that split instead of
    handing the release an unbalanceable one, and the release publishes with the drop named in its card."""
    import pandas as pd

    from benchmark.release import build_release
    from benchmark.release_io import load_release
    from benchmark.schema import Item, item_id

    def item(k: int, split: str, answer: str) -> dict:
        a, b = f"source{k}a", f"source{k}b"
        sentence = f"The sound of {a} is typically [MASK] than the sound of {b}."
        return Item(id=item_id("duration_comparison", sentence, answer, [f"fs/{k}a", f"fs/{k}b"]), task="duration_comparison",
                    split=split, sentence=sentence, answer=answer, spans=[a, b], span1=a, span2=b, group_id=str(k),
                    clip_ids=[f"fs/{k}a", f"fs/{k}b"], basis="duration", value1=2.0, value2=1.0, source="corpus").model_dump()

    items = [item(k, "train", "longer" if k % 2 else "shorter") for k in range(6)] + [item(10, "dev", "longer"), item(11, "dev", "longer")]
    rejects: list[dict] = []
    kept, notes = balance_labels(items, rejects)
    assert not [i for i in kept if i["split"] == "dev"] and len(kept) == 6
    assert notes == ["duration_comparison/dev: 2 items all 'longer'; dropped (a one-label split cannot be balanced)"]
    clips = pd.DataFrame({"clip_id": sorted({c for i in kept for c in i["clip_ids"]})}).assign(
        license="http://creativecommons.org/publicdomain/zero/1.0/", author="a", url="u", title="t")
    path = build_release(pd.DataFrame(kept), tmp_path, "tiny", "1", clips=clips, task_choices={}, provenance={}, stage_manifests={},
                         defects={"one_label_splits_dropped": notes})
    rel = load_release(path)
    assert rel.splits("duration_comparison") == ["train"]
    from benchmark.card import write_card

    assert "duration_comparison/dev: 2 items all 'longer'" in write_card(path).read_text()


def test_review_decisions_drop_items_by_id(tmp_path) -> None:
    items = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    csv = tmp_path / "decisions.csv"
    csv.write_text("id,decision\na,drop\nb,keep\nzzz,drop\n")
    rejects: list[dict] = []
    kept, counts = apply_review_decisions(items, csv, rejects)
    assert [i["id"] for i in kept] == ["b", "c"]
    assert [(r["key"], r["reason"]) for r in rejects] == [("a", "review_drop")]
    assert counts == {"reviewed": 2, "kept": 1, "dropped": 1, "fixed": 0, "flagged": 0, "not_in_build": 1}
    csv.write_text("item,verdict\na,drop\n")
    with pytest.raises(InputError, match="decisions.csv: review decisions need columns id and decision"):
        apply_review_decisions(items, csv, [])


def test_review_decisions_fix_answers_and_settle_flags(tmp_path) -> None:
    base = {"task": "sound_pitch_comparison", "split": "train", "clip_ids": ["c1", "c2"], "review_flag": True}
    items = [{**base, "id": "p1", "sentence": "A is [MASK] than B.", "answer": "higher"},
             {**base, "id": "p2", "sentence": "C is [MASK] than D.", "answer": "higher"},
             {**base, "id": "p3", "sentence": "E is [MASK] than F.", "answer": "lower", "review_flag": False}]
    votes = {"p1": {"ann": {"label": "fix=lower", "fluency": 3}, "bob": {"label": "fix=lower", "fluency": 2}},
             "p2": {"ann": {"label": "keep", "fluency": 3}, "bob": {"label": "keep", "fluency": None}},
             "p3": {"ann": {"label": "keep", "fluency": 1}, "bob": {"label": "drop", "fluency": None}}}
    rows = [("p1", "fix", "lower"), ("p2", "keep", ""), ("p3", "flag", "")]
    csv = tmp_path / "decisions.csv"
    pd.DataFrame([{"id": i, "decision": d, "answer": a, "votes": json.dumps(votes[i])} for i, d, a in rows]).to_csv(csv, index=False)
    out, counts = apply_review_decisions(items, csv, [])
    by_sentence = {i["sentence"]: i for i in out}
    fixed = by_sentence["A is [MASK] than B."]
    assert fixed["answer"] == "lower" and not fixed["review_flag"]
    assert fixed["id"] == item_id("sound_pitch_comparison", "A is [MASK] than B.", "lower", ["c1", "c2"]) != "p1"
    assert not by_sentence["C is [MASK] than D."]["review_flag"]  # reviewed and kept
    assert by_sentence["E is [MASK] than F."]["review_flag"]  # reviewers tied: flagged for a person
    assert (counts["fixed"], counts["kept"], counts["flagged"], counts["dropped"]) == (1, 1, 1, 0)
    # ann and bob: fix=lower/fix=lower, keep/keep, keep/drop → p_o = 2/3, p_e = (1·1 + 2·1 + 0·1)/9 = 1/3, κ = 0.5
    assert counts["agreement"]["cohen_kappa"] == pytest.approx(0.5)
    assert counts["fluency_mean"] == pytest.approx((3 + 2 + 3 + 1) / 4) and counts["fluency_ratings"] == 4
    # a fix to an answer the task does not have is an error naming the file and the item
    pd.DataFrame([{"id": "p2", "decision": "fix", "answer": "louder"}]).to_csv(csv, index=False)
    with pytest.raises(InputError, match="decisions.csv: item p2: fixed answer 'louder' is not one of"):
        apply_review_decisions(items, csv, [])
    pd.DataFrame([{"id": "p2", "decision": "maybe"}]).to_csv(csv, index=False)
    with pytest.raises(InputError, match="item p2: decision 'maybe' is not one of keep, drop, fix, flag"):
        apply_review_decisions(items, csv, [])


def test_clips_stating_one_recognition_fact_share_a_group_and_a_split() -> None:
    """Twenty cow clips saying "moo" (different audio) are one group, in one split; the fact comes from the animal
    task's own item source run on the extract stage's table, in any wording and case."""
    from pipeline.split import clip_facts

    n = 200
    clips = pd.DataFrame({"clip_id": [f"fs/{i}" for i in range(n)], "audio_sha256": [f"{i:064x}" for i in range(n)]})
    animal = pd.DataFrame({"clip_id": [f"fs/{i}" for i in range(20)],
                           "sentence": [f"Moo number {i}: a [MASK]." for i in range(20)],
                           "answer": ["cow" if i % 2 else "Cow" for i in range(20)],
                           "description": ["moo" if i % 3 else " Moo " for i in range(20)],
                           "spans": [["moo"]] * 20})
    tables = {"clips": clips, "categories": pd.DataFrame(columns=["clip_id", "category", "source_name", "confidence"]),
              "animal_items": animal}
    facts = clip_facts(tables, {"tasks": {"enabled": ["animal_sound_recognition"]}})
    assert set(facts["fact"]) == {"animal_sound_recognition|moo|cow"} and len(facts) == 20
    df = split_clips(clips, set(), seed=0, fractions=FRACTIONS, facts=facts).set_index("clip_id")
    cows = df.loc[[f"fs/{i}" for i in range(20)]]
    assert cows["group_id"].nunique() == 1 and cows["split"].nunique() == 1 and cows["group_id"].iloc[0] == f"{0:064x}"
    plain = split_clips(clips, set(), seed=0, fractions=FRACTIONS).set_index("clip_id")
    assert plain.loc[[f"fs/{i}" for i in range(20)], "split"].nunique() > 1  # without the facts the fact straddles
    assert (df.loc[[f"fs/{i}" for i in range(20, n)]] == plain.loc[[f"fs/{i}" for i in range(20, n)]]).all().all()
