"""The wiki snapshots and the items made from them: coverage, Hz from the parser, pairs, balance, determinism."""

import math
from collections import Counter

import pandas as pd
import pytest

from benchmark.schema import COLUMNS, MASK, Item, item_id
from benchmark.text import with_article
from pipeline.params import stage_params
from pipeline.stages.wiki import wiki_stage
from pipeline.wiki.items import (
    build_animal_items,
    build_pitch_items,
    wiki_animal_items,
    wiki_pitch_items,
)
from pipeline.wiki.parser import extract_range, note_to_midi, parse_note
from pipeline.wiki.snapshot import ANIMAL_SOUNDS_PATH, RANGES_PATH, load_snapshot

PITCH_TASK = "sound_pitch_comparison"
ANIMAL_TASK = "animal_sound_recognition"

TEMPLATES = ["The sound of {a} is typically [MASK] than the sound of {b}.", "{A} usually sounds [MASK] in pitch than {b}."]


@pytest.fixture(scope="module")
def ranges():
    return load_snapshot(RANGES_PATH)


@pytest.fixture(scope="module")
def animals():
    return load_snapshot(ANIMAL_SOUNDS_PATH)


def _hz(note: str) -> float:  # an independent 12-TET formula, to check the parser's numbers
    return 440.0 * 2 ** ((note_to_midi(note) - 69) / 12)


def test_ranges_snapshot_covers_instruments_and_voices(ranges):
    entries = ranges["entries"]
    assert len(entries) >= 100
    kinds = Counter(e["kind"] for e in entries)
    assert kinds["voice"] >= 7 and kinds["instrument"] >= 90
    voices = {e["name"] for e in entries if e["kind"] == "voice"}
    assert {"soprano", "mezzo-soprano", "contralto", "countertenor", "tenor", "baritone", "bass"} <= voices
    assert len({e["name"] for e in entries}) == len(entries)
    assert all(e["hand_curated"] is True and e["revision_id"] is None for e in entries)  # nothing here was fetched


def test_snapshot_notes_and_hz_come_from_the_parser(ranges):
    for e in ranges["entries"]:
        assert extract_range(e["source_text"], e["name"]) == (e["low_note"], e["high_note"]), e["name"]
        assert e["low_hz"] == pytest.approx(parse_note(e["low_note"]), abs=1e-3)
        assert e["high_hz"] == pytest.approx(_hz(e["high_note"]), abs=1e-3)
        assert 8.0 < e["low_hz"] < e["high_hz"] < 8000.0, e["name"]
        assert e["page_title"]


def test_animal_snapshot_has_forty_animals(animals):
    entries = animals["entries"]
    assert len(entries) >= 40
    assert all(e["page_title"] == "List of animal sounds" and e["hand_curated"] and e["sounds"] for e in entries)


def test_pair_count_gap_and_balance(ranges):
    entries, min_gap = ranges["entries"], 1.10
    items, rejects = build_pitch_items(entries, min_gap, TEMPLATES, task=PITCH_TASK)
    char = {e["name"]: math.sqrt(_hz(e["low_note"]) * _hz(e["high_note"])) for e in entries}
    names = sorted(char)
    expected = sum(
        1 for i, a in enumerate(names) for b in names[i + 1 :] if max(char[a], char[b]) / min(char[a], char[b]) >= min_gap
    )
    assert len(items) == expected
    assert len(items) + sum(r.reason == "below_min_gap" for r in rejects) == len(names) * (len(names) - 1) // 2
    labels = Counter(it.answer for it in items)
    assert set(labels) == {"higher", "lower"}
    assert abs(labels["higher"] - labels["lower"]) <= max(1, 0.1 * len(items))
    for it in items:
        assert it.split == "wiki" and it.source == "wiki" and it.task == PITCH_TASK and it.basis == "wiki-range"
        assert it.value1 == pytest.approx(char[it.span1], rel=1e-6) and it.value2 == pytest.approx(char[it.span2], rel=1e-6)
        assert (it.value1 > it.value2) == (it.answer == "higher")
        assert max(it.value1, it.value2) / min(it.value1, it.value2) >= min_gap
        assert it.spans == [it.span1, it.span2] and it.sentence.count(MASK) == 1
    assert len({it.group_id for it in items}) == len(items)


def test_items_are_deterministic_and_ids_follow_schema(ranges):
    entries = ranges["entries"]
    first = wiki_pitch_items(entries, 1.10, TEMPLATES, task=PITCH_TASK)
    again = wiki_pitch_items(list(reversed(entries)), 1.10, TEMPLATES, task=PITCH_TASK)
    assert [it.model_dump() for it in first] == [it.model_dump() for it in again]
    titles = {e["name"]: e["page_title"] for e in entries}
    it = first[0]
    assert it.id == item_id(PITCH_TASK, it.sentence, it.answer, [titles[it.span1], titles[it.span2]])
    assert [i.id for i in first] == sorted(i.id for i in first)


