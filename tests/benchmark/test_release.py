"""Release format: build, load with checksums, determinism, integrity on rebuild, exclude_nc, datasets loading."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from benchmark.card import write_card
from benchmark.errors import InputError, ReleaseIntegrityError, ValidationError
from benchmark.release import build_release
from benchmark.release_io import file_digests, load_release
from benchmark.schema import COLUMNS, Item, item_id

BY = "https://creativecommons.org/licenses/by/4.0/"
NC = "https://creativecommons.org/licenses/by-nc/3.0/"
ZERO = "http://creativecommons.org/publicdomain/zero/1.0/"
ANIMALS = [("dog", "woof"), ("cat", "meow"), ("cow", "moo"), ("duck", "quack")]
SPLIT_OF = ["train"] * 6 + ["dev"] * 2 + ["test"] * 2


def make_clips(n: int = 30, nc: set[int] = frozenset()) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"clip_id": f"freesound/{i}", "license": NC if i in nc else (ZERO if i % 3 == 0 else BY),
             "license_kind": "cc-by-nc" if i in nc else ("cc0" if i % 3 == 0 else "cc-by"),
             "author": f"author{i}", "url": f"https://freesound.org/s/{i}", "title": f"clip {i}"}
            for i in range(n)
        ]
    )


def make_items(tag: str = "") -> pd.DataFrame:
    """10 animal items (clips 0-9) and 10 pitch items (clips 10-29, one pair each), balanced per split."""
    rows = []
    for i, split in enumerate(SPLIT_OF):
        animal, sound = ANIMALS[i % len(ANIMALS)]
        sentence = f"The {sound} number {i}{tag} is the sound a [MASK] makes."
        clip = f"freesound/{i}"
        rows.append(Item(id=item_id("animal_sound_recognition", sentence, animal, [clip]), task="animal_sound_recognition",
                         split=split, sentence=sentence, answer=animal, spans=[f"{sound} number {i}"],
                         description=f"{sound} number {i}",  # one fact per item: a shared (sound, animal) may not straddle splits
                         group_id=clip, clip_ids=[clip], source="corpus").model_dump())
    for i, split in enumerate(SPLIT_OF):
        a, b = f"freesound/{10 + 2 * i}", f"freesound/{11 + 2 * i}"
        s1, s2 = f"whistle {i}", f"drum {i}"
        sentence = f"The sound of a {s1} is [MASK] than a {s2}{tag}."
        answer = "higher" if i % 2 == 0 else "lower"
        rows.append(Item(id=item_id("sound_pitch_comparison", sentence, answer, [a, b]), task="sound_pitch_comparison",
                         split=split, sentence=sentence, answer=answer, spans=[s1, s2], span1=s1, span2=s2,
                         group_id=f"{a}|{b}", clip_ids=[a, b], basis="f0", value1=880.0 + i if answer == "higher" else 110.0,
                         value2=220.0 + 3 * i, source="corpus").model_dump())
    return pd.DataFrame(rows)


def build(root: Path, items: pd.DataFrame | None = None, clips: pd.DataFrame | None = None, **kw) -> Path:
    """A release and its card, the two steps (release, card) of the pipeline."""
    path = build_release(
        make_items() if items is None else items, root, kw.pop("name", "demo"), kw.pop("version", "1.0.0"),
        clips=make_clips() if clips is None else clips, task_choices={},
        provenance={"corpus": {"id": "demo"}, "estimator": "pyin", "params": {"release": {"version": "1.0.0"}}},
        stage_manifests={"read": {"counts": {"kept": 30, "rejected": {"truncated_tar": 1}}},
                         "filter": {"counts": {"kept": 20, "rejected": {}}}},
        **kw,
    )
    write_card(path)
    return path


def test_layout_csv_columns_manifest_and_round_trip(tmp_path):
    path = build(tmp_path)
    assert path == tmp_path / "demo-1.0.0"
    for task in ("animal_sound_recognition", "sound_pitch_comparison"):
        for split in ("train", "dev", "test"):
            assert (path / task / f"{split}.parquet").is_file() and (path / task / f"{split}.csv").is_file()
        assert not (path / task / "wiki.parquet").exists()
    assert list(pd.read_csv(path / "animal_sound_recognition/train.csv").columns) == ["animal", "description", "sentence"]
    assert list(pd.read_csv(path / "sound_pitch_comparison/test.csv").columns) == ["sentence", "answer", "span1", "span2"]
    assert pq.read_schema(path / "sound_pitch_comparison/train.parquet").names == COLUMNS["items"]

    rel = load_release(path)
    assert (rel.name, rel.version, rel.tasks) == ("demo", "1.0.0", ["animal_sound_recognition", "sound_pitch_comparison"])
    assert rel.splits("sound_pitch_comparison") == ["train", "dev", "test"]
    assert rel.choices("animal_sound_recognition") == ["cat", "cow", "dog", "duck"]
    assert rel.choices("sound_pitch_comparison") == ["higher", "lower"]
    assert rel.manifest["tasks"]["sound_pitch_comparison"]["counts"] == {"train": 6, "dev": 2, "test": 2}
    assert rel.manifest["tasks"]["sound_pitch_comparison"]["balance"]["train"] == {"higher": 3, "lower": 3}
    assert rel.audio_index_dir is None
    assert rel.license == "cc-by"  # cc0 and cc-by clips: cc-by is the most restrictive

    items = make_items()
    back = rel.items("sound_pitch_comparison", "train")
    want = items[(items.task == "sound_pitch_comparison") & (items.split == "train")].sort_values("id")
    assert list(back.columns) == COLUMNS["items"]
    assert back["id"].tolist() == want["id"].tolist()
    assert back["clip_ids"].tolist() == want["clip_ids"].tolist()
    assert back["licenses"].iloc[0] and all(isinstance(x, list) for x in back["licenses"])  # filled from the clips
    for row in back.to_dict(orient="records"):
        Item.model_validate(row)
    assert rel.items("sound_pitch_comparison", "wiki").empty

    attribution = pd.read_csv(path / "ATTRIBUTION.csv")
    assert list(attribution.columns)[:4] == ["clip_id", "author", "url", "license"]
    assert len(attribution) == 30 and attribution["author"].str.startswith("author").all()
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(manifest["files"]) == set(file_digests(path)) - {"manifest.json", "README.md"}  # the card is documentation
    assert "figures/gap_histogram.png" in manifest["files"] and manifest["figures"]["gap_histogram"]["caption"]
    assert manifest["provenance"]["estimator"] == "pyin" and manifest["validation"]["ok"] is True
    card = (path / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n- config_name: animal_sound_recognition")
    assert "truncated_tar: 1" in card and "| sound_pitch_comparison | 6 | 2 | 2 | 0 | 10 |" in card


def test_same_inputs_give_identical_sha256_for_every_file(tmp_path):
    a = build(tmp_path / "a")
    b = build(tmp_path / "b", items=make_items().sample(frac=1.0, random_state=3))  # row order must not matter
    digests = file_digests(a)
    assert len(digests) > 10 and digests == file_digests(b)


def test_rebuild_same_is_noop_and_different_raises(tmp_path):
    path = build(tmp_path)
    before = file_digests(path)
    assert build(tmp_path) == path and file_digests(path) == before
    with pytest.raises(ReleaseIntegrityError, match=r"demo-1\.0\.0 already exists with different content"):
        build(tmp_path, items=make_items(tag=" again"))
    assert file_digests(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["demo-1.0.0"]  # no temp folder left behind
    assert build(tmp_path, items=make_items(tag=" again"), version="1.0.1").name == "demo-1.0.1"


@pytest.mark.parametrize("victim", ["sound_pitch_comparison/test.parquet", "ATTRIBUTION.csv", "figures/gap_histogram.png"])
def test_tampered_file_is_named(tmp_path, victim):
    path = build(tmp_path)
    with open(path / victim, "ab") as f:
        f.write(b"x")
    with pytest.raises(ReleaseIntegrityError, match=victim.replace(".", r"\.")):
        load_release(path)
    assert load_release(path, verify=False).name == "demo"


def test_missing_and_unlisted_files_are_named(tmp_path):
    path = build(tmp_path)
    (path / "animal_sound_recognition" / "dev.csv").unlink()
    with pytest.raises(ReleaseIntegrityError, match=r"dev\.csv: listed in the manifest but missing"):
        load_release(path)
    path2 = build(tmp_path / "two")
    (path2 / "extra.txt").write_text("hello")
    with pytest.raises(ReleaseIntegrityError, match=r"extra\.txt: file is not listed"):
        load_release(path2)


def test_bare_name_resolves_under_releases_dir(tmp_path, monkeypatch):
    build(tmp_path)
    build(tmp_path, items=make_items(tag=" v2"), version="1.10.0")
    monkeypatch.setenv("AUDITORYBENCH_RELEASES", str(tmp_path))
    assert load_release("demo-1.0.0").version == "1.0.0"
    assert load_release("demo").version == "1.10.0"  # highest version, compared numerically
    with pytest.raises(InputError, match="release 'nope' not found"):
        load_release("nope")


def test_exclude_nc_drops_items_with_any_nc_clip(tmp_path):
    clips = make_clips(nc={1, 12})  # animal item 1, and pitch item 1 (clips 12, 13)
    full = load_release(build(tmp_path, clips=clips))
    assert full.license == "cc-by-nc"
    free = load_release(build(tmp_path, clips=clips, name="demo-commercial", exclude_nc=True))
    assert free.license == "cc-by"
    assert free.manifest["counts"]["excluded_nc_items"] == 2 and free.manifest["counts"]["items"] == 18
    kept = pd.concat([free.items(t, s) for t in free.tasks for s in free.splits(t)])
    assert not any("by-nc" in lic for lics in kept["licenses"] for lic in lics)
    attribution = pd.read_csv(free.path / "ATTRIBUTION.csv")
    assert "cc-by-nc" not in set(attribution["license_kind"]) and len(attribution) == 27


def test_audio_index_copied_verbatim_and_checksummed(tmp_path):
    index = tmp_path / "index"
    (index / "shard").mkdir(parents=True)
    (index / "embeddings.npy").write_bytes(bytes(range(256)))
    (index / "shard" / "meta.json").write_text('{"dim": 4}')
    rel = load_release(build(tmp_path / "out", audio_index_dir=index))
    assert rel.audio_index_dir == rel.path / "audio_index"
    assert (rel.audio_index_dir / "embeddings.npy").read_bytes() == bytes(range(256))
    assert "audio_index/shard/meta.json" in rel.manifest["files"]


def test_leaky_items_are_not_published(tmp_path):
    items = make_items()
    leak = items.index[(items.task == "sound_pitch_comparison") & (items.split == "test")][0]
    train_sentence = items[(items.task == "sound_pitch_comparison") & (items.split == "train")]["sentence"].iloc[0]
    items.loc[leak, "sentence"] = train_sentence
    with pytest.raises(ValidationError, match="refusing to publish.*overlap sentence"):
        build(tmp_path, items=items)
    assert list(tmp_path.iterdir()) == []


def test_missing_attribution_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no attribution row"):
        build(tmp_path, clips=make_clips(n=20))


def test_loads_with_hf_datasets(tmp_path):
    import datasets

    path = build(tmp_path / "rel")
    files = {s: str(path / "sound_pitch_comparison" / f"{s}.parquet") for s in ("train", "dev", "test")}
    ds = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf_cache"))
    assert {k: len(v) for k, v in ds.items()} == {"train": 6, "dev": 2, "test": 2}
    assert ds["train"].column_names == COLUMNS["items"]
    assert ds["train"][0]["clip_ids"][0].startswith("freesound/")


def test_release_stage_from_a_build_folder(tmp_path):
    """pipeline.stages.release reads a build folder's outputs and manifests (tested here beside the format it writes)."""
    from pipeline.stages.release import release_stage

    build = tmp_path / "build" / "democorpus"
    for stage in ("read", "filter", "pairs", "write", "index/audio_index", "measure"):
        (build / stage).mkdir(parents=True)
    items = make_items()
    items.to_parquet(build / "filter" / "items.parquet", index=False)
    make_clips().to_parquet(build / "read" / "clips.parquet", index=False)
    (build / "read" / "manifest.json").write_text(json.dumps({"stage": "read", "params": {"source": "freesound"},
                                                              "inputs": {"shard:a.tar": "ab"}, "counts": {"kept": 30, "rejected": {"truncated_tar": 2}}}))
    (build / "measure" / "manifest.json").write_text(json.dumps({"stage": "measure", "params": {"estimator": "pyin"}, "counts": {"kept": 30}}))
    (build / "filter" / "manifest.json").write_text(json.dumps({"stage": "filter", "counts": {"kept": 20, "rejected": {"disagree": 4}}}))
    pd.DataFrame({"task": ["sound_pitch_comparison"] * 3, "basis": ["f0"] * 3, "value_a": [440.0, 300.0, 100.0],
                  "value_b": [220.0, 310.0, 400.0], "label": ["higher", "lower", "lower"]}).to_parquet(build / "pairs" / "pairs.parquet")
    pd.DataFrame({"answer": ["higher", "lower", "lower"], "llm_guess": ["higher", "higher", ""]}).to_parquet(build / "write" / "sentences.parquet")
    (build / "index" / "audio_index" / "vectors.bin").write_bytes(b"\x00\x01")
    wiki_dir = tmp_path / "build" / "wiki"
    wiki_dir.mkdir()
    s = "A piccolo sounds [MASK] than a tuba."
    pd.DataFrame([Item(id=item_id("sound_pitch_comparison", s, "higher", ["wiki:Piccolo"]), task="sound_pitch_comparison",
                       split="wiki", sentence=s, answer="higher", spans=["piccolo", "tuba"], span1="piccolo", span2="tuba",
                       group_id="wiki:piccolo|tuba", basis="wiki-range", source="wiki").model_dump()]).to_parquet(wiki_dir / "items.parquet")
    params = {"version": "2.0.0", "exclude_nc": False, "cards_dir": str(tmp_path / "cards")}

    path = release_stage(build, tmp_path / "releases", "democorpus", params, wiki_dir, quiet=True)
    rel = load_release(path)
    assert path.name == "democorpus-2.0.0" and rel.splits("sound_pitch_comparison") == ["train", "dev", "test", "wiki"]
    assert rel.manifest["provenance"]["estimator"] == "pyin" and rel.manifest["provenance"]["corpus"]["id"] == "democorpus"
    assert rel.manifest["stages"]["read"]["counts"]["rejected"] == {"truncated_tar": 2}
    assert (rel.audio_index_dir / "vectors.bin").read_bytes() == b"\x00\x01"
    assert {"figures/agreement.png", "figures/gap_histogram.png"} <= set(rel.manifest["files"])
    write_card(path, tmp_path / "cards")
    card = (tmp_path / "cards" / "democorpus-2.0.0.md").read_text()
    assert card == (path / "README.md").read_text() and "disagree: 4" in card and "truncated_tar: 2" in card
    assert "'agreement': 0.5" in card.replace('"', "'")  # one of the two guesses agrees
    before = file_digests(path)
    assert release_stage(build, tmp_path / "releases", "democorpus", params, wiki_dir, quiet=True) == path
    assert file_digests(path) == before
