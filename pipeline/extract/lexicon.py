"""The rules backend's knowledge: names (with aliases in a few languages), categories, animal sounds and typical
pitch / loudness / length of common sound sources, read from `lexicon.yaml` beside this module.

It is general knowledge written by hand, shared by nothing else: the demo corpus generator has its own words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from benchmark.errors import ConfigError
from benchmark.hashing import sha256_file
from pipeline.extract.text import singular_forms, stem_forms, tokenize

__all__ = ["Source", "Mention", "Lexicon", "load_lexicon", "LEXICON_PATH", "CATEGORIES"]

DATA_FILES = ("lexicon.yaml",)  # in the code hash of every stage that imports this module
LEXICON_PATH = Path(__file__).resolve().parent / "lexicon.yaml"
CATEGORIES = ("animal", "music", "object", "environment", "human", "other")
_MAX_ALIAS_TOKENS = 3


@dataclass(frozen=True)
class Source:
    """One sound source the lexicon knows: `name` is canonical (lower case, singular)."""

    name: str
    category: str
    aliases: tuple[str, ...]
    sounds: tuple[str, ...] = ()  # animals: onomatopoeia and sound verbs, most typical first
    pitch_hz: float = math.nan
    loudness_db: float = math.nan
    duration_s: float = math.nan
    parent: str = ""  # animals: a broader animal ("owl" -> "bird")
    shadowed_by: tuple[str, ...] = ()  # a mention of this name is dropped when one of these is named too


@dataclass(frozen=True)
class Mention:
    """A source named in a text: its canonical name and the first token index where it was found."""

    name: str
    start: int


@dataclass
class Lexicon:
    version: str
    sources: dict[str, Source]
    cues: dict[str, dict[str, tuple[tuple[str, ...], ...]]]
    blocked: frozenset[str]
    _alias_index: dict[tuple[str, ...], str] = field(default_factory=dict, repr=False)
    _sound_index: dict[str, set[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for src in self.sources.values():
            for alias in (src.name, *src.aliases):
                key = tuple(tokenize(alias))
                if key and key not in self._alias_index:
                    self._alias_index[key] = src.name
            for sound in src.sounds:
                self._sound_index.setdefault(_sound_key(sound), set()).add(src.name)

    # ----- names
    @property
    def animals(self) -> list[str]:
        """The animal answer vocabulary, sorted."""
        return sorted(n for n, s in self.sources.items() if s.category == "animal")

    def normalise(self, word: str) -> str:
        """A name as the lexicon's canonical source ("Puppies" -> "dog", "Geige" -> "violin"); "" if unknown."""
        toks = tokenize(word)
        if toks and toks[0] in ("a", "an", "the"):
            toks = toks[1:]
        if not toks:
            return ""
        key = tuple(toks)
        if key in self._alias_index:
            return self._alias_index[key]
        for form in singular_forms(toks[-1])[1:]:
            cand = key[:-1] + (form,)
            if cand in self._alias_index:
                return self._alias_index[cand]
        return ""

    def mentions(self, text: str) -> list[Mention]:
        """Every known source named in a text, longest alias first, in order of appearance."""
        toks = tokenize(text)
        out: list[Mention] = []
        i = 0
        while i < len(toks):
            hit = None
            for n in range(min(_MAX_ALIAS_TOKENS, len(toks) - i), 0, -1):
                window = toks[i : i + n]
                if n == 1 and window[0] in self.blocked:
                    break
                for last in singular_forms(window[-1]):
                    name = self._alias_index.get(tuple(window[:-1]) + (last,))
                    if name:
                        hit = (name, n)
                        break
                if hit:
                    break
            if hit:
                out.append(Mention(hit[0], i))
                i += hit[1]
            else:
                i += 1
        named = {m.name for m in out}
        return [m for m in out if not named.intersection(self.sources[m.name].shadowed_by)]

    def ancestors(self, name: str) -> list[str]:
        out, cur = [], self.sources[name].parent if name in self.sources else ""
        while cur and cur not in out:
            out.append(cur)
            cur = self.sources[cur].parent if cur in self.sources else ""
        return out

    def related(self, a: str, b: str) -> bool:
        """True when two animals are one and the same or one is a kind of the other (owl / bird)."""
        return a == b or a in self.ancestors(b) or b in self.ancestors(a)

    # ----- animal sounds
    def sounds_in(self, text: str, animal: str) -> list[str]:
        """The animal's sound words found in a text (any verb form), as the lexicon spells them, in text order."""
        known = {_sound_key(s): s for s in self.sources[animal].sounds} if animal in self.sources else {}
        found: list[str] = []
        toks = tokenize(text)
        for i, tok in enumerate(toks):
            joined = (tok + toks[i + 1]) if i + 1 < len(toks) else tok  # "hee haw" -> "heehaw"
            for form in (*stem_forms(tok), joined):
                if form in known and known[form] not in found:
                    found.append(known[form])
                    break
        return found

    def is_sound_of(self, word: str, animal: str) -> bool:
        """True when `word` (any verb form) is one of the animal's or its ancestors' sounds."""
        names = {animal, *self.ancestors(animal)}
        return any(names & self._sound_index.get(_sound_key(f), set()) for f in stem_forms(_fold_word(word)))

    # ----- typical values
    def typical(self, name: str, dimension: str) -> float:
        """Typical pitch (Hz), duration (s) or loudness (dB SPL) of a source; NaN if unknown."""
        src = self.sources.get(name) or self.sources.get(self.normalise(name))
        if src is None:
            return math.nan
        return {"pitch": src.pitch_hz, "duration": src.duration_s, "loudness": src.loudness_db}.get(dimension, math.nan)

    def cue_score(self, text: str, dimension: str) -> int:
        """(# words saying more) - (# words saying less) of a dimension in a caption ("high-pitched" +1, "deep" -1)."""
        toks = tokenize(text)
        cues = self.cues.get(dimension, {})
        score = 0
        for sign, weight in (("up", 1), ("down", -1)):
            for phrase in cues.get(sign, ()):
                n = len(phrase)
                score += weight * sum(1 for i in range(len(toks) - n + 1) if tuple(toks[i : i + n]) == phrase)
        return score


