"""The reader on shards in the real LAION format, with every kind of bad member."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmark.errors import InputError
from pipeline.reader import read_clip_bytes
from pipeline.stages.read import read_stage
from tests.laion_format import (
    LICENSES,
    PREFIX,
    caption_json,
    clip_members,
    sine_flac,
    write_meta,
    write_shard,
    write_sizes,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "laion" / "freesound"
    good = [*clip_members(100001, 220.0, "Violin_A3.wav", "bowed violin note", ("violin", "strings")),
            *clip_members(100002, 880.0, "Whistle", "", ("whistle",))]
    bad = [
        (f"{PREFIX}/100003.flac", sine_flac()),  # audio without its JSON
        (f"{PREFIX}/100004.flac", sine_flac()), (f"{PREFIX}/100004.json", b"\xff\xfe not utf-8 \xff"),
        (f"{PREFIX}/100005.flac", sine_flac()), (f"{PREFIX}/100005.json", b'{"text": [, broken'),
        (f"{PREFIX}/100006.flac", sine_flac()), (f"{PREFIX}/100006.json", json.dumps({"text": [], "tag": [], "original_data": {"title": "", "description": ""}}).encode()),
        (f"{PREFIX}/100007.flac", b""), (f"{PREFIX}/100007.json", caption_json(100007, "zero bytes", "", [])),
        ("../../escape/100008.flac", sine_flac()), ("../../escape/100008.json", caption_json(100008, "escape", "", [])),
        (f"{PREFIX}/100009.flac", b"NOTFLAC" * 10), (f"{PREFIX}/100009.json", caption_json(100009, "bad header", "", [])),
    ]
    write_shard(root / "train_0" / "0.tar", good + bad)
    write_shard(root / "train_0" / "1.tar", clip_members(100001, 300.0, "duplicate id", "same id again"))  # duplicated id
    # a shard truncated mid-member: the clip before the damage is kept
    full = write_shard(root / "train_0" / "2.tar", [*clip_members(100010, 330.0, "Cello C3", "cello"), *clip_members(100011, 500.0, "Flute", "flute")])
    write_sizes(root / "train_0")
    with tarfile.open(full) as tf:
        cut = tf.getmember(f"{PREFIX}/100011.flac").offset_data + 100
    full.write_bytes(full.read_bytes()[:cut])
    (root / "test").mkdir(parents=True)
    (root / "test" / "0.tar").write_bytes(b"this is not a tar file at all" * 100)  # wholly unreadable
    write_meta(root.parent / "freesound_meta.csv", [(100001, LICENSES["cc0"]), (100002, "GNU GPL v3"), (100010, LICENSES["by-nc"])])
    return root


def test_reads_real_format_and_rejects_every_bad_member(corpus: Path, tmp_path: Path, capsys) -> None:
    manifest = read_stage(corpus, tmp_path / "build", {}, quiet=True)
    clips = pd.read_parquet(tmp_path / "build" / "read" / "clips.parquet")
    rejects = pd.read_parquet(tmp_path / "build" / "read" / "rejects.parquet")
    assert sorted(clips["clip_id"]) == ["freesound/100001", "freesound/100002", "freesound/100010"]
    reasons = set(rejects["reason"])
    assert {"missing_pair", "json_not_utf8", "json_invalid", "missing_captions", "empty_audio", "unsafe_member_name",
            "unreadable_audio_header", "duplicate_id", "truncated_tar", "unreadable_shard"} <= reasons
    assert manifest["counts"]["kept"] == 3
    assert manifest["counts"]["rejected"]["duplicate_id"] == 1
    assert "test/0.tar" in capsys.readouterr().err  # one clear error line naming the unreadable shard

    row = clips.set_index("clip_id").loc["freesound/100001"]
    assert row["member"] == f"{PREFIX}/100001.flac" and row["shard"] == "train_0/0.tar"
    assert row["license_kind"] == "cc0" and not row["license_flag"]
    assert row["sample_rate"] == 48000 and row["channels"] == 1 and abs(row["duration_s"] - 0.5) < 1e-6
    assert list(row["captions"]) == ["Violin_A3.wav.", "bowed violin note"] and list(row["tags"]) == ["violin", "strings"]
    gpl = clips.set_index("clip_id").loc["freesound/100002"]
    assert gpl["license"] == "GNU GPL v3" and gpl["license_kind"] == "non-cc" and gpl["license_flag"]  # kept as given, flagged
    # the offset lets a worker seek straight to the member's bytes, and the hash is of those bytes
    data = read_clip_bytes(corpus, row["shard"], row["member"], int(row["offset"]), int(row["size"]))
    assert data == sine_flac(220.0) and hashlib.sha256(data).hexdigest() == row["audio_sha256"]


def test_rerun_does_nothing_and_output_is_deterministic(corpus: Path, tmp_path: Path) -> None:
    read_stage(corpus, tmp_path / "a", {}, quiet=True)
    before = (tmp_path / "a" / "read" / "clips.parquet").read_bytes()
    again = read_stage(corpus, tmp_path / "a", {}, quiet=True)
    assert "run" not in again and again["counts"]["shards"] == 4  # the previous manifest: nothing recomputed
    read_stage(corpus, tmp_path / "b", {}, quiet=True)
    assert (tmp_path / "b" / "read" / "clips.parquet").read_bytes() == before


def test_loose_folder_reads_the_same(tmp_path: Path) -> None:
    root = tmp_path / "loose"
    root.mkdir()
    for name, data in clip_members(200001, 440.0, "Kettle whistle", "boiling"):
        (root / Path(name).name).write_bytes(data)
    (root / "200002.json").write_bytes(caption_json(200002, "orphan", "", []))
    read_stage(root, tmp_path / "build", {}, quiet=True)
    clips = pd.read_parquet(tmp_path / "build" / "read" / "clips.parquet")
    assert list(clips["clip_id"]) == ["loose/200001"] and clips["shard"].iloc[0] == ""
    assert read_clip_bytes(root, "", clips["member"].iloc[0], 0, int(clips["size"].iloc[0])) == sine_flac(440.0)
    assert list(pd.read_parquet(tmp_path / "build" / "read" / "rejects.parquet")["reason"]) == ["missing_pair"]


def test_missing_corpus_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nowhere: corpus folder not found"):
        read_stage(tmp_path / "nowhere", tmp_path / "build", {}, quiet=True)


def test_killed_read_resumes_with_only_the_missing_shards(tmp_path: Path) -> None:
    root = tmp_path / "many" / "freesound"
    n_shards = 24
    for s in range(n_shards):
        members = []
        for k in range(12):
            members += clip_members(300000 + 100 * s + k, 200.0 + 10 * k, f"tone {k}", "a tone")
        write_shard(root / "train_0" / f"{s:02d}.tar", members)
    script = f"from pipeline.stages.read import read_stage; read_stage({str(root)!r}, {str(tmp_path / 'killed')!r}, {{}}, quiet=True)"
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    db = tmp_path / "killed" / "read" / "progress.sqlite"
    deadline = time.time() + 60
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                done = sqlite3.connect(db).execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done >= 2:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.002)
    proc.wait()
    done = sqlite3.connect(db).execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert 2 <= done < n_shards, "the read finished before it could be killed"
    assert not (tmp_path / "killed" / "read" / "manifest.json").exists()
    resumed = read_stage(root, tmp_path / "killed", {}, quiet=True)
    assert resumed["run"]["shards_computed"] == n_shards - done
    read_stage(root, tmp_path / "clean", {}, quiet=True)
    for name in ("clips.parquet", "rejects.parquet"):
        a = (tmp_path / "killed" / "read" / name).read_bytes()
        b = (tmp_path / "clean" / "read" / name).read_bytes()
        assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest()


def test_corpus_name_is_the_corpus_folder() -> None:
    from pipeline.reader import corpus_name

    assert corpus_name("demo_corpus/freesound") == "demo"
    assert corpus_name("/data/laion630k/freesound/") == "freesound"
    assert corpus_name("/data/laion630k/freesound/train_*/*.tar") == "freesound"
    assert corpus_name("/data/laion630k/audiocaps/*/*.tar") == "audiocaps"
