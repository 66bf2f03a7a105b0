"""The versioned snapshots the wiki sets are built from: instrument/voice ranges and animal sounds.

Both live in `pipeline/wiki/data/` as JSON: {"version", "created", "entries": [...]}. A range entry holds the
page it came from, the range sentence as the page gives it, and the notes and Hz that `parser` reads from that
sentence (never typed by hand). `hand_curated: true` marks an entry written offline from general knowledge;
`auditorybench wiki refresh` replaces entries with what live pages say, keeping the revision ids.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmark.errors import InputError
from benchmark.hashing import stable_hash
from pipeline.stage import write_json
from pipeline.wiki.parser import find_range, parse_animal_sound_line, parse_note

__all__ = [
    "DATA_DIR",
    "RANGES_PATH",
    "snapshot_paths",
    "ANIMAL_SOUNDS_PATH",
    "ANIMAL_SOUNDS_PAGE",
    "RANGE_KINDS",
    "load_snapshot",
    "write_snapshot",
    "range_entry",
    "animal_entry",
    "characteristic_hz",
    "snapshot_version",
]

DATA_FILES = ("data/*.json",)  # in the code hash of every stage that imports this module
DATA_DIR = Path(__file__).resolve().parent / "data"
RANGES_PATH = DATA_DIR / "ranges.json"
ANIMAL_SOUNDS_PATH = DATA_DIR / "animal_sounds.json"
ANIMAL_SOUNDS_PAGE = "List of animal sounds"
RANGE_KINDS = ("instrument", "voice")


def load_snapshot(path: str | Path) -> dict:
    """A snapshot file as a dict with "version" and a list of "entries"; InputError when missing or malformed."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"{p}: cannot read wiki snapshot ({e.strerror})") from e
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: wiki snapshot is not JSON (line {e.lineno}: {e.msg})") from e
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list) or not data.get("version"):
        raise InputError(f"{p}: wiki snapshot needs a 'version' and a list of 'entries'")
    return data


def snapshot_version(entries: list[dict], stamp: str) -> str:
    """A version string naming when the snapshot was made and what it holds: "<stamp>+<content hash>"."""
    return f"{stamp}+{stable_hash(entries, n=8)}"


def write_snapshot(entries: list[dict], path: str | Path, stamp: str, extra: dict | None = None) -> dict:
    """Write a snapshot (entries sorted by name) atomically and return it."""
    entries = sorted(entries, key=lambda e: e["name"])
    snap = {"version": snapshot_version(entries, stamp), "created": stamp, "entries": entries, **(extra or {})}
    write_json(snap, path)
    return snap


def range_entry(
    name: str,
    kind: str,
    page_title: str,
    page_text: str,
    revision_id: int | None = None,
    hand_curated: bool = False,
    refresh_status: str = "not_fetched",
    require_subject: bool = False,
) -> dict | None:
    """A ranges.json entry read from page text (or a hand-written range sentence); None when it gives no range.

    Notes are sounding pitch as `parser.find_range` reads them (sentences naming `name` preferred, or required
    with require_subject); low_hz/high_hz are `parser.parse_note` of them."""
    if kind not in RANGE_KINDS:
        raise InputError(f"wiki range {name!r}: kind {kind!r} is not one of {', '.join(RANGE_KINDS)}")
    found = find_range(page_text, subject=name, require_subject=require_subject)
    if found is None:
        return None
    return {
        "name": name,
        "kind": kind,
        "page_title": page_title,
        "revision_id": revision_id,
        "low_note": found.low_note,
        "high_note": found.high_note,
        "low_hz": round(parse_note(found.low_note), 4),
        "high_hz": round(parse_note(found.high_note), 4),
        "transposition_semitones": found.transposition_semitones,
        "hand_curated": hand_curated,
        "refresh_status": refresh_status,
        "source_text": found.sentence,
    }


def animal_entry(
    source_text: str,
    page_title: str = ANIMAL_SOUNDS_PAGE,
    revision_id: int | None = None,
    hand_curated: bool = False,
    refresh_status: str = "not_fetched",
) -> dict | None:
    """An animal_sounds.json entry read from one list line ("Owl – hoot, screech"); None when it is not one."""
    parsed = parse_animal_sound_line(source_text)
    if parsed is None:
        return None
    name, sounds = parsed
    return {
        "name": name,
        "sounds": sounds,
        "page_title": page_title,
        "revision_id": revision_id,
        "hand_curated": hand_curated,
        "refresh_status": refresh_status,
        "source_text": source_text,
    }


def characteristic_hz(entry: dict) -> float:
    """The characteristic pitch of a range: the geometric mean of its lowest and highest note, in Hz."""
    return math.sqrt(parse_note(entry["low_note"]) * parse_note(entry["high_note"]))


def snapshot_paths(params: dict) -> tuple[Path, Path]:
    """(ranges.json, animal_sounds.json): the params' ranges_path / animal_sounds_path, else the packaged snapshots."""
    ranges = Path(params.get("ranges_path") or RANGES_PATH)
    animals = Path(params.get("animal_sounds_path") or ANIMAL_SOUNDS_PATH)
    return ranges, animals
