"""Turn the wiki snapshots into test-only items (split "wiki", source "wiki") of the tasks whose YAML names the
snapshot (`wiki_source: ranges` or `animal_sounds`).

Pitch: every pair of sources whose characteristic pitches (geometric mean of the range, Hz) differ by a ratio of
at least `min_gap` becomes one item, "The sound of a violin is typically [MASK] than the sound of a tuba." ->
"higher". Labels are balanced by construction: pairs sorted by group id (a hash of the unordered pair) take
"higher" and "lower" in turn, and the two sources are ordered to give that label.

Animal: every sound that names exactly one animal of the snapshot becomes one item,
"Hoot is the sound an owl makes." with the animal masked -> "owl".
"""

from __future__ import annotations

from collections import Counter

from benchmark.errors import InputError
from benchmark.hashing import stable_hash, unit_interval
from benchmark.schema import MASK, Item, Reject, item_id
from benchmark.text import capitalise, render_comparison, with_article
from pipeline.wiki.parser import parse_note
from pipeline.wiki.snapshot import characteristic_hz

__all__ = [
    "PITCH_TEMPLATES",
    "ANIMAL_TEMPLATES",
    "build_pitch_items",
    "build_animal_items",
    "wiki_pitch_items",
    "wiki_animal_items",
    "label_balance",
]

STAGE = "wiki"
# {a}/{b}: the first/second source with its article ("a violin", "an oboe"); {A}/{B}: capitalised (benchmark.text).
PITCH_TEMPLATES = ["The sound of {a} is typically [MASK] than the sound of {b}."]
# {sound}/{Sound}: the onomatopoeia; {a}: "a" or "an" for the masked animal.
ANIMAL_TEMPLATES = ["{Sound} is the sound {a} [MASK] makes."]



def _pick(templates: list[str], key: str) -> str:
    """A template chosen by a stable hash of the item's group (never by row order)."""
    if not templates:
        raise InputError("wiki: no templates given")
    return templates[int(unit_interval(key, "template") * len(templates))]


def _range_hz(entry: dict) -> float:
    """Characteristic pitch of an entry in Hz, recomputed from its notes (the snapshot's Hz are a convenience)."""
    if not parse_note(entry["low_note"]) < parse_note(entry["high_note"]):
        raise InputError(f"wiki range {entry.get('name')!r}: lowest note {entry['low_note']} is not below {entry['high_note']}")
    return characteristic_hz(entry)


def _pair_group(a: str, b: str) -> str:
    return stable_hash({"wiki_pair": sorted([a, b])})


def build_pitch_items(entries: list[dict], min_gap: float, templates: list[str], *, task: str,
                      choices: tuple[str, str] = ("higher", "lower")) -> tuple[list[Item], list[Reject]]:
    """Pitch-comparison items of `task` from range entries, and rejects (bad entries; pairs closer than min_gap).
    choices: the task's answers, (first is higher, first is lower)."""
    if min_gap < 1.0:
        raise InputError(f"wiki: min_gap {min_gap} must be a ratio >= 1")
    for t in templates:
        if t.count(MASK) != 1 or not ("{a}" in t or "{A}" in t) or not ("{b}" in t or "{B}" in t):
            raise InputError(f"wiki: pitch template {t!r} needs one {MASK}, {{a}} or {{A}}, and {{b}} or {{B}}")
    rejects: list[Reject] = []
    sources: dict[str, tuple[dict, float]] = {}
    for e in entries:
        name = str(e.get("name", "")).strip()
        if not name:
            rejects.append(Reject(stage=STAGE, key=repr(e)[:80], reason="no_name"))
            continue
        if name in sources:
            rejects.append(Reject(stage=STAGE, key=name, reason="duplicate_name"))
            continue
        try:
            sources[name] = (e, _range_hz(e))
        except (InputError, KeyError, TypeError) as err:
            rejects.append(Reject(stage=STAGE, key=name, reason="bad_range", detail=str(err)))

    pairs = []
    names = sorted(sources)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ha, hb = sources[a][1], sources[b][1]
            group = _pair_group(a, b)
            if max(ha, hb) / min(ha, hb) < min_gap:
                rejects.append(Reject(stage=STAGE, key=group, reason="below_min_gap", detail=f"{a} / {b}: {ha:.1f} Hz vs {hb:.1f} Hz"))
                continue
            pairs.append((group, a, b))

    items = []
    for k, (group, a, b) in enumerate(sorted(pairs)):
        label = choices[k % 2]
        hi, lo = (a, b) if sources[a][1] > sources[b][1] else (b, a)
        first, second = (hi, lo) if k % 2 == 0 else (lo, hi)
        (e1, v1), (e2, v2) = sources[first], sources[second]
        sentence = render_comparison(_pick(templates, group), first, second)
        titles = [str(e1.get("page_title", first)), str(e2.get("page_title", second))]
        items.append(
            Item(
                id=item_id(task, sentence, label, titles),
                task=task,
                split="wiki",
                sentence=sentence,
                answer=label,
                spans=[first, second],
                span1=first,
                span2=second,
                group_id=group,
                basis="wiki-range",
                value1=round(v1, 4),
                value2=round(v2, 4),
                source="wiki",
            )
        )
    return sorted(items, key=lambda it: it.id), rejects


