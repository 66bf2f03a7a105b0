"""The one Wikipedia client: `wikipediaapi` with a configurable API endpoint and a disk cache, and the snapshot refresh.

Every MediaWiki API response is kept in a ResultStore (SQLite) under a hash of the request (endpoint URL and
query parameters), so a snapshot can be rebuilt without the network (`offline=True` turns a cache miss into an
error instead of a request). The endpoint is a template such as "https://{language}.wikipedia.org/w/api.php";
tests point it at a loopback server.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wikipediaapi
from tqdm import tqdm

from benchmark.errors import InputError
from benchmark.hashing import stable_hash
from pipeline.stage import ResultStore
from pipeline.wiki.parser import parse_animal_sounds
from pipeline.wiki.snapshot import (
    ANIMAL_SOUNDS_PAGE,
    load_snapshot,
    range_entry,
    write_snapshot,
)

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_USER_AGENT",
    "WikiPage",
    "WikiClient",
    "refresh_snapshot",
    "refresh_animal_snapshot",
]

DEFAULT_API_URL = "https://{language}.wikipedia.org/w/api.php"
DEFAULT_USER_AGENT = "auditorybench/0.1 (research benchmark build; https://arxiv.org/abs/2409.08199)"


@dataclass(frozen=True)
class WikiPage:
    """One page as fetched: its title after redirects, its text (plain text or wikitext) and revision id."""

    title: str
    text: str
    revision_id: int | None
    exists: bool


class _CachedWikipedia(wikipediaapi.Wikipedia):
    """wikipediaapi.Wikipedia with its endpoint from a template and every API response cached on disk."""

    def __init__(self, api_url: str, store: ResultStore | None, offline: bool, **kwargs: Any) -> None:
        self._api_url = api_url
        self._store = store
        self._offline = offline
        self.requests = 0
        self.cache_hits = 0
        super().__init__(**kwargs)

    def _build_url(self, language: str) -> str:  # the library's hook for the endpoint (a staticmethod there)
        return self._api_url.format(language=language)

    def _get(self, language: str, params: dict[str, Any]) -> dict[str, Any]:
        url = self._build_url(language)
        key = stable_hash({"url": url, "params": {k: str(v) for k, v in params.items()}}, n=64)
        if self._store is not None:
            hit = self._store.get(key)
            if hit is not None:
                self.cache_hits += 1
                return hit
        if self._offline:
            raise InputError(f"wikipedia {params.get('titles', '')!r} ({params.get('prop', '')}): not in the cache and the client is offline")
        self.requests += 1
        raw = super()._get(language, params)
        if self._store is not None:
            self._store.put(key, raw)
        return raw


class WikiClient:
    """Fetch page text and wikitext from a MediaWiki API through wikipediaapi, with a disk cache.

    cache_path: SQLite file for the responses (None = no cache); api_url: endpoint template with {language};
    offline: answer only from the cache."""

    def __init__(
        self,
        cache_path: str | Path | None = None,
        api_url: str = DEFAULT_API_URL,
        language: str = "en",
        user_agent: str = DEFAULT_USER_AGENT,
        offline: bool = False,
        timeout_s: float = 10.0,
        max_retries: int = 3,
    ) -> None:
        self.store = ResultStore(cache_path) if cache_path else None
        self.language = language
        self._wiki = _CachedWikipedia(
            api_url,
            self.store,
            offline,
            user_agent=user_agent,
            language=language,
            extract_format=wikipediaapi.ExtractFormat.WIKI,
            max_retries=max_retries,
            retry_wait=0.5,
            timeout=timeout_s,
        )

    @property
    def requests(self) -> int:
        """API requests sent over the network by this client (cache hits not counted)."""
        return self._wiki.requests

    @property
    def cache_hits(self) -> int:
        return self._wiki.cache_hits

    def page_text(self, title: str) -> WikiPage:
        """A page's plain text (prop=extracts) and latest revision id (prop=info)."""
        page = self._wiki.page(title)
        try:
            if not page.exists():
                return WikiPage(title, "", None, False)
            text = page.text
            rev = page.lastrevid
        except wikipediaapi.WikipediaException as e:
            raise InputError(f"wikipedia page {title!r}: {type(e).__name__}: {e}") from e
        return WikiPage(str(page.title), text, int(rev) if rev else None, True)

    def page_wikitext(self, title: str) -> WikiPage:
        """A page's wikitext and its revision id (prop=revisions); tables survive here, not in extracts."""
        params = {
            "action": "query",
            "prop": "revisions",
            "rvprop": "ids|content",
            "rvslots": "main",
            "titles": title,
            "format": "json",
            "redirects": 1,
        }
        try:
            raw = self._wiki._get(self.language, params)
        except wikipediaapi.WikipediaException as e:
            raise InputError(f"wikipedia page {title!r}: {type(e).__name__}: {e}") from e
        pages = (raw.get("query") or {}).get("pages") or {}
        entries = list(pages.values()) if isinstance(pages, dict) else list(pages)
        if not entries or "missing" in entries[0] or not entries[0].get("revisions"):
            return WikiPage(title, "", None, False)
        rev = entries[0]["revisions"][0]
        slot = (rev.get("slots") or {}).get("main") or rev
        text = slot.get("*", slot.get("content", ""))
        return WikiPage(str(entries[0].get("title", title)), text, rev.get("revid"), True)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def _stamp() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def refresh_snapshot(
    names: list[str] | None, out_path: str | Path, client: WikiClient, stamp: str | None = None, quiet: bool = True
) -> dict:
    """Rebuild ranges.json from live pages and return the snapshot written (with a "refresh" tally).

    Each name keeps its page title and kind from the snapshot at out_path (a new name gets the page named
    like it, as an instrument). A range read from the page replaces the entry (hand_curated false, the page's
    revision id). When the page gives no range, is missing or fails to load, the previous entry stays as it
    was, hand_curated flag included, with refresh_status saying why and checked_revision_id the revision read.
    A page that holds several entries (the recorder sizes) only counts sentences naming the entry."""
    out_path = Path(out_path)
    old = {e["name"]: e for e in load_snapshot(out_path)["entries"]} if out_path.exists() else {}
    names = sorted(old) if names is None else list(names)
    titles = {n: (old[n]["page_title"] if n in old else n[:1].upper() + n[1:]) for n in names}
    shared = Counter(titles.values())
    entries, tally = [], Counter()
    for name in tqdm(names, desc="wiki refresh", disable=quiet):
        prev, title = old.get(name), titles[name]
        kind = prev["kind"] if prev else "instrument"
        status, revision = "", None
        try:
            page = client.page_text(title)
        except InputError:
            status = "fetch_failed"
        else:
            revision = page.revision_id
            if not page.exists:
                status = "page_missing"
            else:
                entry = range_entry(name, kind, page.title, page.text, page.revision_id, False, "parsed", shared[title] > 1)
                if entry is not None:
                    entries.append(entry)
                    tally["parsed"] += 1
                    continue
                status = "no_range_in_page"
        tally[status] += 1
        if prev is None:
            tally["dropped"] += 1
            continue
        kept = dict(prev, refresh_status=status)
        if revision is not None:
            kept["checked_revision_id"] = revision
        entries.append(kept)
    extra = {"refresh": dict(sorted(tally.items())), "hand_curated": sum(bool(e.get("hand_curated")) for e in entries)}
    return write_snapshot(entries, out_path, stamp or _stamp(), extra)