def _fold_word(word: str) -> str:
    toks = tokenize(word)
    return "".join(toks)


def _sound_key(sound: str) -> str:
    return "".join(tokenize(sound))


@lru_cache(maxsize=4)
def load_lexicon(path: str | Path = LEXICON_PATH) -> Lexicon:
    """Read and index a lexicon file (cached per path: it is static package data)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{p}: cannot read lexicon ({e})") from e
    sources: dict[str, Source] = {}
    for name, d in (data.get("animals") or {}).items():
        sources[name] = Source(name, "animal", tuple(d.get("aliases", ())), tuple(d.get("sounds", ())),
                               float(d.get("pitch_hz", math.nan)), float(d.get("loudness_db", math.nan)),
                               float(d.get("duration_s", math.nan)), d.get("parent") or "", tuple(d.get("shadowed_by") or ()))
    for name, d in (data.get("sources") or {}).items():
        if d.get("category") not in CATEGORIES:
            raise ConfigError(f"{p}: source {name!r} has unknown category {d.get('category')!r}")
        sources[name] = Source(name, d["category"], tuple(d.get("aliases", ())), (), float(d.get("pitch_hz", math.nan)),
                               float(d.get("loudness_db", math.nan)), float(d.get("duration_s", math.nan)))
    cues = {dim: {sign: tuple(tuple(tokenize(ph)) for ph in phrases) for sign, phrases in d.items()}
            for dim, d in (data.get("cues") or {}).items()}
    version = f"lexicon-v{data.get('version', 0)}-{sha256_file(p)[:8]}"
    return Lexicon(version, sources, cues, frozenset(data.get("blocked") or ()))
