"""Write tiny corpora in the real LAION-Audio-630K format for tests: tar shards with prefixed member names,
`<id>.flac` + `<id>.json` pairs, a `sizes.json` per folder and a `freesound_meta.csv`."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf

PREFIX = "scratch/freesound_new/train"
LICENSES = {
    "cc0": "http://creativecommons.org/publicdomain/zero/1.0/",
    "by": "https://creativecommons.org/licenses/by/4.0/",
    "by-nc": "https://creativecommons.org/licenses/by-nc/3.0/",
    "sampling+": "http://creativecommons.org/licenses/sampling+/1.0/",
}


def sine_flac(f0_hz: float = 440.0, seconds: float = 0.5, sr: int = 48000, amp: float = 0.3) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (amp * np.sin(2 * np.pi * f0_hz * t)).astype("float32"), sr, format="FLAC")
    return buf.getvalue()


def caption_json(clip_id: int, title: str, description: str, tags: list[str]) -> bytes:
    obj = {"text": [f"{title}.", description] if description else [f"{title}."], "tag": tags,
           "original_data": {"tags": tags, "description": description, "username": f"user{clip_id % 7}",
                             "download_url": f"https://freesound.org/people/u/sounds/{clip_id}/download/",
                             "title": title, "id": clip_id}}
    return json.dumps(obj).encode("utf-8")


def add_member(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tf.addfile(info, io.BytesIO(data))


def write_shard(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members:
            add_member(tf, name, data)
    return path


def clip_members(clip_id: int, f0_hz: float = 440.0, title: str = "violin a4", description: str = "bowed note", tags=("violin",)) -> list[tuple[str, bytes]]:
    return [(f"{PREFIX}/{clip_id}.flac", sine_flac(f0_hz)), (f"{PREFIX}/{clip_id}.json", caption_json(clip_id, title, description, list(tags)))]


def write_meta(path: Path, rows: list[tuple[int, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["audio_filename", "caption1", "caption2", "freesound_id", "username", "freesound_url", "license"])
        for clip_id, lic in rows:
            w.writerow([f"{clip_id}.flac", "c1", "c2", clip_id, f"user{clip_id % 7}", f"https://freesound.org/s/{clip_id}/", lic])
    return path


def write_sizes(folder: Path) -> None:
    sizes = {}
    for tar in sorted(folder.glob("*.tar")):
        with tarfile.open(tar) as tf:
            sizes[tar.name] = sum(1 for m in tf.getmembers() if m.name.endswith(".json"))
    (folder / "sizes.json").write_text(json.dumps(sizes))