def refresh_animal_snapshot(out_path: str | Path, client: WikiClient, stamp: str | None = None) -> dict:
    """Rebuild animal_sounds.json from the wikitext of "List of animal sounds" and return the snapshot written.

    Animals read from the page replace their entries (hand_curated false, revision id kept); animals of the old
    snapshot that the page no longer lists stay, with refresh_status "not_in_page". When the page cannot be
    read or lists nothing, the old entries all stay with that status."""
    out_path = Path(out_path)
    old = {e["name"]: e for e in load_snapshot(out_path)["entries"]} if out_path.exists() else {}
    tally: Counter = Counter()
    try:
        page = client.page_wikitext(ANIMAL_SOUNDS_PAGE)
        found = parse_animal_sounds(page.text) if page.exists else []
        status_missing = "not_in_page" if found else ("no_list_in_page" if page.exists else "page_missing")
    except InputError:
        page, found, status_missing = None, [], "fetch_failed"
    entries = []
    for name, sounds in found:
        entries.append(
            {
                "name": name,
                "sounds": sounds,
                "page_title": page.title,
                "revision_id": page.revision_id,
                "hand_curated": False,
                "refresh_status": "parsed",
                "source_text": f"{name} – {', '.join(sounds)}",
            }
        )
        tally["parsed"] += 1
    seen = {e["name"] for e in entries}
    for name, prev in sorted(old.items()):
        if name not in seen:
            entries.append(dict(prev, refresh_status=status_missing))
            tally[status_missing] += 1
    extra = {"refresh": dict(sorted(tally.items())), "hand_curated": sum(bool(e.get("hand_curated")) for e in entries)}
    return write_snapshot(entries, out_path, stamp or _stamp(), extra)
