"""What flows through the extract and write stages: clip and pair text as untrusted data, and the proposals a
backend (rules or LLM) makes about them. Proposals are only candidates: `validate` decides what is kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from pipeline.extract.lexicon import CATEGORIES
from pipeline.extract.text import clean_text, split_title, strip_instructions

__all__ = [
    "ClipText",
    "PairText",
    "Failure",
    "CategoryProposal",
    "CategoriseReply",
    "AnimalProposal",
    "SentenceProposal",
    "make_clip_text",
    "make_pair_text",
]

_MAX_TAGS = 30


@dataclass(frozen=True)
class ClipText:
    """A clip's metadata, cleaned and capped. `*_ground` fields have instruction-like sentences removed:
    they are the only text an answer may be grounded in."""

    clip_id: str
    title: str
    tags: tuple[str, ...]
    description: str
    captions: tuple[str, ...]
    metadata_ground: str  # title words + tags + description, instructions removed
    full_ground: str  # metadata_ground + captions, instructions removed
    injected: bool  # some field held instruction-like text

    def as_data(self, local_id: str) -> dict:
        """The clip as it is shown to a model: a JSON object of data fields, never spliced into instructions."""
        return {"id": local_id, "title": self.title, "tags": list(self.tags), "description": self.description,
                "captions": list(self.captions)}


@dataclass(frozen=True)
class PairText:
    """Two sound sources to compare, with their captions; never their measurements or the label."""

    pair_id: str
    task: str
    source_a: str
    source_b: str
    caption_a: str
    caption_b: str
    dimension: str
    choices: tuple[str, ...]
    templates: tuple[str, ...] = field(default=())

    def as_data(self) -> dict:
        return {"source_a": self.source_a, "source_b": self.source_b, "caption_a": self.caption_a, "caption_b": self.caption_b}


@dataclass(frozen=True)
class Failure:
    """A unit a backend or a validator could not turn into an output, with a machine-readable reason."""

    reason: str
    detail: str = ""


# The reply models are the one source of the JSON schemas sent to the endpoint (llm.strict_schema, llm.bounded_schema).
# Their checks are lenient on purpose (a category outside the enum is a per-clip reject in validate, not a failed
# batch). The `maxLength` and `pattern` bounds go only into the bounded schema that a grammar-constrained server
# (llama.cpp) compiles, so that a small model cannot loop inside a string until max_tokens; pydantic does not enforce
# them (validate gives the reason when a reply breaks them).
# a source or animal name: lower-case words, as validate's canonical form (no file names, note names or numbers)
_NAME = {"pattern": r"^([a-z]{1,20}( [a-z]{1,20}){0,2})?$"}
_SOUND_WORD = {"pattern": r"^[A-Za-z][A-Za-z' -]{0,29}$"}  # an onomatopoeia ("Woof", "cock-a-doodle-doo")
# one sentence, one [MASK], no quotes, braces, brackets or line breaks around it (validate.MAX_SENTENCE_CHARS = 240)
_PLAIN = r'[^\[\]{}<>"\\\n\r\t]'
MASK_SENTENCE = rf"^{_PLAIN}{{0,80}}\[MASK\]{_PLAIN}{{1,80}}$"  # an animal's sound: a short sentence
COMPARISON_SENTENCE = rf"^{_PLAIN}{{1,110}}\[MASK\] than {_PLAIN}{{1,110}}$"


class CategoryProposal(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field("", json_schema_extra={"maxLength": 8})
    category: str = Field(json_schema_extra={"enum": list(CATEGORIES)})
    source: str = Field("", json_schema_extra=_NAME)
    confidence: float = Field(ge=0.0, le=1.0)


class CategoriseReply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    clips: list[CategoryProposal]


class AnimalProposal(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sentence: str = Field(json_schema_extra={"pattern": MASK_SENTENCE})
    answer: str = Field(json_schema_extra=_NAME)
    onomatopoeia: str = Field(json_schema_extra=_SOUND_WORD)


class SentenceProposal(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sentence: str = Field(json_schema_extra={"pattern": COMPARISON_SENTENCE})
    guess: str = Field("", json_schema_extra={"maxLength": 16})


def _as_list(v: object) -> list:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    try:
        return list(v)  # numpy arrays from parquet
    except TypeError:
        return [v]


def make_clip_text(clip_id: str, title: object, tags: object, description: object, captions: object, max_chars: int) -> ClipText:
    """Clean every field (control characters out, length capped) and precompute the grounding texts."""
    t = clean_text(split_title(clean_text(title, max_chars)), max_chars)
    tg = tuple(x for x in (clean_text(tag, 64) for tag in _as_list(tags)[:_MAX_TAGS]) if x)
    d = clean_text(description, max_chars)
    caps = tuple(x for x in (clean_text(c, max_chars) for c in _as_list(captions)[:8]) if x)
    injected = False
    meta_parts, cap_parts = [], []
    for part in (t, " ".join(x.replace("-", " ").replace("_", " ") for x in tg), d):
        kept, hit = strip_instructions(part)
        injected |= hit
        meta_parts.append(kept)
    for c in caps:
        kept, hit = strip_instructions(c)
        injected |= hit
        cap_parts.append(kept)
    meta = " . ".join(p for p in meta_parts if p)
    full = " . ".join(p for p in [meta, *cap_parts] if p)
    return ClipText(str(clip_id), t, tg, d, caps, meta, full, injected)


def make_pair_text(pair_id: str, task: str, source_a: str, source_b: str, caption_a: object, caption_b: object,
                   spec: dict, max_chars: int) -> PairText:
    return PairText(str(pair_id), str(task), clean_text(source_a, 80), clean_text(source_b, 80),
                    clean_text(caption_a, max_chars), clean_text(caption_b, max_chars), str(spec.get("dimension", "")),
                    tuple(spec.get("choices", ())), tuple(spec.get("templates", ())))
