"""The one schema module: clips, measurements, items and releases.

Tables travel between stages as parquet; these pydantic models are their row schemas, and
`COLUMNS` gives each table's column order so every writer produces the same layout.
Units are in the names: `_s` seconds, `_hz` Hz, `_db`/`_dbfs` decibels.
"""

from __future__ import annotations

import math
import typing
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from benchmark.hashing import stable_hash

__all__ = [
    "MASK",
    "SPLITS",
    "Clip",
    "Reject",
    "Measurement",
    "Item",
    "item_id",
    "COLUMNS",
    "ITEM_ARROW_SCHEMA",
    "LIST_COLUMNS",
    "FLOAT_COLUMNS",
    "BOOL_COLUMNS",
    "csv_field",
    "license_kind",
    "most_restrictive_license",
]

MASK = "[MASK]"
SPLITS = ("train", "dev", "test", "wiki")


class Clip(BaseModel):
    """One audio clip of the corpus, as the reader found it. Audio stays where it is (shard + member)."""

    model_config = ConfigDict(extra="forbid")

    clip_id: str  # "<source>/<id>", e.g. "freesound/113772"
    source: str  # LAION subset, e.g. "freesound"
    shard: str  # tar path relative to the corpus root; "" for a loose file
    member: str  # member name in the tar (or path relative to the corpus root for a loose file)
    offset: int  # byte offset of the member's data in the tar (0 for a loose file)
    size: int  # bytes of audio
    captions: list[str]
    tags: list[str]
    title: str
    description: str
    license: str  # as given (usually a creativecommons URL); "" when unknown
    license_kind: str  # cc0 | cc-by | cc-by-nc | sampling+ | non-cc | unknown
    license_flag: bool  # True when the licence is not Creative Commons or unknown (kept as given, never guessed)
    author: str
    url: str
    duration_s: float
    sample_rate: int
    channels: int
    audio_sha256: str  # content hash of the audio bytes; the same upload under two ids shares it


class Reject(BaseModel):
    """Something a stage would not keep, and why. Rejects are data: kept, counted, never silent."""

    stage: str
    key: str  # clip id, member name, pair id, item id ...
    reason: str  # a short machine-readable reason, e.g. "truncated_tar"
    detail: str = ""


class Measurement(BaseModel):
    """What the measure stage found in one clip. NaN, never a made-up number, where a value does not exist."""

    clip_id: str
    audio_sha256: str
    f0_hz: float  # median f0 over confidently voiced frames; NaN when unpitched
    voiced_frac: float
    f0_confidence: float
    f0_iqr_cents: float  # stability: inter-quartile range of voiced f0, in cents
    pitched: bool
    estimator: str  # "pyin", "crepe-tiny", "crepe-full", ...
    f0_check_hz: float = math.nan  # second estimator's f0 in cross-check mode
    estimator_disagree: bool = False
    centroid_hz: float  # spectral centroid over the active part (brightness)
    loudness_lufs: float
    rms_dbfs: float
    peak_dbfs: float
    duration_s: float
    active_duration_s: float
    analysed_s: float
    channels: int


class Item(BaseModel):
    """One benchmark item. Comparison tasks fill span1/span2 (and the pair's measurement);
    the animal task fills description (the onomatopoeia)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    task: str
    split: Literal["train", "dev", "test", "wiki"]
    sentence: str
    answer: str
    spans: list[str]  # auditory-knowledge spans, as substrings of the sentence
    description: str = ""
    span1: str = ""
    span2: str = ""
    group_id: str
    clip_ids: list[str] = Field(default_factory=list)
    licenses: list[str] = Field(default_factory=list)
    review_flag: bool = False
    basis: str = ""  # comparison tasks: "f0", "centroid", "duration", "loudness", "wiki-range" ...
    value1: float = math.nan  # measurement of span1's sound, in the basis's unit
    value2: float = math.nan
    source: str = ""  # where the item came from: "corpus", "wiki", "official"

    @field_validator("sentence")
    @classmethod
    def _one_mask(cls, v: str) -> str:
        if v.count(MASK) != 1:
            raise ValueError(f"sentence must hold exactly one {MASK}: {v!r}")
        return v

    @model_validator(mode="after")
    def _spans_in_sentence(self) -> Item:
        low = self.sentence.lower()
        for span in self.spans:
            if span.lower() not in low:
                raise ValueError(f"span {span!r} is not in the sentence {self.sentence!r}")
        return self


def item_id(task: str, sentence: str, answer: str, sources: list[str]) -> str:
    """Stable id: a hash of the item's content and its sources (clip ids or wiki pages), never of row order."""
    return stable_hash({"task": task, "sentence": sentence, "answer": answer, "sources": sorted(sources)})


