"""What every stage shares: atomic writes, a manifest.json sidecar, skip-if-fresh, and a resumable result store.

A stage's outputs live in `build/<corpus_id>/<stage>/`. Its manifest records its freshness key (input
fingerprints, resolved params, backend identity, code hash: see pipeline.contract), the params it used, the
sha256 of its outputs and counts kept/rejected by reason. The manifest's bytes depend on the inputs alone; what
varies from run to run (units computed vs. found in the result store) goes to run.json beside it.
A stage whose key did not change and whose outputs are intact does nothing (`StageRun.fresh()`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.hashing import atomic_path, sha256_file, stable_hash
from benchmark.jsonable import jsonable

__all__ = [
    "StageRun",
    "ResultStore",
    "atomic_path",
    "write_parquet",
    "write_json",
    "fingerprint",
    "log",
]

_BIG = 64 << 20  # files above this are fingerprinted by size + head + tail, not read whole


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a table atomically, without the index (row order is the caller's, content is deterministic)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_json(obj: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(jsonable(obj), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n",
                       encoding="utf-8")
    return Path(path)


def fingerprint(path: str | Path) -> str:
    """sha256 of a file (or of a folder's files, by relative name); files over 64 MiB by size + first and last MiB."""
    p = Path(path)
    if p.is_dir():
        parts = {str(f.relative_to(p)): fingerprint(f) for f in sorted(p.rglob("*")) if f.is_file() and not f.name.startswith(".")}
        return stable_hash(parts, n=64)
    size = p.stat().st_size
    if size <= _BIG:
        return sha256_file(p)
    h = hashlib.sha256(str(size).encode())
    with open(p, "rb") as f:
        h.update(f.read(1 << 20))
        f.seek(size - (1 << 20))
        h.update(f.read(1 << 20))
    return "big:" + h.hexdigest()


@dataclass
class StageRun:
    """One run of one stage: knows its outputs folder, params and inputs, and writes the manifest last.

    key: the stage's freshness key from pipeline.contract (inputs, params, backend, code). Without one (a stage
    function called directly), the key is built here from params, the input files and `code` (default: the code
    hash of the stage declared under this name)."""

    name: str
    out_dir: Path
    params: dict
    inputs: dict[str, Path] = field(default_factory=dict)
    code: str | dict | None = None
    quiet: bool = False  # silences progress bars only; the one-line summaries are always printed
    key: dict | None = None
    _outputs: dict[str, str] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._input_fps: dict[str, str] | None = None
        self._t0 = time.perf_counter()

    def full_key(self) -> dict:
        if self.key is None:
            code = self.code
            if code is None:
                from pipeline.code_hash import code_hash, module_file

                module = f"pipeline.stages.{self.name}"
                code = code_hash(module) if module_file(module) else ""
            self.key = {"inputs": self.input_fingerprints(), "params": jsonable(self.params), "code": code}
        return self.key

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / "manifest.json"

    def input_fingerprints(self) -> dict[str, str]:
        if self.key is not None and "inputs" in self.key:
            return self.key["inputs"]
        if self._input_fps is None:
            self._input_fps = {k: fingerprint(v) for k, v in sorted(self.inputs.items())}
        return self._input_fps

    def previous(self) -> dict | None:
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def code_version(self) -> str:
        """16 hex digits of the code part of the key: what the stage's per-unit result stores are tied to."""
        return stable_hash(self.full_key().get("code"), n=16)

    def result_store(self, rel: str) -> ResultStore:
        """The stage's per-unit result store at rel, tied to its code version: values computed by other code are
        dropped when it opens (a changed estimator never serves the old f0), while other settings' entries stay
        (their keys are content addresses of the settings)."""
        return ResultStore(self.out_dir / rel, version=self.code_version())

    def fresh(self) -> bool:
        """True when a manifest holds the same freshness key and every output is intact."""
        old = self.previous()
        if not old or old.get("key") != self.full_key():
            return False
        for rel, digest in old.get("outputs", {}).items():
            p = self.out_dir / rel
            if not p.exists() or sha256_file(p) != digest:
                return False
        log(f"[{self.name}] inputs, params, backend and code unchanged: nothing to do ({self.out_dir})")
        return True

    def path(self, rel: str) -> Path:
        return self.out_dir / rel

    def write_table(self, rel: str, df: pd.DataFrame) -> Path:
        p = write_parquet(df, self.out_dir / rel)
        self._outputs[rel] = sha256_file(p)
        return p

    def write_json(self, rel: str, obj: Any) -> Path:
        p = write_json(obj, self.out_dir / rel)
        self._outputs[rel] = sha256_file(p)
        return p

    def record_output(self, rel: str) -> None:
        """Record a file the stage wrote itself (e.g. a folder's member) in the manifest."""
        self._outputs[rel] = sha256_file(self.out_dir / rel)

    def finish(self, counts: dict, extra: dict | None = None, run_stats: dict | None = None) -> dict:
        """Write the manifest (its bytes depend on the inputs alone) and, if given, run.json (run_stats: what
        varies between runs, e.g. units found in the result store); return the manifest, with run_stats under "run"."""
        key = self.full_key()
        manifest = {
            "stage": self.name,
            "key": key,
            "code_version": self.code_version(),
            "params": jsonable(self.params),
            "inputs": self.input_fingerprints(),
            "outputs": dict(sorted(self._outputs.items())),
            "counts": counts,
        }
        if extra:
            manifest.update(jsonable(extra))
        if run_stats:
            write_json(run_stats, self.out_dir / "run.json")
        write_json(manifest, self.manifest_path)
        summary = {k: counts[k] for k in ("kept", "rejected") if k in counts}
        log(f"[{self.name}] done in {time.perf_counter() - self._t0:.1f}s: {json.dumps(summary, sort_keys=True, default=str)[:400]}")
        return {**manifest, "run": run_stats} if run_stats else manifest


class ResultStore:
    """A durable key → JSON store (SQLite) for per-unit results: what a killed stage already computed.

    Every put is committed at once, so after kill -9 a rerun finds every finished unit and computes only the rest.
    Keys should be content addresses (e.g. audio hash + params hash), so the store doubles as a cache.
    version: the code version that computes the values (StageRun.result_store); a store written under another
    version is emptied when opened, so a value never outlives the code that computed it. None: a store whose values
    do not depend on project code (the LLM's and Wikipedia's response caches, keyed on the request).
    """

    def __init__(self, path: str | Path, version: str | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        if version is not None:
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT value FROM meta WHERE name = 'code_version'").fetchone()
                if row is None or row[0] != version:
                    self._db.execute("DELETE FROM results")
                    self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('code_version', ?)", (version,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, key: str) -> Any | None:
        row = self._db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def __contains__(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM results WHERE key = ?", (key,)).fetchone() is not None

    def put(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)",
            (key, json.dumps(value, sort_keys=True, ensure_ascii=False, default=_nan_safe)),
        )

    def put_many(self, pairs: Iterable[tuple[str, Any]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)",
                [(k, json.dumps(v, sort_keys=True, ensure_ascii=False, default=_nan_safe)) for k, v in pairs],
            )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        self._db.close()


def _nan_safe(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
