"""Stable content hashes: item ids, group ids, split assignment, file checksums."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["stable_hash", "sha256_file", "sha256_bytes", "unit_interval"]


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def stable_hash(obj: Any, n: int = 16) -> str:
    """Hex digest (first n chars of sha256) of a JSON-serialisable object, independent of dict order."""
    return hashlib.sha256(_canonical(obj)).hexdigest()[:n]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def unit_interval(key: str, seed: int | str) -> float:
    """Map (key, seed) to a float in [0, 1) deterministically; used to assign splits by group."""
    digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
