"""Item sources of recognition tasks: small pure functions a task's YAML names (`item_source: !function ...`).

Each takes the build's tables — `clips` (read: clip_id, title, description, captions ...), `categories` (extract:
clip_id, category, source_name, confidence) and `animal_items` (extract: clip_id, sentence, answer, description,
spans) — the task's spec and its `item_source_args`, and returns one candidate per clip with the columns
SOURCE_COLUMNS. The filter stage turns candidates into items (splits, ambiguity, rare answers, review flags).
"""

from __future__ import annotations

import re

import pandas as pd

from benchmark.errors import ConfigError
from benchmark.schema import MASK
from benchmark.text import capitalise, with_article

__all__ = ["SOURCE_COLUMNS", "extracted_animal_items", "caption_descriptions"]

SOURCE_COLUMNS = ["clip_id", "sentence", "answer", "description", "spans", "confidence"]
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")
_JOINERS = {"and"}


def _confidence(tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    cats = tables.get("categories")
    if cats is None or cats.empty:
        return {}
    return dict(zip(cats["clip_id"], cats["confidence"].astype(float)))


def extracted_animal_items(tables: dict[str, pd.DataFrame], spec=None) -> pd.DataFrame:
    """The extract stage's animal items (LLM or rules backend), each with its clip's categorisation confidence."""
    rows = tables["animal_items"]
    conf = _confidence(tables)
    out = pd.DataFrame({
        "clip_id": rows["clip_id"].astype(str),
        "sentence": rows["sentence"].astype(str),
        "answer": rows["answer"].astype(str),
        "description": rows["description"].astype(str),
        "spans": [list(s) for s in rows["spans"]],
        "confidence": [conf.get(c, 1.0) for c in rows["clip_id"]],
    })
    return out[SOURCE_COLUMNS]


def _describing_run(text: str, descriptors: set[str], max_words: int) -> list[str]:
    """The first run of two or more descriptor words in text, separated only by commas, spaces or "and"."""
    low = text.lower()
    run: list[str] = []
    prev_end = 0
    for m in _WORD.finditer(low):
        word, between = m.group(0), low[prev_end:m.start()]
        joined = bool(run) and (re.fullmatch(r"\s*,?\s+", between) is not None)
        if word in _JOINERS and run and joined:
            prev_end = m.end()  # "bright and reedy": the run goes on
            continue
        if word in descriptors and (not run or joined):
            run.append(word)
        else:
            if len(run) >= 2:
                return run[:max_words]
            run = [word] if word in descriptors else []
        prev_end = m.end()
    return run[:max_words] if len(run) >= 2 else []


def caption_descriptions(tables: dict[str, pd.DataFrame], spec, *, template: str, descriptors: list[str],
                         max_words: int = 2) -> pd.DataFrame:
    """Clips of the task's categories whose captions describe their sound with two or more of `descriptors`
    ("a bright, reedy sound"): the sentence is `template` with {description} ("bright, reedy") or {a_description}
    ("a bright, reedy"; {A_description} capitalised) and the answer is the clip's source name from extract.

    "A [MASK] makes a bright, reedy sound." -> oboe. A description that names its answer is skipped."""
    if template.count(MASK) != 1 or not re.search(r"\{(a_|A_)?description\}", template):
        raise ConfigError(f"{getattr(spec, 'path', '')}: item_source_args.template {template!r} needs one {MASK} and {{description}}")
    words = {d.strip().lower() for d in descriptors if d.strip()}
    cats = tables["categories"]
    wanted = set(getattr(spec, "categories", None) or [])
    cats = cats[cats["category"].isin(wanted)] if wanted else cats
    source = dict(zip(cats["clip_id"], cats["source_name"].astype(str)))
    conf = dict(zip(cats["clip_id"], cats["confidence"].astype(float)))
    rows = []
    clips = tables["clips"]
    for clip_id, captions in zip(clips["clip_id"], clips["captions"]):
        answer = source.get(clip_id, "").strip().lower()
        if not answer:
            continue
        run = _describing_run(" ".join(str(c) for c in captions), words, int(max_words))
        if not run or any(w in answer.split() for w in run):
            continue
        description = ", ".join(run)
        article = with_article(description)
        sentence = (template.replace("{description}", description).replace("{a_description}", article)
                    .replace("{A_description}", capitalise(article)))
        rows.append({"clip_id": str(clip_id), "sentence": sentence, "answer": answer, "description": description,
                     "spans": [description], "confidence": conf.get(clip_id, 1.0)})
    return pd.DataFrame(rows, columns=SOURCE_COLUMNS)
