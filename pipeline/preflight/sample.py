"""A fixed sample of a user's corpus, and its size from the shard list (no audio decoded).

`sample_corpus(corpus, out, n_clips)` copies the first clips (each clip's members: its audio and its JSON) of up to
`max_shards` shards spread evenly over the sorted shard list into tar shards of the same names under out/<corpus
folder name>/, so the read stage sees the same source name; the meta CSV is read from where it is (`--meta`).
`count_clips(corpus)` counts clips from tar headers only (a seekable read skips the data): every shard when there
are at most `max_listed` of them, else the listed ones, scaled by the bytes of all shards.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from benchmark.errors import InputError
from pipeline.reader import find_shards

__all__ = ["sample_corpus", "count_clips", "CorpusSize"]

_AUDIO = {".flac", ".wav", ".mp3", ".ogg", ".opus"}


def _stem(name: str) -> str:
    p = PurePosixPath(name)
    return str(p.with_suffix("")) if p.suffix else name


def _spread(items: list, k: int) -> list:
    """k items spread evenly over the list (first and last included)."""
    if len(items) <= k:
        return list(items)
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)] if k > 1 else [items[0]]


def sample_corpus(corpus: str | Path, out: Path, n_clips: int, max_shards: int = 4) -> Path:
    """The sample corpus folder (out/<name of the corpus folder>); rebuilt only when missing."""
    root, shards = find_shards(corpus)
    if not shards:
        raise InputError(f"{corpus}: no tar shards (preflight samples a LAION-format corpus of tar shards)")
    dest = Path(out) / (root.name or "corpus")
    done = dest / ".sampled"
    if done.exists() and done.read_text() == f"{n_clips} {max_shards}":
        return dest
    chosen = _spread(shards, max_shards)
    per_shard = -(-n_clips // len(chosen))
    for shard in chosen:
        rel = shard.relative_to(root) if shard.is_relative_to(root) else Path(shard.name)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        kept: set[str] = set()
        try:
            with tarfile.open(shard, mode="r|") as src, tarfile.open(target.with_suffix(".part"), mode="w") as dst:
                for info in src:
                    if not info.isfile():
                        continue
                    stem = _stem(info.name)
                    if stem not in kept:
                        if len(kept) >= per_shard:
                            break  # members of a clip are adjacent in LAION shards (audio, then its JSON)
                        kept.add(stem)
                    dst.addfile(info, src.extractfile(info))
        except (tarfile.TarError, OSError) as e:
            raise InputError(f"{shard}: cannot sample this shard ({e})") from e
        target.with_suffix(".part").replace(target)
    done.write_text(f"{n_clips} {max_shards}")
    return dest


@dataclass(frozen=True)
class CorpusSize:
    clips: int
    shards: int
    shard_bytes: int
    exact: bool  # every shard's headers listed (else: the listed shards' clips per byte x all bytes)

    def line(self) -> str:
        how = "counted from every shard's tar headers" if self.exact else "estimated from the listed shards' clips per byte"
        return f"{self.clips:,} clips in {self.shards} shards ({self.shard_bytes / 1e9:.2f} GB; {how})"


def _clips_in(shard: Path) -> int:
    stems = set()
    try:
        with tarfile.open(shard, mode="r:") as tf:  # seekable: headers only, the data is skipped
            for info in tf:
                if info.isfile() and PurePosixPath(info.name).suffix.lower() in _AUDIO:
                    stems.add(_stem(info.name))
    except (tarfile.TarError, OSError) as e:
        raise InputError(f"{shard}: cannot list this shard ({e})") from e
    return len(stems)


def count_clips(corpus: str | Path, max_listed: int = 64) -> CorpusSize:
    _, shards = find_shards(corpus)
    if not shards:
        raise InputError(f"{corpus}: no tar shards")
    sizes = {s: s.stat().st_size for s in shards}
    total = sum(sizes.values())
    listed = shards if len(shards) <= max_listed else _spread(shards, max_listed)
    clips = sum(_clips_in(s) for s in listed)
    if len(listed) == len(shards):
        return CorpusSize(clips, len(shards), total, True)
    listed_bytes = sum(sizes[s] for s in listed)
    return CorpusSize(round(clips * total / listed_bytes) if listed_bytes else 0, len(shards), total, False)
