"""Read LAION-Audio-630K: webdataset tar shards (or an extracted folder) of `<key>.flac` + `<key>.json`, plus the
companion `*_meta.csv` (licences).

Streams: at most the current tar member is held in memory; audio stays where it is and the clip table records
shard, member, byte offset and size so a worker can seek straight to it (`read_clip_bytes`). Only audio headers are
checked here (decoding problems are the measure stage's to quarantine). Bad input becomes reject rows, never a crash.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from benchmark.errors import InputError
from benchmark.hashing import sha256_bytes
from benchmark.schema import license_kind

__all__ = ["read_clip_bytes", "find_shards", "find_meta_csv", "read_meta", "read_shard", "read_shard_job", "read_loose", "read_inputs", "corpus_name",
           "dedupe_clips", "SHARD_ERRORS"]

AUDIO_EXTS = (".flac", ".wav", ".mp3", ".ogg")
SHARD_ERRORS = ("unreadable_shard", "truncated_tar")  # a whole shard (or its tail) lost: one error line each


def read_clip_bytes(corpus_root: str | Path, shard: str, member: str, offset: int, size: int) -> bytes:
    """The raw bytes of one clip's audio file: a seek into its tar shard, or the loose file itself."""
    root = Path(corpus_root)
    if shard:
        with open(root / shard, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise InputError(f"{root / shard}: member {member} truncated (wanted {size} bytes at {offset}, got {len(data)})")
        return data
    return (root / member).read_bytes()


def corpus_name(corpus: str | Path) -> str:
    """The corpus's name: `demo` for the embedded demo corpus, else the corpus folder's name (glob parts stripped).
    Build folders and releases add a fingerprint of the shard list to it (pipeline.contract.corpus_id)."""
    s = str(corpus)
    glob_at = min((s.index(ch) for ch in "*?[" if ch in s), default=-1)
    if glob_at >= 0:  # a glob: the deepest folder before the first wildcard ("/data/freesound/train_*/*.tar" → freesound)
        s = s[:glob_at] if s[:glob_at].endswith("/") else str(Path(s[:glob_at]).parent)
    p = Path(s.rstrip("/"))
    if p.parent.name == "demo_corpus":
        return "demo"
    return p.name or "corpus"


def find_shards(corpus: str | Path) -> tuple[Path, list[Path]]:
    """(corpus root, sorted tar shards) for a folder or a glob; the root is the folder the shard paths are relative to."""
    s = str(corpus)
    if any(ch in s for ch in "*?["):
        shards = sorted(Path(p) for p in glob.glob(s, recursive=True) if p.endswith(".tar"))
        root = Path(s.split("*")[0].split("?")[0].split("[")[0])
        root = root if root.is_dir() else root.parent
    else:
        root = Path(s)
        if root.is_file() and root.suffix == ".tar":
            return root.parent, [root]
        if not root.is_dir():
            raise InputError(f"{root}: corpus folder not found")
        shards = sorted(root.rglob("*.tar"))
    return root, shards


def find_meta_csv(root: Path, meta: str | Path | None = None) -> Path | None:
    """An explicit meta CSV, else a `*_meta.csv` in the corpus folder or its parent."""
    if meta:
        p = Path(meta)
        if not p.exists():
            raise InputError(f"{p}: meta CSV not found")
        return p
    for folder in (root, root.parent):
        found = sorted(folder.glob("*_meta.csv"))
        if found:
            return found[0]
    return None


def read_meta(path: Path | None) -> dict[str, dict]:
    """Licence, author and url per clip id (as a string) from a LAION `*_meta.csv`."""
    if path is None:
        return {}
    out: dict[str, dict] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                key = row.get("freesound_id") or row.get("id") or Path(row.get("audio_filename", "")).stem
                if key:
                    out[str(key)] = row
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: cannot read meta CSV ({e})") from e
    return out


@dataclass
class _Half:
    audio: dict | None = None
    meta: dict | None = None
    member: str = ""


def _unsafe(name: str) -> bool:
    norm = posixpath.normpath(name)
    return name.startswith("/") or norm.startswith("..") or "/../" in f"/{name}/"


def _parse_json(data: bytes, member: str) -> tuple[dict | None, str, str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, "json_not_utf8", f"{member}: byte {e.start}"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, "json_invalid", f"{member}: {e.msg} at line {e.lineno}"
    if not isinstance(obj, dict):
        return None, "json_invalid", f"{member}: top level is not an object"
    return obj, "", ""


def _audio_header(data: bytes, member: str) -> tuple[dict | None, str, str]:
    if not data:
        return None, "empty_audio", f"{member}: zero bytes"
    try:
        info = sf.info(io.BytesIO(data))
    except (RuntimeError, sf.LibsndfileError) as e:  # type: ignore[attr-defined]
        return None, "unreadable_audio_header", f"{member}: {str(e).splitlines()[0][:200]}"
    duration = float(info.frames) / info.samplerate if info.samplerate else 0.0
    return {"sample_rate": int(info.samplerate), "channels": int(info.channels), "duration_s": duration,
            "audio_sha256": sha256_bytes(data), "size": len(data)}, "", ""


def _clip_row(source: str, key_id: str, shard: str, half: _Half, offset: int, meta_rows: dict) -> tuple[dict | None, str, str]:
    j = half.meta or {}
    orig = j.get("original_data") if isinstance(j.get("original_data"), dict) else {}
    text = j.get("text") or []
    if isinstance(text, str):
        text = [text]
    captions = [str(t).strip() for t in text if str(t).strip()]
    title = str(orig.get("title") or "").strip()
    description = str(orig.get("description") or "").strip()
    if not captions and not title and not description:
        return None, "missing_captions", half.member
    tags = [str(t) for t in (j.get("tag") or orig.get("tags") or []) if str(t).strip()]
    m = meta_rows.get(key_id) or meta_rows.get(str(orig.get("id", ""))) or {}
    lic = m.get("license", "")
    kind = license_kind(lic)
    row = {
        "clip_id": f"{source}/{key_id}",
        "source": source,
        "shard": shard,
        "member": half.member,
        "offset": int(offset),
        "captions": captions,
        "tags": tags,
        "title": title,
        "description": description,
        "license": lic,
        "license_kind": kind,
        "license_flag": kind in ("non-cc", "unknown"),
        "author": m.get("username") or str(orig.get("username") or ""),
        "url": m.get("freesound_url") or str(orig.get("download_url") or ""),
        **(half.audio or {}),
    }
    return row, "", ""


def read_shard(root: Path, shard: Path, source: str, meta_rows: dict, quiet: bool = True) -> tuple[list[dict], list[dict]]:
    """Stream one tar shard → (clip rows, reject rows). A truncated or corrupt shard keeps what was read before the damage."""
    rel = str(shard.relative_to(root)) if shard.is_relative_to(root) else str(shard)
    clips: list[dict] = []
    rejects: list[dict] = []
    halves: dict[str, _Half] = {}
    offsets: dict[str, int] = {}

    def reject(key: str, reason: str, detail: str = "") -> None:
        rejects.append({"stage": "read", "key": key, "reason": reason, "detail": detail})

    n_members = 0
    try:
        with tarfile.open(shard, mode="r|") as tf:
            for info in tqdm(tf, desc=f"read {rel}", unit="member", disable=quiet, leave=False):
                if not info.isfile():
                    continue
                n_members += 1
                name = info.name
                if _unsafe(name):
                    reject(f"{rel}:{name}", "unsafe_member_name", "member name escapes the output folder")
                    continue
                stem, ext = posixpath.splitext(name)
                ext = ext.lower()
                if ext not in AUDIO_EXTS and ext != ".json":
                    continue
                f = tf.extractfile(info)
                data = f.read() if f else b""
                half = halves.setdefault(stem, _Half())
                if ext == ".json":
                    obj, reason, detail = _parse_json(data, name)
                    if obj is None:
                        reject(f"{rel}:{name}", reason, detail)
                        half.meta = {"__bad__": True}
                        continue
                    half.meta = obj
                else:
                    header, reason, detail = _audio_header(data, name)
                    if header is None:
                        reject(f"{rel}:{name}", reason, detail)
                        half.audio = {"__bad__": True}
                        half.member = name
                        continue
                    half.audio, half.member = header, name
                    offsets[stem] = info.offset_data
                del data
                if half.audio is not None and half.meta is not None:
                    halves.pop(stem)
                    if "__bad__" in half.audio or "__bad__" in half.meta:
                        continue
                    row, reason, detail = _clip_row(source, posixpath.basename(stem), rel, half, offsets.pop(stem), meta_rows)
                    if row is None:
                        reject(f"{rel}:{name}", reason, detail)
                    else:
                        clips.append(row)
    except (tarfile.TarError, EOFError, OSError) as e:
        reason = "unreadable_shard" if n_members == 0 else "truncated_tar"
        msg = f"{shard}: {'not a readable tar' if n_members == 0 else f'damaged after {n_members} members'} ({e})"
        reject(rel, reason, msg)  # the stage prints it (this may run in a worker process)
    for stem, half in sorted(halves.items()):
        if half.audio is not None and "__bad__" in half.audio or half.meta is not None and "__bad__" in half.meta:
            continue
        reject(f"{rel}:{stem}", "missing_pair", "audio without caption JSON" if half.audio else "caption JSON without audio")
    return clips, rejects


def read_shard_job(shard: str, root: str, source: str, meta_rows: dict) -> dict:
    """One shard → {"clips": rows, "rejects": rows}: a pure function of its arguments (any worker process)."""
    clips, rejects = read_shard(Path(root), Path(shard), source, meta_rows)
    return {"clips": clips, "rejects": rejects}


def read_loose(root: Path, source: str, meta_rows: dict) -> tuple[list[dict], list[dict]]:
    """An extracted folder of `<id>.flac` + `<id>.json` files."""
    clips, rejects = [], []
    stems: dict[str, dict[str, Path]] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and (p.suffix.lower() in AUDIO_EXTS or p.suffix.lower() == ".json") and not p.name.endswith("_meta.json"):
            stems.setdefault(str(p.with_suffix("").relative_to(root)), {})[p.suffix.lower()] = p
    for stem, files in sorted(stems.items()):
        audio_path = next((files[e] for e in AUDIO_EXTS if e in files), None)
        json_path = files.get(".json")
        if audio_path is None or json_path is None:
            rejects.append({"stage": "read", "key": stem, "reason": "missing_pair",
                            "detail": "caption JSON without audio" if audio_path is None else "audio without caption JSON"})
            continue
        obj, reason, detail = _parse_json(json_path.read_bytes(), str(json_path.relative_to(root)))
        if obj is None:
            rejects.append({"stage": "read", "key": stem, "reason": reason, "detail": detail})
            continue
        member = str(audio_path.relative_to(root))
        header, reason, detail = _audio_header(audio_path.read_bytes(), member)
        if header is None:
            rejects.append({"stage": "read", "key": stem, "reason": reason, "detail": detail})
            continue
        row, reason, detail = _clip_row(source, Path(stem).name, "", _Half(audio=header, meta=obj, member=member), 0, meta_rows)
        if row is None:
            rejects.append({"stage": "read", "key": stem, "reason": reason, "detail": detail})
        else:
            clips.append(row)
    return clips, rejects


def dedupe_clips(clips: list[dict], rejects: list[dict]) -> list[dict]:
    """Keep the first occurrence of each clip id (shards in sorted order); later ones become `duplicate_id` rejects."""
    seen: dict[str, str] = {}
    kept = []
    for c in clips:
        where = f"{c['shard']}:{c['member']}"
        if c["clip_id"] in seen:
            rejects.append({"stage": "read", "key": where, "reason": "duplicate_id", "detail": f"{c['clip_id']} first seen at {seen[c['clip_id']]}"})
            continue
        seen[c["clip_id"]] = where
        kept.append(c)
    return kept


def read_inputs(corpus: str | Path, meta: str | Path | None = None) -> dict[str, Path]:
    """What the read stage reads, by name: every tar shard ("shard:<relative path>"), the meta CSV, or the
    extracted folder ("loose"). Its freshness key hashes them, so a new or changed shard reruns read."""
    root, shards = find_shards(corpus)
    inputs: dict[str, Path] = {f"shard:{s.relative_to(root) if s.is_relative_to(root) else s}": s for s in shards}
    meta_path = find_meta_csv(root, meta)
    if meta_path:
        inputs["meta_csv"] = meta_path
    if not shards:
        inputs["loose"] = root
    return inputs
