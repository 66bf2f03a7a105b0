"""What reviewers look at: a build's candidate items (or a release's items), in queue order, with the clips they were
made from (where each clip's audio sits in its tar shard), the clips' measurements and each task's valid answers.

Everything here is read once, at start, from the build's own tables; a request names an item by id or position and
never a path (`ReviewTarget.audio_source` maps an item and a clip number to the shard, offset and size recorded by the
read stage).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.errors import InputError, UnknownNameError
from benchmark.jsonable import jsonable
from benchmark.release_io import MANIFEST, load_release
from benchmark.tasks import get_task, task_choices
from pipeline.contract import stage_file
from pipeline.filter import REVIEW_EXPORT

__all__ = ["ReviewTarget", "AudioSource", "load_target", "MEDIA_TYPES"]

REPO_ROOT = Path(__file__).resolve().parents[2]
MEDIA_TYPES = {".flac": "audio/flac", ".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}
_MEASURED = ("f0_hz", "centroid_hz", "loudness_lufs", "duration_s", "active_duration_s", "pitched")


@dataclass(frozen=True)
class AudioSource:
    """One clip's audio bytes: `size` bytes at `offset` in `path` (a tar shard, or the loose file itself)."""

    path: Path
    offset: int
    size: int
    media_type: str


@dataclass
class ReviewTarget:
    kind: str  # build | release
    root: Path
    state_dir: Path  # review.sqlite and decisions.csv live here
    items: pd.DataFrame  # queue order: flagged first, then by task, split, id
    clips: dict[str, dict]  # clip_id → clip table row (+ its measurements)
    choices: dict[str, list[str]]  # task → valid answers
    corpus_root: Path | None

    @property
    def db_path(self) -> Path:
        return self.state_dir / "review.sqlite"

    @property
    def export_path(self) -> Path:
        return self.state_dir / REVIEW_EXPORT.name

    def __post_init__(self) -> None:
        self.items = self.items.reset_index(drop=True)
        self.position = {item_id: i for i, item_id in enumerate(self.items["id"])}

    def item(self, item_id: str) -> dict | None:
        i = self.position.get(item_id)
        return None if i is None else self.items.iloc[i].to_dict()

    def sides(self, item: dict) -> list[str]:
        """Which span each clip of a comparison item sounds: by the clip's source name (the extract stage's) when every
        clip's names one of the two spans, else — two clips — the clip whose measurement is value1 is span1's.
        [] where that cannot be told."""
        ids, v1, v2 = item["clip_ids"], item.get("value1"), item.get("value2")
        spans = {str(item.get(k) or "").lower(): item.get(k) for k in ("span1", "span2")}
        names = [str((self.clips.get(c) or {}).get("source_name") or "").lower() for c in ids]
        if "" not in spans and ids and all(n in spans for n in names):
            return [spans[n] for n in names]
        if len(ids) != 2 or not item.get("span1") or v1 is None or v2 is None:
            return []
        try:
            column = next(b.column for b in get_task(item["task"]).measurement.bases if b.basis == item.get("basis"))
        except (UnknownNameError, AttributeError, StopIteration):
            return []
        a, b = ((self.clips.get(c) or {}).get(column) for c in ids)
        if a is None or b is None:
            return []
        if math.isclose(a, v1, rel_tol=1e-6) and math.isclose(b, v2, rel_tol=1e-6):
            return [item["span1"], item["span2"]]
        if math.isclose(a, v2, rel_tol=1e-6) and math.isclose(b, v1, rel_tol=1e-6):
            return [item["span2"], item["span1"]]
        return []

    def audio_source(self, item_id: str, n: int) -> AudioSource | None:
        """Where clip n (0-based) of an item lies; None for an unknown item, clip number, or a clip without a row."""
        item = self.item(item_id)
        if item is None or self.corpus_root is None or not 0 <= n < len(item["clip_ids"]):
            return None
        clip = self.clips.get(item["clip_ids"][n])
        if clip is None:
            return None
        media = MEDIA_TYPES.get(Path(clip["member"]).suffix.lower(), "application/octet-stream")
        if clip["shard"]:
            return AudioSource(self.corpus_root / clip["shard"], int(clip["offset"]), int(clip["size"]), media)
        return AudioSource(self.corpus_root / clip["member"], 0, int(clip["size"]), media)


