"""Wikipedia test-only sets (split "wiki"): instrument/voice ranges and animal sounds, from page text or the snapshot."""

from pipeline.wiki.client import WikiClient, WikiPage, refresh_animal_snapshot, refresh_snapshot
from pipeline.wiki.items import wiki_animal_items, wiki_pitch_items
from pipeline.wiki.parser import extract_range, find_range, parse_animal_sounds, parse_note
from pipeline.wiki.snapshot import ANIMAL_SOUNDS_PATH, RANGES_PATH, load_snapshot

__all__ = [
    "WikiClient",
    "WikiPage",
    "refresh_snapshot",
    "refresh_animal_snapshot",
    "wiki_pitch_items",
    "wiki_animal_items",
    "parse_note",
    "extract_range",
    "find_range",
    "parse_animal_sounds",
    "load_snapshot",
    "RANGES_PATH",
    "ANIMAL_SOUNDS_PATH",
]
