"""Reading releases: open a release folder (by path or bare name), verify every file against its manifest, and read
a task's items back. Building releases is benchmark.release; this module is all a user of a downloaded release needs.

Layout of `releases/<name>-<version>/` (see benchmark.release for how it is written):

    <task>/<split>.parquet   every schema.Item column (Arrow schema: schema.ITEM_ARROW_SCHEMA)
    <task>/<split>.csv       the task's declared CSV columns (its YAML's csv_columns)
    manifest.json            sha256 of every file, counts, choices, kind, balance, provenance
    README.md, ATTRIBUTION.csv, figures/*.png, audio_index/
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.errors import InputError, ReleaseIntegrityError
from benchmark.hashing import sha256_file
from benchmark.schema import COLUMNS, LIST_COLUMNS, SPLITS
from benchmark.tasks import get_task

__all__ = ["Release", "load_release", "resolve_release_path", "verify_release", "read_items", "file_digests", "MANIFEST", "CARD",
           "RELEASES_ENV"]

MANIFEST = "manifest.json"
CARD = "README.md"  # the data card: documentation written after the data (benchmark.card), not in the checksums
RELEASES_ENV = "AUDITORYBENCH_RELEASES"



@dataclass
class Release:
    """A release folder on disk, read through its manifest."""

    path: Path
    manifest: dict = field(repr=False)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", ""))

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", ""))

    @property
    def tasks(self) -> list[str]:
        return sorted(self.manifest.get("tasks", {}))

    def _task(self, task: str) -> dict:
        tasks = self.manifest.get("tasks", {})
        if task not in tasks:
            raise InputError(f"{self.path}: release has no task {task!r} (tasks: {', '.join(sorted(tasks))})")
        return tasks[task]

    def splits(self, task: str) -> list[str]:
        """The splits of a task that hold items, in SPLITS order (train, dev, test, wiki)."""
        counts = self._task(task).get("counts", {})
        return [s for s in SPLITS if counts.get(s, 0) > 0]

    def items(self, task: str, split: str) -> pd.DataFrame:
        """The items of one task and split as a DataFrame with the schema.Item columns (lists as Python lists);
        an empty frame for a known split without items."""
        self._task(task)
        if split not in SPLITS:
            raise InputError(f"{self.path}: unknown split {split!r} (splits: {', '.join(SPLITS)})")
        p = self.path / task / f"{split}.parquet"
        if not p.exists():
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in COLUMNS["items"]})
        return read_items(p)

    def choices(self, task: str) -> list[str]:
        return list(self._task(task).get("choices", []))

    def kind(self, task: str) -> str:
        """"comparison" or "recognition", as the task's YAML declared it when the release was built."""
        return str(self._task(task)["kind"])

    def metrics(self, task: str) -> list[str]:
        """The metrics the task's YAML declares (recorded in the manifest); older releases: the registered task's."""
        declared = self._task(task).get("metrics")
        if declared:
            return list(declared)
        return list(get_task(task).metrics)

    @property
    def audio_index_dir(self) -> Path | None:
        p = self.path / "audio_index"
        return p if p.is_dir() else None

    @property
    def license(self) -> str:
        return str(self.manifest.get("license", "unknown"))


def read_items(path: str | Path) -> pd.DataFrame:
    """Read one <task>/<split>.parquet into a DataFrame with schema.Item columns (list cells as Python lists)."""
    try:
        df = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as e:
        raise ReleaseIntegrityError(f"{path}: cannot read parquet ({e})") from e
    for c in LIST_COLUMNS:
        if c in df.columns:
            df[c] = [list(v) if v is not None else [] for v in df[c]]
    return df


def resolve_release_path(path_or_name: str | Path) -> Path:
    """A release folder from a path, or from a bare name under $AUDITORYBENCH_RELEASES (default ./releases/):
    `demo-1.0.0` exactly, or `demo` for its highest version."""
    p = Path(path_or_name)
    if p.is_dir():
        return p
    root = Path(os.environ.get(RELEASES_ENV) or "releases")
    name = str(path_or_name)
    if (root / name).is_dir():
        return root / name
    candidates = []
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir() and d.name.startswith(name + "-") and (d / MANIFEST).exists():
                version = d.name[len(name) + 1:]
                if re.fullmatch(r"\d[\w.+-]*", version):
                    candidates.append((_version_key(version), d))
    if not candidates:
        avail = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")) if root.is_dir() else []
        raise InputError(f"release {name!r} not found under {root}/ (available: {', '.join(avail) or 'none'})")
    return max(candidates)[1]


def _version_key(version: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+-]", version))


def load_release(path_or_name: str | Path, verify: bool = True) -> Release:
    """Open a release by folder or bare name; with verify, check every file's sha256 against the manifest and
    raise ReleaseIntegrityError naming the first file that is missing, changed or not listed."""
    path = resolve_release_path(path_or_name)
    mpath = path / MANIFEST
    if not mpath.exists():
        raise ReleaseIntegrityError(f"{mpath}: missing; not a release folder")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ReleaseIntegrityError(f"{mpath}: not valid JSON ({e.msg} at line {e.lineno})") from e
    if verify:
        verify_release(path, manifest)
    return Release(path=path, manifest=manifest)


def verify_release(path: Path, manifest: dict) -> None:
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        raise ReleaseIntegrityError(f"{path / MANIFEST}: has no 'files' checksums")
    for rel, digest in sorted(listed.items()):
        f = path / rel
        if not f.is_file():
            raise ReleaseIntegrityError(f"{f}: listed in the manifest but missing")
        actual = sha256_file(f)
        if actual != digest:
            raise ReleaseIntegrityError(f"{f}: sha256 {actual[:12]}… does not match the manifest's {digest[:12]}…")
    for rel in file_digests(path, hash_files=False):
        if rel not in (MANIFEST, CARD) and rel not in listed:
            raise ReleaseIntegrityError(f"{path / rel}: file is not listed in the manifest")


def file_digests(root: Path, hash_files: bool = True) -> dict[str, str]:
    """{relative posix path: sha256} of every file under root (hidden files and folders skipped), sorted."""
    out = {}
    for f in sorted(Path(root).rglob("*")):
        rel = f.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not f.is_file():
            continue
        out[rel.as_posix()] = sha256_file(f) if hash_files else ""
    return out
