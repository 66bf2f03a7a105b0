"""Atomic writes of text, numpy arrays and torch objects for models/ (benchmark.hashing.atomic_path underneath), and
`RowFile`: a float32 [rows, dim] .npy file written and read a block of rows at a time, for arrays that grow with
the corpus (the index's embeddings), so that no process holds them whole."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from benchmark.hashing import atomic_path

__all__ = ["atomic_path", "atomic_write_text", "save_npy", "save_torch", "RowFile", "RowSubset", "row_chunks",
           "CHUNK_ROWS"]

CHUNK_ROWS = 8192  # rows per block when an array is streamed (8192 x 512 float32 = 16 MiB)


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
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)  # a file object, not the path: torch names the archive inside after a path (here a random temp name)
    return Path(path)


class RowFile:
    """float32[n_rows, dim] in an .npy file (np.load reads it), written and read through the file by position
    (pwrite / pread), never memory-mapped: what the process holds of it is the block in hand, whatever n_rows (a
    memory map's touched pages count in the resident set until it is unmapped). `create` writes to <path>.part;
    `commit()` renames it into place, so a killed run never leaves a partial file under the real name."""

    def __init__(self, path: str | Path, shape: tuple[int, int], offset: int, fd: int, part: Path | None = None):
        self.path, self.shape, self._offset, self._fd, self._part = Path(path), shape, offset, fd, part
        self._row_bytes = 4 * shape[1]

    @classmethod
    def create(cls, path: str | Path, n_rows: int, dim: int) -> "RowFile":
        path = Path(path)
        part = path.with_name(path.name + ".part")
        mm = np.lib.format.open_memmap(part, mode="w+", dtype=np.float32, shape=(n_rows, dim))  # header; rows zero
        offset = int(mm.offset)
        del mm  # unmapped before a row is touched
        return cls(path, (n_rows, dim), offset, os.open(part, os.O_RDWR), part)

    @classmethod
    def open(cls, path: str | Path) -> "RowFile":
        mm = np.load(path, mmap_mode="r")
        if mm.dtype != np.float32 or mm.ndim != 2:
            raise ValueError(f"{path}: not a float32 [rows, dim] array")
        shape, offset = (int(mm.shape[0]), int(mm.shape[1])), int(mm.offset)
        del mm
        return cls(path, shape, offset, os.open(path, os.O_RDONLY))

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, rows: slice, block: np.ndarray) -> None:
        start = rows.indices(self.shape[0])[0]
        data = np.ascontiguousarray(block, dtype=np.float32).reshape(-1, self.shape[1])
        os.pwrite(self._fd, data.tobytes(), self._offset + start * self._row_bytes)

    def __getitem__(self, rows) -> np.ndarray:
        """Rows by slice or by index array (any order; runs of consecutive rows are read at once)."""
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self.shape[0])
            if step == 1:
                return self._read(start, max(0, stop - start))
            rows = np.arange(start, stop, step)
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), self.shape[1]), dtype=np.float32)
        if not len(idx):
            return out
        order = np.argsort(idx, kind="stable")
        s = idx[order]
        breaks = np.flatnonzero(np.diff(s) != 1) + 1
        for run_pos, run in zip(np.split(np.arange(len(s)), breaks), np.split(s, breaks)):
            block = self._read(int(run[0]), len(run))
            out[order[run_pos]] = block
        return out

    def _read(self, start: int, n: int) -> np.ndarray:
        data = os.pread(self._fd, n * self._row_bytes, self._offset + start * self._row_bytes)
        return np.frombuffer(data, dtype=np.float32).reshape(n, self.shape[1]).copy()

    def commit(self) -> Path:
        """Flush, close and rename <path>.part to path (a created file); returns path."""
        os.fsync(self._fd)
        self.close()
        if self._part is not None:
            os.replace(self._part, self.path)
            self._part = None
        return self.path

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def discard(self) -> None:
        self.close()
        if self._part is not None:
            self._part.unlink(missing_ok=True)


class RowSubset:
    """Rows `rows` of x (an ndarray, a memmap or a RowFile), read only when asked for: len, x[a:b], x[index array]."""

    def __init__(self, x, rows: np.ndarray):
        self.x, self.rows = x, np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), *x.shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx) -> np.ndarray:
        return np.asarray(self.x[self.rows[idx]], dtype=np.float32)


def row_chunks(x, size: int = CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float32 block) over an ndarray, a memmap or a RowFile, a block of at most `size` rows at a time."""
    for s in range(0, len(x), size):
        yield s, np.asarray(x[s:s + size], dtype=np.float32)
