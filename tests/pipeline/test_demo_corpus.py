"""The demo corpus: real LAION Freesound format, deterministic, skip on rerun, sane ground truth, every bad member."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from benchmark.errors import ConfigError
from benchmark.schema import license_kind
from pipeline.demo.corpus import GROUND_TRUTH_COLUMNS, META_COLUMNS, build_bench_shards, build_demo_corpus
from pipeline.demo.sounds import GLIDE_SPREAD_CENTS, PITCH_KINDS, render_source, source_spec

SEED, N_CLIPS, N_SHARDS = 11, 40, 3
MEMBER_RE = re.compile(r"^scratch/freesound_new/(train|test)/(\d{5,6})\.(flac|json)$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    out = build_demo_corpus(root, seed=SEED, n_clips=N_CLIPS, n_shards=N_SHARDS, quiet=True)
    assert out == root / "freesound"
    return root


@pytest.fixture(scope="module")
def members(corpus) -> dict[tuple[str, str], bytes]:
    """(shard relative to root, member name) -> bytes, for every member of every shard."""
    out = {}
    for tar_path in sorted((corpus / "freesound").glob("*/*.tar")):
        with tarfile.open(tar_path) as tar:
            for m in tar.getmembers():
                out[(tar_path.relative_to(corpus).as_posix(), m.name)] = tar.extractfile(m).read()
    return out


@pytest.fixture(scope="module")
def truth(corpus) -> pd.DataFrame:
    return pd.read_csv(corpus / "ground_truth.csv", keep_default_na=False,
                       na_values={c: ["nan"] for c in ("f0_hz", "f0_median_hz", "f0_spread_cents", "gain_db", "centroid_hz",
                                                       "duration_s")})


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_shards_have_the_real_layout_and_member_names(corpus):
    folders = sorted(p.relative_to(corpus).as_posix() for p in (corpus / "freesound").glob("*/*.tar"))
    assert folders == ["freesound/test/0.tar", "freesound/train_0/0.tar", "freesound/train_0/1.tar"]
    for tar_path in (corpus / "freesound").glob("*/*.tar"):
        split = "test" if tar_path.parent.name == "test" else "train"
        with tarfile.open(tar_path) as tar:
            infos = tar.getmembers()
        stems = set()
        for ti in infos:
            m = MEMBER_RE.match(ti.name)
            assert m, ti.name
            assert m.group(1) == split
            assert (ti.mtime, ti.uid, ti.gid) == (0, 0, 0)
            stems.add(m.group(2))
        sizes = json.loads((tar_path.parent / "sizes.json").read_text())
        assert sizes[tar_path.name] == len(stems)
    total = sum(sum(json.loads(p.read_text()).values()) for p in (corpus / "freesound").glob("*/sizes.json"))
    assert total == N_CLIPS + 8  # the good clips plus one of each bad member


def test_caption_json_has_the_laion_structure(members, truth):
    good = truth[truth.bad == ""]
    for _, row in good.iterrows():
        data = members[(row.shard, row.member.replace(".flac", ".json"))]
        obj = json.loads(data)
        assert list(obj) == ["text", "tag", "original_data"]
        orig = obj["original_data"]
        assert set(orig) == {"tags", "description", "username", "download_url", "title", "id"}
        assert orig["id"] == row.freesound_id
        assert obj["text"][0] == orig["title"] + "."
        assert 1 <= len(obj["text"]) <= 2
        assert "license" not in data.decode() and "duration" not in data.decode()
    langs = set(good.lang)
    assert "en" in langs and langs & {"es", "de", "fr"}


def test_captions_name_their_source_and_look_like_freesound(members, truth):
    titles, descriptions = [], []
    for _, row in truth[truth.bad == ""].iterrows():
        orig = json.loads(members[(row.shard, row.member.replace(".flac", ".json"))])["original_data"]
        titles.append(orig["title"])
        descriptions.append(orig["description"])
        text = " ".join([orig["title"], orig["description"], *orig["tags"]]).lower().replace("_", " ").replace("-", " ")
        if row.lang == "en":  # the English source word (the stem of its last word) appears somewhere
            assert row.source_name.split()[-1][:4] in text, (row.source_name, text)
    assert any(re.search(r"\.(wav|aif|mp3)$", t) for t in titles)
    assert any(d == "" for d in descriptions)
    assert any(re.search(r"zoom|tascam|iphone|rode|sony|roland|sennheiser", d, re.I) for d in descriptions)


def test_meta_csv_columns_and_licence_mix(corpus, truth):
    with open(corpus / "freesound_meta.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == META_COLUMNS
        rows = list(reader)
    ids = [r["freesound_id"] for r in rows]
    assert len(ids) == len(set(ids)) == truth.freesound_id.nunique()
    for r in rows:
        assert r["audio_filename"] == f"{r['freesound_id']}.flac"
        assert r["freesound_url"] == f"https://freesound.org/people/{r['username']}/sounds/{r['freesound_id']}/"
    kinds = pd.Series([license_kind(r["license"]) for r in rows]).value_counts(normalize=True)
    assert 0.4 <= kinds["cc0"] <= 0.65
    assert 0.25 <= kinds["cc-by"] <= 0.45
    assert 0.05 <= kinds["cc-by-nc"] <= 0.2
    assert kinds["sampling+"] > 0
    lic = [r["license"] for r in rows]
    assert sum(license_kind(x) == "non-cc" for x in lic) == 2 and lic.count("") == 1
    assert any("gpl" in x.lower() for x in lic)


def test_two_builds_are_byte_identical(corpus, tmp_path):
    build_demo_corpus(tmp_path, seed=SEED, n_clips=N_CLIPS, n_shards=N_SHARDS, quiet=True)
    assert _digests(tmp_path) == _digests(corpus)


def test_rerun_with_same_params_does_nothing(corpus):
    def outputs() -> dict:  # the manifest itself may be touched (for make), but not rewritten
        return {p: p.stat().st_mtime_ns for p in corpus.rglob("*") if p.is_file() and p.name != "manifest.json"}

    before, manifest_text = outputs(), (corpus / "manifest.json").read_text()
    out = build_demo_corpus(corpus, seed=SEED, n_clips=N_CLIPS, n_shards=N_SHARDS, quiet=True)
    assert out == corpus / "freesound"
    assert outputs() == before
    assert (corpus / "manifest.json").read_text() == manifest_text
    manifest = json.loads(manifest_text)
    assert manifest["stage"] == "corpus" and manifest["params"]["seed"] == SEED
    assert "freesound/test/0.tar" in manifest["outputs"] and "ground_truth.csv" in manifest["outputs"]


def test_ground_truth_is_sane(truth, members):
    assert tuple(truth.columns) == GROUND_TRUTH_COLUMNS
    assert truth.clip_id.str.fullmatch(r"freesound/\d{5,6}").all()
    dup = truth[truth.clip_id.duplicated(keep=False)]
    assert set(dup.bad) == {"", "duplicate_id"} and len(dup) == 2
    good = truth[truth.bad == ""]
    assert set(good.category) <= {"music", "object", "animal", "environment"} and good.category.nunique() == 4
    for _, row in good.iterrows():
        spec = source_spec(row.source_name)
        assert spec.category == row.category
        if row.pitched:
            lo, hi = spec.f0_range_hz
            assert lo <= row.f0_hz <= hi, (row.source_name, row.f0_hz)
        else:
            assert math.isnan(row.f0_hz)
        assert 1.5 <= row.duration_s <= 5.0
        assert -6.7 <= row.gain_db <= 6.01  # ±6 dB per clip (a peak limiter may take a little more off)
        audio, sr = sf.read(io.BytesIO(members[(row.shard, row.member)]), dtype="float32")
        assert sr == row.sample_rate == 48000
        assert (audio.ndim == 1 and row.channels == 1) or (audio.ndim == 2 and audio.shape[1] == row.channels)
        assert abs(len(audio) / sr - row.duration_s) < 1e-3
        rms_db = 20 * np.log10(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
        assert abs(rms_db - row.level_dbfs) < 0.2


def _autocorr_f0(x: np.ndarray, sr: int, fmin: float, fmax: float) -> float:
    """f0 (Hz) from the autocorrelation peak of a mono frame, refined by parabolic interpolation."""
    x = x - x.mean()
    n = 1 << int(np.ceil(np.log2(2 * len(x))))
    spec = np.fft.rfft(x, n)
    ac = np.fft.irfft(spec * np.conj(spec), n)[: len(x)]
    lo, hi = int(sr / fmax), int(sr / fmin)
    k = lo + int(np.argmax(ac[lo:hi]))
    a, b, c = ac[k - 1], ac[k], ac[k + 1]
    return sr / (k + 0.5 * (a - c) / (a - 2 * b + c))


def test_f0_of_steady_tones_matches_the_audio(truth, members):
    steady = truth[(truth.bad == "") & (truth.category == "music") & (truth.channels == 1)
                   & (truth.vibrato == False) & (truth.weak_fundamental == False)  # noqa: E712
                   & (truth.source_name.isin(["clarinet", "oboe", "flute", "trumpet", "saxophone", "violin", "cello",
                                              "bassoon", "trombone", "tuba", "french horn", "double bass", "viola", "organ",
                                                  "accordion", "harmonica", "bagpipe", "didgeridoo", "synthesizer"]))]
    assert len(steady) >= 3
    for _, row in steady.head(4).iterrows():
        audio, sr = sf.read(io.BytesIO(members[(row.shard, row.member)]), dtype="float64")
        mid = len(audio) // 2
        frame = audio[mid - int(0.15 * sr): mid + int(0.15 * sr)]
        est = _autocorr_f0(frame, sr, fmin=0.8 * row.f0_hz, fmax=1.25 * row.f0_hz)
        assert abs(est / row.f0_hz - 1) < 0.02, (row.source_name, row.f0_hz, est)


def test_pitch_kind_says_whether_one_f0_is_defined(truth):
    good = truth[truth.bad == ""]
    assert set(good.pitch_kind) <= set(PITCH_KINDS) and {"steady", "none"} <= set(good.pitch_kind)
    assert (good.pitched == good.pitch_kind.isin(["steady", "vibrato"])).all()
    for _, row in good.iterrows():
        spec = source_spec(row.source_name)
        if row.pitch_kind == "none":
            assert not spec.pitched and math.isnan(row.f0_median_hz) and math.isnan(row.f0_spread_cents)
        elif row.pitch_kind == "glide":  # a moving pitch: no single f0, its contour's median kept apart
            lo, hi = spec.f0_range_hz
            assert math.isnan(row.f0_hz) and row.f0_spread_cents > GLIDE_SPREAD_CENTS
            assert lo / 1.3 <= row.f0_median_hz <= hi * 1.3
        else:
            assert row.f0_median_hz == row.f0_hz and 0 <= row.f0_spread_cents <= GLIDE_SPREAD_CENTS
            assert row.pitch_kind == ("vibrato" if row.vibrato else "steady")


@pytest.mark.parametrize("name", ["siren", "cat", "horse", "bird"])
def test_sweeping_calls_are_glides(name):
    clip = render_source(source_spec(name), np.random.default_rng(1), 16000)
    assert clip.pitch_kind == "glide" and math.isnan(clip.f0_hz) and clip.f0_spread_cents > GLIDE_SPREAD_CENTS


@pytest.mark.parametrize("name", ["frog", "knock", "door", "engine"])
def test_periodic_non_music_sources_repeat_at_their_f0(name):
    # frog: a train of resonant pulses at f0 per second; knock and door: a damped resonance at f0; engine: a hum
    sr = 16000
    clip = render_source(source_spec(name), np.random.default_rng(2), sr)
    assert clip.pitch_kind == "steady" and not math.isnan(clip.f0_hz)
    x = clip.audio.astype(np.float64)
    env = np.convolve(x**2, np.ones(800) / 800, mode="same")
    loud = int(np.argmax(env))  # the frame around the loudest moment
    period = int(round(3 * sr / clip.f0_hz))
    frame = x[max(0, loud - period): loud + period]
    est = _autocorr_f0(frame, sr, fmin=0.8 * clip.f0_hz, fmax=1.25 * clip.f0_hz)
    assert abs(est / clip.f0_hz - 1) < 0.03, (name, clip.f0_hz, est)


def test_every_bad_member_is_present(truth, members):
    bad = truth[truth.bad != ""].set_index("bad")
    assert sorted(bad.index) == sorted(["corrupt_flac", "empty_caption", "silent", "empty_audio", "duplicate_id",
                                        "duplicate_audio", "bad_json", "missing_json"])

    def get(kind: str, ext: str) -> bytes | None:
        row = bad.loc[kind]
        return members.get((row.shard, row.member.replace(".flac", ext)))

    corrupt = get("corrupt_flac", ".flac")
    assert corrupt[:4] == b"fLaC"
    assert sf.info(io.BytesIO(corrupt)).samplerate == 48000  # the header is valid ...
    with pytest.raises(sf.LibsndfileError):  # ... the frames are not
        sf.read(io.BytesIO(corrupt))
    assert get("empty_audio", ".flac") == b""
    silent, _ = sf.read(io.BytesIO(get("silent", ".flac")))
    assert len(silent) > 0 and not np.any(silent)
    empty = json.loads(get("empty_caption", ".json"))
    assert empty["text"] == [] and empty["original_data"]["title"] == "" and empty["original_data"]["description"] == ""
    with pytest.raises(json.JSONDecodeError):
        json.loads(get("bad_json", ".json"))
    assert get("missing_json", ".json") is None and get("missing_json", ".flac")
    # the same id in two shards (the second copy is the bad one), and the same audio under two ids
    dup = truth[truth.clip_id == bad.loc["duplicate_id"].clip_id]
    assert dup.shard.nunique() == 2
    orig = truth[(truth.clip_id == bad.loc["duplicate_audio"].same_audio_as) & (truth.bad == "")].iloc[0]
    assert orig.clip_id != bad.loc["duplicate_audio"].clip_id
    assert get("duplicate_audio", ".flac") == members[(orig.shard, orig.member)]


def test_bench_shards_reach_the_requested_size(tmp_path):
    out = build_bench_shards(tmp_path, n_shards=2, mb_per_shard=1.5, seed=3)
    assert out == tmp_path / "freesound"
    tars = sorted(out.glob("train_0/*.tar"))
    assert [t.name for t in tars] == ["0.tar", "1.tar"]
    sizes = json.loads((out / "train_0" / "sizes.json").read_text())
    ids = []
    for t in tars:
        assert t.stat().st_size >= 1.5 * (1 << 20)
        with tarfile.open(t) as tar:
            names = tar.getnames()
        assert all(MEMBER_RE.match(n) for n in names)
        assert sizes[t.name] == len(names) // 2
        ids += [MEMBER_RE.match(n).group(2) for n in names if n.endswith(".flac")]
    assert len(ids) == len(set(ids))
    with open(tmp_path / "freesound_meta.csv", newline="", encoding="utf-8") as f:
        assert {r["freesound_id"] for r in csv.DictReader(f)} == set(ids)


@pytest.mark.parametrize("kwargs", [dict(n_clips=40, n_shards=1), dict(n_clips=5, n_shards=2)])
def test_bad_params_raise_config_error(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        build_demo_corpus(tmp_path, seed=0, quiet=True, **kwargs)
