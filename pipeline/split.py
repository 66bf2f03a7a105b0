"""Split clips into train/dev/test by hashing groups, never rows.

A group is one audio content hash — the same upload under two ids is one group — joined with every other clip that
states the same recognition fact: clips whose recognition candidates share (task, description / sound word,
answer) ("moo" → cow) are one group, so one fact reworded ("A [MASK] goes moo." / "Moo! That must be a [MASK].")
never straddles splits — and with every near-duplicate of its audio (the same recording re-encoded or trimmed, as
often uploaded twice to Freesound: the measure stage's fingerprints, `pipeline.measure.fingerprint`). A group (with
every item that uses it) lives in one split only; its id is the smallest audio hash in it. The assignment depends on the group id and the seed alone, so adding shards never
moves an existing clip to another split.

Held-out names (`split.holdout_frac` > 0): a fraction of the names items are built on — a clip's source name, or for
an animal item its onomatopoeia — chosen by hashing the name, never occurs in train: every group with a clip of a
held-out name goes to dev or test (by its group hash, in the ratio of their fractions). Test then asks about sources
and sound words no training item mentions: what a model can only answer from the audio, not from a name it memorised.
A held-out sound word never takes every train example of its animal away: of an animal whose words all hash below
the fraction, the word with the highest hash stays in train, so every animal of the test is a train answer too (an
answer no model ever saw in training measures nothing but a prior).
"""

from __future__ import annotations

import pandas as pd

from benchmark.errors import ConfigError
from benchmark.hashing import unit_interval

__all__ = ["assign_split", "held_out_names", "split_clips", "clip_names", "clip_facts", "fact_key", "SPLIT_ORDER"]

SPLIT_ORDER = ("train", "dev", "test")


def assign_split(group_id: str, seed: int | str, fractions: dict[str, float]) -> str:
    """The split of one group: a deterministic point in [0, 1) against the cumulative fractions."""
    total = sum(fractions.get(s, 0.0) for s in SPLIT_ORDER)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"split.fractions must sum to 1 over {SPLIT_ORDER} (got {total})")
    u = unit_interval(group_id, seed)
    acc = 0.0
    for s in SPLIT_ORDER:
        acc += fractions.get(s, 0.0)
        if u < acc:
            return s
    return SPLIT_ORDER[-1]


def held_out_names(names, seed: int | str, frac: float, answers=None) -> set[str]:
    """The names (lower-cased) held out of train: those whose hash with the seed falls below frac. answers (beside
    names, "" where a name is no answer's cue): per answer, when every one of its names would be held out, the one
    with the highest hash is kept in train, so no answer loses all its train examples."""
    if not 0.0 <= frac < 1.0:
        raise ConfigError(f"split.holdout_frac = {frac}: expected 0 <= holdout_frac < 1")
    low = [str(x).strip().lower() for x in names]
    u = {n: unit_interval(n, f"{seed}/holdout") for n in low if n}
    held = {n for n, h in u.items() if h < frac}
    by_answer: dict[str, set[str]] = {}
    for n, a in zip(low, answers if answers is not None else [""] * len(low)):
        if n and a:
            by_answer.setdefault(str(a), set()).add(n)
    for words in by_answer.values():
        if words <= held:
            held.discard(max(words, key=lambda n: (u[n], n)))
    return held


def fact_key(task: str, description, answer) -> str:
    """A recognition fact: the task, its description or sound word and its answer, case and spacing folded."""
    norm = lambda x: " ".join(str(x or "").split()).lower()  # noqa: E731
    return f"{task}|{norm(description)}|{norm(answer)}"


def clip_facts(tables: dict[str, pd.DataFrame], params_all: dict) -> pd.DataFrame:
    """clip_id, fact for every candidate of every enabled recognition task (its item source run on the build's
    tables, as the filter stage runs it)."""
    from benchmark.tasks import recognition_tasks
    from pipeline.filter import source_candidates

    rows = []
    for spec in recognition_tasks(params_all):
        cand = source_candidates(spec, tables)
        rows += [{"clip_id": c, "fact": fact_key(spec.name, d, a)}
                 for c, d, a in zip(cand["clip_id"], cand["description"], cand["answer"])]
    return pd.DataFrame(rows, columns=["clip_id", "fact"])


