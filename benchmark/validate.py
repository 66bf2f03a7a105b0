"""Benchmark rules a release must keep: no leaks across splits, no duplicates, balanced labels, valid rows.

    python -m benchmark.validate releases/demo-1.0.0     # exits 1 when a rule is broken

Checks, per release folder (its <task>/<split>.parquet files):
- overlaps across splits: item id, sentence (case and spacing folded), clip id (across tasks), and the unordered
  source pair of comparison items (the two source names, span1/span2, case folded — two clips of "violin" vs "tuba"
  in train and two others in test are one pair). The wiki split is test-only: it is exempt from the clip and
  source-pair checks, not from the id and sentence checks.
- recognition facts across splits: the (description / sound word, answer) of a recognition task's items — one fact
  reworded ("A [MASK] goes moo." in train, "Moo! That must be a [MASK]." in test) is one fact (wiki exempt).
- held-out names: the names the release's split stage held out of train (its manifest's
  stages.split.counts.held_out_names) are named by no train item (span1, span2, description or a span, case,
  spacing and a leading article folded) — what the card states, checked.
- near-duplicate audio across splits: when the release carries `audio_fingerprints.parquet` (the measure stage's
  fingerprints of its clips), no two clips of different splits align as one recording re-encoded or trimmed
  (`benchmark.fingerprint.near_duplicate_pairs`; wiki exempt: its items have no clips).
- duplicates within a split: item id, sentence.
- a task's kind (comparison / recognition) comes from its registered spec (or the release manifest), never from
  the shape of its items.
- label balance of comparison tasks: each answer within 45–55 % on a split of ≥ 20 items, else |a − b| ≤ max(1, 0.1·n).
- schema: every row parses as schema.Item, with the task and split of the file it is in.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pydantic
from pydantic import BaseModel, Field

from benchmark.errors import UnknownNameError
from benchmark.fingerprint import FINGERPRINTS_FILE, read_fingerprints
from benchmark.release_io import MANIFEST, read_items, resolve_release_path
from benchmark.schema import SPLITS, Item
from benchmark.tasks import get_task

__all__ = ["ValidationReport", "validate_release", "validate_items", "normalise_sentence", "source_pair", "task_kinds", "main"]

BALANCE_MIN_N = 20
BALANCE_BAND = (0.45, 0.55)
_EXAMPLES = 3


class ValidationReport(BaseModel):
    """ok is False when any rule is broken; each violation is one line naming the rule, task, split(s) and examples."""

    ok: bool
    violations: list[str] = Field(default_factory=list)
    figures: dict[str, Any] = Field(default_factory=dict)


def normalise_sentence(s: str) -> str:
    return re.sub(r"\s+", " ", str(s)).strip().lower()


def source_pair(span1: str, span2: str) -> tuple[str, str] | None:
    """The unordered pair of source names a comparison item compares (its two spans, case and spacing folded);
    None when it does not name two sources."""
    span1, span2 = normalise_sentence(span1), normalise_sentence(span2)
    if span1 and span2:
        a, b = sorted([span1, span2])
        return (a, b)
    return None


def _examples(values) -> str:
    vals = sorted(str(v) for v in values)
    return ", ".join(repr(v) for v in vals[:_EXAMPLES]) + (" …" if len(vals) > _EXAMPLES else "")


def _read_release_items(path: Path) -> tuple[pd.DataFrame, list[str]]:
    frames, problems = [], []
    for task_dir in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in task_dir.glob("*.parquet") if f.stem in SPLITS)
        for f in files:
            df = read_items(f)
            df["_file_task"] = task_dir.name
            df["_file_split"] = f.stem
            df["_row"] = range(len(df))
            frames.append(df)
    if not frames:
        problems.append(f"schema: {path} holds no <task>/<split>.parquet files")
        return pd.DataFrame(), problems
    return pd.concat(frames, ignore_index=True), problems


def _check_schema(df: pd.DataFrame) -> list[str]:
    out = []
    fields = list(Item.model_fields)
    bad: dict[tuple[str, str], list[str]] = {}
    for row in df.to_dict(orient="records"):
        where = (row["_file_task"], row["_file_split"])
        try:
            item = Item.model_validate({k: row[k] for k in fields if k in row})
        except pydantic.ValidationError as e:
            first = e.errors()[0]
            bad.setdefault(where, []).append(f"row {row['_row']} ({first.get('loc', ())}: {first['msg']})")
            continue
        if item.task != row["_file_task"] or item.split != row["_file_split"]:
            bad.setdefault(where, []).append(f"row {row['_row']} (task/split {item.task}/{item.split} in the wrong file)")
    missing = [c for c in fields if c not in df.columns]
    if missing:
        out.append(f"schema: columns missing: {missing}")
    for (task, split), rows in sorted(bad.items()):
        out.append(f"schema: {task}/{split}.parquet: {len(rows)} rows do not parse as schema.Item: " + "; ".join(rows[:_EXAMPLES]))
    return out


def _check_duplicates(df: pd.DataFrame) -> list[str]:
    out = []
    for (task, split), sub in df.groupby(["_file_task", "_file_split"], sort=True):
        for what, col in (("item id", sub["id"]), ("sentence", sub["sentence"].map(normalise_sentence))):
            counts = Counter(col)
            dups = {k: n for k, n in counts.items() if n > 1}
            if dups:
                extra = sum(n - 1 for n in dups.values())
                out.append(f"duplicate {what}: {task}/{split}: {extra} extra rows ({len(dups)} values), e.g. {_examples(dups)}")
    return out


def _overlap(kind: str, scope: str, sets: dict[str, set], exempt: tuple[str, ...] = ()) -> list[str]:
    out = []
    splits = [s for s in SPLITS if s in sets and s not in exempt]
    for a, b in itertools.combinations(splits, 2):
        common = sets[a] & sets[b]
        if common:
            out.append(f"overlap {kind}: {scope}: {len(common)} shared between {a} and {b}, e.g. {_examples(common)}")
    return out


def _fact(task: str, description, spans, answer) -> str:
    word = normalise_sentence(description) or " ".join(normalise_sentence(x) for x in (spans if spans is not None else []))
    return f"{word} -> {normalise_sentence(answer)}"


def _check_facts(df: pd.DataFrame, recognition_tasks: set[str]) -> list[str]:
    out = []
    for task, sub in df.groupby("_file_task", sort=True):
        if task not in recognition_tasks:
            continue
        facts = {s: {_fact(task, d, sp, a) for d, sp, a in zip(g["description"], g["spans"], g["answer"])}
                 for s, g in sub.groupby("_file_split")}
        out += _overlap("recognition fact (description, answer)", task, facts, exempt=("wiki",))
    return out


_ARTICLE = re.compile(r"^(a|an|the) ")


def _name(x) -> str:
    return _ARTICLE.sub("", normalise_sentence(x))


def _check_held_out(df: pd.DataFrame, held_out: list[str]) -> list[str]:
    """No train item names a held-out name (span1, span2, description or a span)."""
    held = {_name(n) for n in held_out} - {""}
    if not held:
        return []
    out = []
    for task, sub in df[df["_file_split"] == "train"].groupby("_file_task", sort=True):
        named = set()
        for r in sub.itertuples(index=False):
            spans = list(r.spans) if r.spans is not None else []
            named |= {_name(x) for x in (r.span1, r.span2, r.description, *spans)} & held
        if named:
            out.append(f"held-out name: {task}/train: {len(named)} names the split held out of train are named by train "
                       f"items, e.g. {_examples(named)}")
    return out


def _check_near_duplicates(df: pd.DataFrame, fingerprints: dict) -> list[str]:
    """No near-duplicate pair of clips (by fingerprint) is used in two different splits."""
    from benchmark.fingerprint import near_duplicate_pairs

    splits_of: dict[str, set[str]] = {}
    for split, cids in zip(df["_file_split"], df["clip_ids"]):
        if split != "wiki":
            for c in cids:
                splits_of.setdefault(str(c), set()).add(split)
    pairs = near_duplicate_pairs({c: v for c, v in fingerprints.items() if c in splits_of})
    across = [f"{a} ({'/'.join(sorted(splits_of[a]))}) ~ {b} ({'/'.join(sorted(splits_of[b]))})"
              for a, b in pairs if splits_of[a] != splits_of[b]]
    if not across:
        return []
    return [f"overlap near-duplicate audio: all tasks: {len(across)} pairs of clips that are one recording (re-encoded "
            f"or trimmed) sit in different splits, e.g. {_examples(across)}"]


def _check_overlaps(df: pd.DataFrame, comparison_tasks: set[str]) -> list[str]:
    out = []
    ids = {s: set(g["id"]) for s, g in df.groupby("_file_split")}
    out += _overlap("item id", "all tasks", ids)
    clips = {s: {c for cids in g["clip_ids"] for c in cids} for s, g in df.groupby("_file_split")}
    out += _overlap("clip id", "all tasks", clips, exempt=("wiki",))
    for task, sub in df.groupby("_file_task", sort=True):
        sents = {s: set(g["sentence"].map(normalise_sentence)) for s, g in sub.groupby("_file_split")}
        out += _overlap("sentence", task, sents)
        if task in comparison_tasks:
            pairs = {
                s: {p for p in (source_pair(str(a), str(b)) for a, b in zip(g["span1"], g["span2"])) if p}
                for s, g in sub.groupby("_file_split")
            }
            out += _overlap("source pair", task, pairs, exempt=("wiki",))
    return out


def balance_ok(counts: dict[str, int], answers: list[str]) -> bool:
    """The balance rule for one split of a comparison task (counts per answer; answers = the task's answer set)."""
    n = sum(counts.values())
    if n == 0:
        return True
    vals = [counts.get(a, 0) for a in answers]
    if n >= BALANCE_MIN_N:
        lo, hi = BALANCE_BAND
        return all(lo <= v / n <= hi for v in vals)
    return max(vals) - min(vals) <= max(1.0, 0.1 * n)


def _check_balance(df: pd.DataFrame, comparison_tasks: set[str]) -> tuple[list[str], dict]:
    out, fig = [], {}
    for task in sorted(comparison_tasks):
        sub = df[df["_file_task"] == task]
        answers = sorted(set(sub["answer"]))
        fig[task] = {}
        for split in SPLITS:
            part = sub[sub["_file_split"] == split]
            if part.empty:
                continue
            counts = {str(k): int(v) for k, v in part["answer"].value_counts().items()}
            n = len(part)
            fig[task][split] = {a: round(counts.get(a, 0) / n, 4) for a in answers}
            if not balance_ok(counts, answers):
                shares = ", ".join(f"{a} {counts.get(a, 0)}/{n} ({100 * counts.get(a, 0) / n:.1f} %)" for a in answers)
                rule = "each answer 45–55 %" if n >= BALANCE_MIN_N else "|a−b| ≤ max(1, 0.1·n)"
                out.append(f"balance: {task}/{split}: {shares} breaks {rule}")
    return out, fig


def task_kinds(tasks: list[str], declared: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """Each task's kind: declared (a release manifest's), else its registered spec's. Unknown tasks are violations."""
    kinds, problems = {}, []
    for task in tasks:
        if declared and task in declared:
            kinds[task] = declared[task]
            continue
        try:
            kinds[task] = get_task(task).kind
        except UnknownNameError as e:
            problems.append(f"schema: {e} (and the release declares no kind for it)")
    return kinds, problems


def validate_items(df: pd.DataFrame, kinds: dict[str, str] | None = None, held_out: list[str] | None = None,
                   fingerprints: dict | None = None) -> ValidationReport:
    """Validate items that carry `_file_task`/`_file_split` (where they sit) besides the schema.Item columns.
    kinds: {task: "comparison" | "recognition"} (default: the registered specs'). held_out: names no train item
    may name (the split stage's held-out names). fingerprints: {clip_id: uint32[frames]} (near-duplicate audio)."""
    if df.empty:
        return ValidationReport(ok=False, violations=["schema: no items"], figures={})
    kinds, problems = task_kinds(sorted(set(df["_file_task"])), kinds)
    comparison = {t for t, k in kinds.items() if k == "comparison"}
    recognition = {t for t, k in kinds.items() if k == "recognition"}
    violations = problems + _check_schema(df) + _check_duplicates(df) + _check_overlaps(df, comparison)
    violations += _check_facts(df, recognition) + _check_held_out(df, held_out or [])
    if fingerprints:
        violations += _check_near_duplicates(df, fingerprints)
    bal_violations, balance = _check_balance(df, comparison)
    violations += bal_violations
    kinds = Counter(v.split(":")[0] for v in violations)
    figures = {
        "counts": {t: {s: int(n) for s, n in g["_file_split"].value_counts().items()} for t, g in df.groupby("_file_task")},
        "balance": balance,
        "violations_by_check": dict(sorted(kinds.items())),
    }
    return ValidationReport(ok=not violations, violations=violations, figures=figures)


def validate_release(path: str | Path, kinds: dict[str, str] | None = None) -> ValidationReport:
    """Check a release folder (or a bare release name, see benchmark.release_io.resolve_release_path) against the
    benchmark rules (see the module docstring). Task kinds: `kinds`, else the release manifest's, else the registry's."""
    path = resolve_release_path(path)
    df, problems = _read_release_items(path)
    if problems:
        return ValidationReport(ok=False, violations=problems, figures={})
    held_out: list[str] = []
    if (path / MANIFEST).is_file():
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            return ValidationReport(ok=False, violations=[f"schema: {path / MANIFEST}: not valid JSON ({e.msg})"], figures={})
        if kinds is None:
            tasks = manifest.get("tasks") or {}
            kinds = {t: v["kind"] for t, v in tasks.items() if isinstance(v, dict) and "kind" in v}
        split = (manifest.get("stages") or {}).get("split") or {}
        held_out = list((split.get("counts") or {}).get("held_out_names") or [])
    fingerprints = read_fingerprints(path / FINGERPRINTS_FILE) if (path / FINGERPRINTS_FILE).is_file() else None
    return validate_items(df, kinds, held_out, fingerprints)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark.validate", description="Validate a release folder.")
    ap.add_argument("release", help="release folder, or a bare name under ./releases/ ($AUDITORYBENCH_RELEASES)")
    args = ap.parse_args(argv)
    report = validate_release(args.release)
    for v in report.violations:
        print(f"VIOLATION {v}")
    print("ok" if report.ok else f"{len(report.violations)} violations", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