def test_labels_alternate_along_group_hash_order():
    entries = [
        {"name": n, "page_title": n.title(), "low_note": lo, "high_note": hi}
        for n, lo, hi in [("tuba", "D1", "F4"), ("violin", "G3", "A7"), ("oboe", "B♭3", "A6"), ("cello", "C2", "C6"), ("piccolo", "D5", "C8")]
    ]
    items = wiki_pitch_items(entries, 1.10, TEMPLATES[:1], task=PITCH_TASK)
    by_group = sorted(items, key=lambda it: it.group_id)
    assert [it.answer for it in by_group] == ["higher", "lower"] * (len(items) // 2) + ["higher"] * (len(items) % 2)


def test_bad_entries_become_rejects_not_crashes():
    entries = [
        {"name": "violin", "page_title": "Violin", "low_note": "G3", "high_note": "A7"},
        {"name": "tuba", "page_title": "Tuba", "low_note": "D1", "high_note": "F4"},
        {"name": "kazoo", "page_title": "Kazoo", "low_note": "H2", "high_note": "C5"},
        {"name": "upside down", "page_title": "X", "low_note": "C6", "high_note": "C2"},
        {"name": "violin", "page_title": "Violin", "low_note": "G3", "high_note": "A7"},
    ]
    items, rejects = build_pitch_items(entries, 1.10, TEMPLATES, task=PITCH_TASK)
    assert len(items) == 1
    assert sorted((r.key, r.reason) for r in rejects) == [("kazoo", "bad_range"), ("upside down", "bad_range"), ("violin", "duplicate_name")]


def test_articles():
    assert [with_article(n) for n in ["oboe", "euphonium", "ukulele", "E-flat clarinet", "English horn", "violin", "alto", "French horn"]] == [
        "an oboe", "a euphonium", "a ukulele", "an E-flat clarinet", "an English horn", "a violin", "an alto", "a French horn",
    ]
    item = wiki_pitch_items(
        [{"name": "oboe", "page_title": "Oboe", "low_note": "B♭3", "high_note": "A6"},
         {"name": "tuba", "page_title": "Tuba", "low_note": "D1", "high_note": "F4"}], 1.10, TEMPLATES[:1], task=PITCH_TASK)[0]
    assert "an oboe" in item.sentence and "a tuba" in item.sentence


def test_animal_items(animals):
    items, rejects = build_animal_items(animals["entries"], task=ANIMAL_TASK)
    assert len(items) >= 30
    owners = Counter(s for e in animals["entries"] for s in set(e["sounds"]))
    names = {e["name"] for e in animals["entries"]}
    for it in items:
        assert it.task == ANIMAL_TASK and it.split == "wiki" and it.source == "wiki"
        assert it.answer == it.answer.lower() and it.answer in names
        assert it.spans == [it.description] and owners[it.description] == 1
        assert it.description in next(e["sounds"] for e in animals["entries"] if e["name"] == it.answer)
        assert it.id == item_id(ANIMAL_TASK, it.sentence, it.answer, ["List of animal sounds"])
    owl = next(it for it in items if it.description == "hoot")
    assert owl.sentence == "Hoot is the sound an [MASK] makes." and owl.answer == "owl"
    assert {r.reason for r in rejects} <= {"ambiguous_sound", "sound_names_animal"}
    assert any(r.reason == "ambiguous_sound" and r.key.endswith(":buzz") for r in rejects)  # bee and fly
    assert wiki_animal_items(animals["entries"], task=ANIMAL_TASK) == items


def test_wiki_stage_writes_items_and_manifest(tmp_path):
    params = stage_params("wiki")
    manifest = wiki_stage(tmp_path / "wiki", params, quiet=True)
    df = pd.read_parquet(tmp_path / "wiki" / "items.parquet")
    assert list(df.columns) == COLUMNS["items"]
    assert list(df["id"]) == sorted(df["id"]) and df["id"].is_unique
    assert set(df["split"]) == {"wiki"} and set(df["task"]) == {PITCH_TASK, ANIMAL_TASK}
    Item(**{**df.iloc[0].to_dict(), "spans": list(df.iloc[0]["spans"]), "clip_ids": [], "licenses": []})
    tasks = manifest["tasks"]
    assert tasks[PITCH_TASK]["items"] == int((df["task"] == PITCH_TASK).sum())
    balance = tasks[PITCH_TASK]["labels"]
    assert abs(balance["higher"] - balance["lower"]) <= 1
    assert manifest["hand_curated"]["ranges"] == len(load_snapshot(RANGES_PATH)["entries"])
    assert manifest["snapshots"]["ranges"]["version"] == load_snapshot(RANGES_PATH)["version"]
    assert len(manifest["snapshots"]["ranges"]["sha256"]) == 64
    assert manifest["counts"]["kept"] == len(df)
    before = (tmp_path / "wiki" / "items.parquet").stat().st_mtime_ns
    assert wiki_stage(tmp_path / "wiki", params, quiet=True) == manifest  # fresh: nothing rewritten
    assert (tmp_path / "wiki" / "items.parquet").stat().st_mtime_ns == before
    changed = wiki_stage(tmp_path / "wiki", {**params, "min_gap": 1.5}, quiet=True)
    assert changed["tasks"][PITCH_TASK]["items"] < tasks[PITCH_TASK]["items"]
