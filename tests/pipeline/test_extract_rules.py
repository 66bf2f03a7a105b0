"""The rules backend on hand-written captions in the style of real Freesound uploads, and the extract / write
stages run with it. Nothing here comes from the demo corpus generator."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from benchmark.errors import RejectBudgetError, UnknownNameError
from pipeline.extract.lexicon import load_lexicon
from pipeline.extract.records import make_clip_text, make_pair_text
from pipeline.extract.rules import RulesBackend, fill_template
from pipeline.stages.extract import extract_stage
from pipeline.stages.write import write_stage

PITCH = {"choices": ["higher", "lower"], "dimension": "pitch",
         "templates": ["The sound of {a} is typically [MASK] than the sound of {b}.",
                       "{A} usually sounds [MASK] than {b}.",
                       "Compared with the sound of {b}, the sound of {a} is typically [MASK]."]}
LOUD = {"choices": ["louder", "quieter"], "dimension": "loudness", "templates": ["{A} is usually [MASK] than {b}."]}
TASKS = {"sound_pitch_comparison": PITCH, "loudness_comparison": LOUD}

# (title, tags, description, captions, expected category path)
CAPTIONS = [
    ("DogBark_Loud_02.wav", ["dog", "bark", "animal", "field-recording"],
     "recorded my neighbours dog barking at the mailman. zoom h4n", ["a dog is barking loudly outside"], "animal/dog"),
    ("gato maullando.wav", ["gato", "maullido"], "mi gato pidiendo comida", ["a cat meows several times"], "animal/cat"),
    ("Amsel_Gesang_morgens.flac", ["vogel", "amsel", "gesang", "natur"], "Vogelgesang am Morgen im Garten",
     ["birds singing in the morning"], "animal/bird"),
    ("violin_A4_sustain_vib.wav", ["violin", "strings", "sustain", "note", "a4"], "single sustained violin note, A4 with vibrato",
     ["a violin plays a long note"], "music/violin"),
    ("kettle whistling", ["kettle", "boil", "kitchen"], "old stovetop kettle coming to the boil", ["a kettle whistles"], "object/kettle"),
    ("lluvia sobre tejado", ["lluvia", "tejado", "noche"], "lluvia fuerte en la noche", [], "environment/rain"),
    ("orage_tonnerre_nuit.wav", ["orage", "tonnerre", "pluie"], "Orage avec tonnerre au loin", [], "environment/thunder"),
    ("man talking on phone", ["voice", "speech", "male"], "guy talking, english", ["a man speaks"], "human/speech"),
    ("Kuh muht auf der Weide", ["kuh", "farm"], "eine Kuh auf der Alm", ["a cow moos"], "animal/cow"),
    ("roomtone_studio_01", ["ambience", "room-tone"], "room tone of my studio, 24bit", [], "other"),
    ("huehner_im_stall", ["huhn", "stall", "bauernhof"], "Hühner im Stall gackern", [], "animal/chicken"),
    ("cloches eglise dimanche", ["cloche", "eglise"], "les cloches de l'église du village", [], "music/bell"),
    ("OwlHoot_night", ["owl", "bird", "night", "forest"], "tawny owl hooting in the forest at night", [], "animal/owl"),
    ("rooster_crow_mono.wav", ["rooster", "farm", "mono", "stereo"], "the rooster crows at dawn, cock-a-doodle-doo",
     [], "animal/rooster"),
    ("sine wave sweep 440", ["synth", "test-tone", "mono"], "sine wave for testing speakers", [], "music/synthesizer"),
]


def clip_row(i: int, title: str, tags: list[str], desc: str, caps: list[str]) -> dict:
    return {"clip_id": f"freesound/{1000 + i}", "source": "freesound", "shard": "", "member": f"{i}.flac", "offset": 0,
            "size": 1, "captions": caps, "tags": tags, "title": title, "description": desc, "license": "", "license_kind": "cc0",
            "license_flag": False, "author": "someone", "url": "", "duration_s": 1.0, "sample_rate": 48000, "channels": 1,
            "audio_sha256": f"{i:064x}"}


def write_clips(build_dir: Path, rows: list[dict]) -> Path:
    (build_dir / "read").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(build_dir / "read" / "clips.parquet", index=False)
    return build_dir


def pair_row(pid: str, a: str, b: str, label: str, va: float, vb: float, cap_a: str = "", cap_b: str = "",
             task: str = "sound_pitch_comparison") -> dict:
    return {"pair_id": pid, "task": task, "split": "train", "clip_a": f"c/{pid}a", "clip_b": f"c/{pid}b", "source_a": a,
            "source_b": b, "category": "music", "caption_a": cap_a, "caption_b": cap_b, "label": label, "basis": "f0",
            "value_a": va, "value_b": vb}


def write_pairs(build_dir: Path, rows: list[dict]) -> Path:
    (build_dir / "pairs").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(build_dir / "pairs" / "pairs.parquet", index=False)
    return build_dir


@pytest.mark.parametrize("title,tags,desc,caps,expected", CAPTIONS, ids=[c[0] for c in CAPTIONS])
def test_rules_categorise_freesound_style(title, tags, desc, caps, expected):
    backend = RulesBackend(load_lexicon())
    clip = make_clip_text("x/1", title, tags, desc, caps, 600)
    prop = backend.propose_categories([[clip]])["x/1"]
    path = "other" if prop.category == "other" else f"{prop.category}/{prop.source}"
    assert path == expected


def test_lexicon_normalises_names():
    lex = load_lexicon()
    assert lex.normalise("Puppies") == "dog"
    assert lex.normalise("the Geese") == "goose"
    assert lex.normalise("Geige") == "violin"
    assert lex.normalise("perro") == "dog"
    assert lex.normalise("zorblax") == ""
    assert "dog" in lex.animals and "violin" not in lex.animals
    assert lex.related("owl", "bird") and not lex.related("dog", "cat")


def test_extract_stage_rules_items_and_rejects(tmp_path):
    rows = [clip_row(i, *c[:4]) for i, c in enumerate(CAPTIONS)]
    rows.append(clip_row(90, "dog vs cat fight.wav", ["dog", "cat"], "my dog chasing the cat", ["a dog and a cat"]))
    manifest = extract_stage(write_clips(tmp_path, rows), {"backend": "rules", "max_reject_frac": 0.5}, quiet=True)
    cats = pd.read_parquet(tmp_path / "extract" / "categories.parquet")
    items = pd.read_parquet(tmp_path / "extract" / "animal_items.parquet").set_index("clip_id")
    rejects = pd.read_parquet(tmp_path / "extract" / "rejects.parquet")
    assert len(cats) == len(rows) and set(cats["backend"]) == {"rules"}
    dog = items.loc["freesound/1000"]
    assert dog["answer"] == "dog" and dog["sentence"].count("[MASK]") == 1
    assert dog["description"] == "bark" and list(dog["spans"])[0].lower() == "bark"  # the caption's own sound word
    assert list(dog["spans"])[0] in dog["sentence"] and "dog" not in dog["sentence"].lower()
    assert items.loc["freesound/1012"]["answer"] == "owl" and items.loc["freesound/1012"]["description"] == "hoot"
    rooster = items.loc["freesound/1013"]  # "crows" is the rooster's verb here, and "mono" is no monkey
    assert rooster["answer"] == "rooster" and rooster["description"] == "cock-a-doodle-doo"
    assert "freesound/1090" not in items.index  # names two different animals
    assert rejects.set_index("key").loc["freesound/1090", "reason"] == "two_animals"
    assert set(items["answer"]) <= set(manifest["answer_vocabulary"])
    assert manifest["backend"] == "rules" and manifest["model"].startswith("lexicon-v")
    assert manifest["counts"]["rejected"] == {"two_animals": 1}
    again = extract_stage(tmp_path, {"backend": "rules", "max_reject_frac": 0.5}, quiet=True)
    assert again["outputs"] == manifest["outputs"]  # same items on every rerun


def test_extract_stage_reject_budget(tmp_path):
    rows = [clip_row(i, "dog and cat", ["dog", "cat"], "dog barks at a cat", []) for i in range(4)]
    with pytest.raises(RejectBudgetError, match="max_reject_frac"):
        extract_stage(write_clips(tmp_path, rows), {"backend": "rules", "max_reject_frac": 0.2}, quiet=True)
    assert len(pd.read_parquet(tmp_path / "extract" / "rejects.parquet")) == 4  # the rejects are kept for a look
    assert not (tmp_path / "extract" / "manifest.json").exists()


def test_unknown_backend_suggests(tmp_path):
    write_clips(tmp_path, [clip_row(0, "dog", ["dog"], "", [])])
    with pytest.raises(UnknownNameError, match="did you mean 'openai'"):
        extract_stage(tmp_path, {"backend": "openia"}, quiet=True)


def test_fill_template_articles():
    assert fill_template("The sound of {a} is [MASK] than {b}.", "oboe", "tuba") == "The sound of an oboe is [MASK] than a tuba."
    assert fill_template("{A} is [MASK] than {b}.", "rain", "euphonium") == "Rain is [MASK] than a euphonium."


def test_write_stage_rules_sentences_and_guesses(tmp_path):
    rows = [pair_row("p1", "violin", "tuba", "higher", 600.0, 70.0),
            pair_row("p2", "cello", "flute", "lower", 200.0, 800.0),
            pair_row("p3", "dog", "wolf", "higher", 900.0, 300.0, "tiny squeaky dog yapping", "big deep wolf howl"),
            pair_row("p4", "zorblax", "violin", "lower", 100.0, 600.0),
            pair_row("p5", "thunder", "whisper", "louder", -10.0, -40.0, task="loudness_comparison"),
            pair_row("p6", "oboe", "bassoon", "higher", 600.0, 120.0)]
    manifest = write_stage(write_pairs(tmp_path, rows), {"backend": "rules"}, TASKS, quiet=True)
    s = pd.read_parquet(tmp_path / "write" / "sentences.parquet").set_index("pair_id")
    assert len(s) == 6 and manifest["counts"]["kept"] == 6
    for _, r in s.iterrows():
        assert r["sentence"].count("[MASK]") == 1 and r["span1"] in r["sentence"] and r["span2"] in r["sentence"]
        at1, at2, mask = r["sentence"].index(r["span1"]), r["sentence"].rindex(r["span2"]), r["sentence"].index("[MASK]")
        assert at1 < mask < at2 or (r["sentence"].startswith("Compared with") and at2 < at1 < mask)
    assert s["sentence"].str.startswith("Compared with").any()  # every template shape is used and accepted
    assert s.loc["p1", "llm_guess"] == "higher" and s.loc["p2", "llm_guess"] == "lower"
    assert s.loc["p3", "llm_guess"] == "higher"  # same typical pitch: only the caption cues tell them apart
    assert s.loc["p4", "llm_guess"] == ""  # unknown source, no cue: the rules cannot tell
    assert s.loc["p5", "llm_guess"] == "louder" and s.loc["p5", "answer"] == "louder"
    assert "oboe" in s.loc["p6", "sentence"] and not re.search(r"\ba oboe", s.loc["p6", "sentence"], re.IGNORECASE)
    assert list(s["answer"]) == [r["label"] for r in sorted(rows, key=lambda r: r["pair_id"])]


def test_write_stage_rejects_same_source(tmp_path):
    write_stage(write_pairs(tmp_path, [pair_row("p1", "dog", "dog", "higher", 900.0, 300.0),
                                       pair_row("p2", "violin", "tuba", "higher", 600.0, 70.0)]),
                {"backend": "rules"}, TASKS, quiet=True)
    rejects = pd.read_parquet(tmp_path / "write" / "rejects.parquet")
    assert list(rejects["key"]) == ["p1"] and list(rejects["reason"]) == ["same_source"]


def test_write_guess_never_sees_the_measurement(tmp_path):
    """Swap the measurements (and so the label): the guess stays, so the pair now fails the agreement check."""
    rows = [pair_row("p1", "violin", "tuba", "higher", 600.0, 70.0), pair_row("p2", "piccolo", "double bass", "higher", 1500.0, 80.0)]
    write_stage(write_pairs(tmp_path / "a", rows), {"backend": "rules"}, TASKS, quiet=True)
    swapped = [dict(r, value_a=r["value_b"], value_b=r["value_a"], label="lower") for r in rows]
    write_stage(write_pairs(tmp_path / "b", swapped), {"backend": "rules"}, TASKS, quiet=True)
    a = pd.read_parquet(tmp_path / "a" / "write" / "sentences.parquet")
    b = pd.read_parquet(tmp_path / "b" / "write" / "sentences.parquet")
    assert list(a["llm_guess"]) == list(b["llm_guess"]) == ["higher", "higher"]
    assert (a["llm_guess"] == a["answer"]).all() and not (b["llm_guess"] == b["answer"]).any()


def test_pair_text_carries_no_measurement():
    p = make_pair_text("p", "t", "violin", "tuba", "a violin", "a tuba", PITCH, 300)
    assert set(p.as_data()) == {"source_a", "source_b", "caption_a", "caption_b"}