def _groups(df: pd.DataFrame, facts: pd.DataFrame | None, near_pairs: list[tuple[str, str]] = ()) -> list[str]:
    """Per clip row: its group id — the smallest audio hash among the clips it is joined to by a shared audio hash,
    a shared recognition fact or a near-duplicate pair."""
    from benchmark.metrics import connected_components

    fact_of: dict[str, list[str]] = {}
    if facts is not None:
        for c, f in zip(facts["clip_id"], facts["fact"]):
            fact_of.setdefault(c, []).append(f)
    for a, b in near_pairs:  # a pair is one key both clips hold
        fact_of.setdefault(a, []).append(f"near:{a}|{b}")
        fact_of.setdefault(b, []).append(f"near:{a}|{b}")
    keys = [[("audio", sha)] + [("fact", f) for f in fact_of.get(c, [])] for c, sha in zip(df["clip_id"], df["audio_sha256"])]
    comp = connected_components(keys)
    smallest: dict[int, str] = {}
    for k, sha in zip(comp, df["audio_sha256"]):
        smallest[k] = min(smallest.get(k, sha), sha)
    return [smallest[k] for k in comp]


def split_clips(clips: pd.DataFrame, quarantined: set[str], seed: int | str, fractions: dict[str, float],
                names: pd.DataFrame | None = None, holdout_frac: float = 0.0, facts: pd.DataFrame | None = None,
                near_pairs: list[tuple[str, str]] = ()) -> pd.DataFrame:
    """clip_id, group_id, split for every clip not quarantined by the measure stage.

    names: clip_id, name rows (a clip may have several); with holdout_frac > 0, a group with a clip of a held-out
    name goes to dev or test (never train). facts: clip_id, fact rows (`clip_facts`); clips sharing a fact are
    one group; near_pairs: (clip, clip) near-duplicate audio (`benchmark.fingerprint.near_duplicate_pairs`), each pair one group."""
    df = clips.loc[~clips["clip_id"].isin(quarantined), ["clip_id", "audio_sha256"]].copy()
    df["group_id"] = _groups(df, facts, near_pairs)
    df["split"] = [assign_split(g, seed, fractions) for g in df["group_id"]]
    if holdout_frac > 0 and names is not None and len(names):
        held = held_out_names(names["name"], seed, holdout_frac, names["answer"] if "answer" in names.columns else None)
        held_clips = set(names.loc[names["name"].astype(str).str.strip().str.lower().isin(held), "clip_id"])
        held_groups = set(df.loc[df["clip_id"].isin(held_clips), "group_id"])
        rest = {s: fractions.get(s, 0.0) for s in ("dev", "test")}
        total = sum(rest.values())
        if total <= 0:
            raise ConfigError("split.holdout_frac > 0 needs dev or test fractions above 0")
        rest = {s: v / total for s, v in rest.items()}
        rest["train"] = 0.0
        on = df["group_id"].isin(held_groups)
        df.loc[on, "split"] = [assign_split(g, seed, rest) for g in df.loc[on, "group_id"]]
    return df[["clip_id", "group_id", "split"]].sort_values("clip_id").reset_index(drop=True)


def clip_names(categories: pd.DataFrame, animal_items: pd.DataFrame) -> pd.DataFrame:
    """clip_id, name, answer: each clip's source name (answer ""), and for an animal item its onomatopoeia with the
    animal as its answer (the animal itself is the answer, so it is never held out)."""
    src = categories.loc[(categories["source_name"] != "") & (categories["category"] != "animal"), ["clip_id", "source_name"]]
    ono = animal_items[["clip_id", "description", "answer"]]
    return pd.concat([src.rename(columns={"source_name": "name"}).assign(answer=""), ono.rename(columns={"description": "name"})],
                     ignore_index=True)