def queue_order(items: pd.DataFrame) -> pd.DataFrame:
    """Flagged items first, then the rest; inside each, by task, split and id (a stable order for every reviewer)."""
    key = items.assign(_unflagged=~items["review_flag"].astype(bool))
    return key.sort_values(["_unflagged", "task", "split", "id"], kind="stable").drop(columns="_unflagged").reset_index(drop=True)


def _corpus_root(build_dir: Path) -> Path | None:
    manifest = stage_file(build_dir, f"read/{MANIFEST}")
    if not manifest.exists():
        return None
    root = Path(json.loads(manifest.read_text(encoding="utf-8")).get("corpus", {}).get("root", ""))
    for candidate in (root, REPO_ROOT / root):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def _clips(build_dir: Path, clip_ids: set[str]) -> dict[str, dict]:
    path = stage_file(build_dir, "read/clips.parquet")
    if not path.exists():
        return {}
    clips = pd.read_parquet(path)
    clips = clips[clips["clip_id"].isin(clip_ids)]
    mpath = stage_file(build_dir, "measure/measurements.parquet")
    if mpath.exists():
        m = pd.read_parquet(mpath)
        cols = ["clip_id"] + [c for c in _MEASURED if c in m.columns and c != "duration_s"]
        clips = clips.merge(m[cols], on="clip_id", how="left")
    cpath = stage_file(build_dir, "extract/categories.parquet")
    if cpath.exists():
        clips = clips.merge(pd.read_parquet(cpath, columns=["clip_id", "source_name"]), on="clip_id", how="left")
    out = {}
    for row in clips.to_dict("records"):
        row["captions"] = [str(c) for c in row.get("captions", [])]
        out[row["clip_id"]] = jsonable(row)
    return out


def load_target(path: str | Path, build_root: str | Path = "build") -> ReviewTarget:
    """A build folder (build/<corpus_id>, reviewed from its filter/candidates.parquet) or a release folder (its items;
    audio from the build it came from, <build_root>/<corpus id>, when that is here)."""
    root = Path(path)
    if stage_file(root, "filter/manifest.json").exists() or stage_file(root, f"read/{MANIFEST}").exists():
        cand = stage_file(root, "filter/candidates.parquet")
        if not cand.exists():
            raise InputError(f"{cand}: not found; run the filter stage (make release) before reviewing {root}")
        items = pd.read_parquet(cand)
        build_dir, kind, state = root, "build", root / REVIEW_EXPORT.parent
        choices = task_choices(items) if len(items) else {}
    elif (root / MANIFEST).exists():
        rel = load_release(root)
        parts = [rel.items(t, s) for t in rel.tasks for s in rel.splits(t)]
        items = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["id", "task", "split", "review_flag", "clip_ids"])
        corpus_id = ((rel.manifest.get("provenance") or {}).get("corpus") or {}).get("id", "")
        build_dir, kind, state = Path(build_root) / corpus_id, "release", root / ".review"  # hidden: not part of the release's files
        choices = {t: rel.choices(t) for t in rel.tasks}
    else:
        raise InputError(f"{root}: neither a build folder (build/<corpus_id>) nor a release folder (with {MANIFEST})")
    items = items.copy()
    items["clip_ids"] = items["clip_ids"].map(lambda v: [str(c) for c in v] if v is not None else [])
    used = {c for ids in items["clip_ids"] for c in ids}
    return ReviewTarget(kind=kind, root=root, state_dir=state, items=queue_order(items), clips=_clips(build_dir, used),
                        choices=choices, corpus_root=_corpus_root(build_dir))