def build_animal_items(entries: list[dict], templates: list[str] | None = None, *, task: str) -> tuple[list[Item], list[Reject]]:
    """Animal-sound items of `task`, one per sound that belongs to exactly one animal, and rejects
    (a sound shared by several animals, a sound that names its animal, a bad entry)."""
    templates = templates or ANIMAL_TEMPLATES
    for t in templates:
        if t.count(MASK) != 1 or not ("{sound}" in t or "{Sound}" in t):
            raise InputError(f"wiki: animal template {t!r} needs one {MASK} and {{sound}} or {{Sound}}")
    rejects: list[Reject] = []
    animals: dict[str, dict] = {}
    for e in entries:
        name = str(e.get("name", "")).strip().lower()
        sounds = e.get("sounds")
        if not name or not isinstance(sounds, list) or not sounds:
            rejects.append(Reject(stage=STAGE, key=name or repr(e)[:80], reason="bad_entry", detail="needs a name and a list of sounds"))
            continue
        if name in animals:
            rejects.append(Reject(stage=STAGE, key=name, reason="duplicate_name"))
            continue
        animals[name] = e

    owners = Counter(s.strip().lower() for e in animals.values() for s in dict.fromkeys(e["sounds"]))
    items = []
    for name, e in sorted(animals.items()):
        for sound in dict.fromkeys(s.strip().lower() for s in e["sounds"]):
            key = f"{name}:{sound}"
            if owners[sound] > 1:
                who = sorted(n for n, o in animals.items() if sound in (s.strip().lower() for s in o["sounds"]))
                rejects.append(Reject(stage=STAGE, key=key, reason="ambiguous_sound", detail=", ".join(who)))
                continue
            if sound in animals or sound in name.split() or name in sound.split():
                rejects.append(Reject(stage=STAGE, key=key, reason="sound_names_animal", detail="the sound is an animal's name"))
                continue
            group = stable_hash({"wiki_animal": name})
            article = with_article(name).split(" ", 1)[0]
            sentence = _pick(templates, key).format(sound=sound, Sound=capitalise(sound), a=article)
            items.append(
                Item(
                    id=item_id(task, sentence, name, [str(e.get("page_title", ""))]),
                    task=task,
                    split="wiki",
                    sentence=sentence,
                    answer=name,
                    spans=[sound],
                    description=sound,
                    span1=sound,
                    group_id=group,
                    basis="wiki-list",
                    source="wiki",
                )
            )
    return sorted(items, key=lambda it: it.id), rejects


def wiki_pitch_items(entries: list[dict], min_gap: float, templates: list[str], *, task: str) -> list[Item]:
    """Pitch-comparison items (split "wiki") from range entries; see build_pitch_items."""
    return build_pitch_items(entries, min_gap, templates, task=task)[0]


def wiki_animal_items(entries: list[dict], templates: list[str] | None = None, *, task: str) -> list[Item]:
    """Animal-sound items (split "wiki") from animal-sound entries; see build_animal_items."""
    return build_animal_items(entries, templates, task=task)[0]


def label_balance(items: list[Item]) -> dict[str, int]:
    """How many items carry each answer."""
    return dict(sorted(Counter(it.answer for it in items).items()))
