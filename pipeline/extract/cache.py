"""A content-addressed disk cache of LLM answers: key = hash(model, prompt version, messages, sampling params).

One SQLite file (`build/<corpus>/llm_cache/responses.sqlite`), each answer committed the moment it arrives, so a
killed run resumes without re-asking and a release can be replayed with zero requests. Only answers the server
gave (HTTP 200) are stored; transport failures are not, so a rerun asks again.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.hashing import stable_hash
from pipeline.stage import ResultStore

__all__ = ["LLMCache", "cache_key", "CACHE_FILE"]

CACHE_FILE = "responses.sqlite"


def cache_key(model: str, prompt_version: str, messages: list[dict], sampling: dict) -> str:
    """sha256 (hex, 64 chars) of everything that decides an answer; never the endpoint or the API key."""
    return stable_hash({"model": model, "prompt_version": prompt_version, "messages": messages, "sampling": sampling}, n=64)


class LLMCache:
    """Answers by content key: {"text", "finish_reason", "model", "prompt_version"}."""

    def __init__(self, cache_dir: str | Path):
        self.dir = Path(cache_dir)
        self._store = ResultStore(self.dir / CACHE_FILE)

    def get(self, key: str) -> dict | None:
        return self._store.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._store

    def put(self, key: str, answer: dict) -> None:
        self._store.put(key, answer)

    def __len__(self) -> int:
        return len(self._store)

    def close(self) -> None:
        self._store.close()