COLUMNS = {
    "clips": list(Clip.model_fields.keys()),
    "rejects": list(Reject.model_fields.keys()),
    "measurements": list(Measurement.model_fields.keys()),
    "items": list(Item.model_fields.keys()),
}



def _arrow_type(annotation) -> pa.DataType:
    """The Arrow type of an Item field, from its annotation: list[str] → list<string>, float → float64,
    bool → bool, str and Literal[...] → string."""
    origin = typing.get_origin(annotation)
    if origin is list:
        return pa.list_(pa.string())
    if annotation is float:
        return pa.float64()
    if annotation is bool:
        return pa.bool_()
    if annotation is str or origin is Literal:
        return pa.string()
    raise TypeError(f"schema.Item: no Arrow type for annotation {annotation!r}")


# The release's parquet schema, derived from schema.Item (one declaration; the columns and their types follow it).
ITEM_ARROW_SCHEMA = pa.schema([pa.field(name, _arrow_type(f.annotation)) for name, f in Item.model_fields.items()])
LIST_COLUMNS = tuple(f.name for f in ITEM_ARROW_SCHEMA if pa.types.is_list(f.type))
FLOAT_COLUMNS = tuple(f.name for f in ITEM_ARROW_SCHEMA if pa.types.is_floating(f.type))
BOOL_COLUMNS = tuple(f.name for f in ITEM_ARROW_SCHEMA if pa.types.is_boolean(f.type))


def csv_field(column: str | dict) -> tuple[str, str]:
    """One entry of a task's `csv_columns` as (CSV header, Item field): "sentence" → ("sentence", "sentence");
    {"animal": "answer"} → ("animal", "answer"). The field must be a scalar schema.Item field."""
    if isinstance(column, dict):
        if len(column) != 1:
            raise ValueError(f"csv column {column!r}: a mapping names one column, {{header: item field}}")
        header, name = next(iter(column.items()))
    else:
        header, name = column, column
    if name not in Item.model_fields or name in LIST_COLUMNS:
        allowed = [n for n in Item.model_fields if n not in LIST_COLUMNS]
        raise ValueError(f"csv column {header!r}: {name!r} is not a scalar schema.Item field ({', '.join(allowed)})")
    return str(header), str(name)


_RESTRICTIVENESS = ["cc0", "cc-by", "sampling+", "cc-by-nc", "non-cc", "unknown"]


def license_kind(license: str) -> str:
    """Classify a licence string (usually a creativecommons.org URL) without guessing."""
    s = (license or "").strip().lower()
    if not s:
        return "unknown"
    if "creativecommons.org" not in s and not s.startswith("cc"):
        return "non-cc"
    if "publicdomain/zero" in s or s.startswith("cc0") or "/zero/" in s:
        return "cc0"
    if "sampling+" in s or "sampling/plus" in s or "sampling+/" in s:
        return "sampling+"
    if "by-nc" in s:
        return "cc-by-nc"
    if "/by/" in s or s.startswith("cc-by") or "/by-sa/" in s or "/by-nd/" in s:
        return "cc-by"
    return "non-cc"


def most_restrictive_license(kinds: list[str]) -> str:
    """The most restrictive licence kind among the given ones (cc0 < cc-by < sampling+ < cc-by-nc < non-cc < unknown)."""
    if not kinds:
        return "unknown"
    return max(kinds, key=lambda k: _RESTRICTIVENESS.index(k) if k in _RESTRICTIVENESS else len(_RESTRICTIVENESS))
