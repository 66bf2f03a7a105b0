"""Atomic file writes for models/ (temp file beside the target, then rename); models/ does not import pipeline/."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

__all__ = ["atomic_path", "atomic_write_text", "save_npy", "save_torch"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_npy(path: str | Path, arr: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)
    return Path(path)


def save_torch(path: str | Path, obj: Any) -> Path:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)
