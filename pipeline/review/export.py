"""Reviewers' decisions → the decisions file the filter stage reads (one row per reviewed item, majority verdict).

Columns: id, decision (keep | drop | fix | flag), answer (the corrected answer of a fix), reviewers (how many gave a
verdict), fluency_mean, votes (JSON {reviewer: {"label", "fluency"}}: what the filter's agreement figures come from).
A tie for the top verdict is written as `flag`: the item stays in, flagged for a person to settle.

Comments go to their own file, `comments.csv` beside it (columns id, reviewer, comment; one row per non-empty comment),
which the filter does not read: editing a comment changes no byte of the decisions file and so reruns nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from benchmark.hashing import atomic_path
from pipeline.filter import REVIEW_DECISIONS
from pipeline.review.agreement import agreement_summary, majority
from pipeline.review.store import Decision

__all__ = ["EXPORT_COLUMNS", "COMMENT_COLUMNS", "COMMENTS_FILE", "comments_table", "decisions_table", "ratings_of",
           "write_comments", "write_decisions"]

EXPORT_COLUMNS = ["id", "decision", "answer", "reviewers", "fluency_mean", "votes"]
COMMENT_COLUMNS = ["id", "reviewer", "comment"]
COMMENTS_FILE = "comments.csv"  # beside the decisions file


def ratings_of(decisions: list[Decision]) -> dict[str, dict[str, str]]:
    """{item id: {reviewer: label}} over the decisions that carry a verdict (fluency-only entries are left out)."""
    out: dict[str, dict[str, str]] = {}
    for d in decisions:
        if d.label:
            out.setdefault(d.item_id, {})[d.reviewer] = d.label
    return out


def decisions_table(decisions: list[Decision]) -> pd.DataFrame:
    by_item: dict[str, list[Decision]] = {}
    for d in decisions:
        if d.label:
            by_item.setdefault(d.item_id, []).append(d)
    rows = []
    for item_id in sorted(by_item):
        ds = sorted(by_item[item_id], key=lambda d: d.reviewer)
        verdict = majority([d.label for d in ds])
        fluency = [d.fluency for d in ds if d.fluency]
        decision, answer = ("flag", "") if verdict is None else (verdict.split("=", 1) + [""])[:2]
        rows.append({"id": item_id, "decision": decision, "answer": answer, "reviewers": len(ds),
                     "fluency_mean": round(sum(fluency) / len(fluency), 3) if fluency else None,
                     "votes": json.dumps({d.reviewer: {"label": d.label, "fluency": d.fluency} for d in ds}, sort_keys=True)})
    return pd.DataFrame(rows, columns=EXPORT_COLUMNS)


def write_decisions(decisions: list[Decision], path: Path) -> dict:
    """Write the decisions file atomically (same decisions → same bytes); returns its counts and agreement figures."""
    table = decisions_table(decisions)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    counts = {k: int((table["decision"] == k).sum()) for k in REVIEW_DECISIONS}
    return {"path": str(path), "items": len(table), **counts, "agreement": agreement_summary(ratings_of(decisions))}


def comments_table(decisions: list[Decision]) -> pd.DataFrame:
    """Every non-empty comment, with or without a verdict, by item id then reviewer."""
    rows = sorted((d.item_id, d.reviewer, d.comment) for d in decisions if d.comment.strip())
    return pd.DataFrame(rows, columns=COMMENT_COLUMNS)


# a cell a spreadsheet would run as a formula (OWASP "CSV injection"): such a comment is written behind a quote mark
FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """The text as a spreadsheet shows it but never runs it: a leading ' before =, +, -, @, tab or carriage return."""
    return "'" + text if text.startswith(FORMULA_LEAD) else text


def write_comments(decisions: list[Decision], path: Path) -> dict:
    """Write the comments file atomically (same comments → same bytes); returns its path and row count. Comments
    are free text that people open in spreadsheets: one that starts like a formula is written quoted
    (`spreadsheet_safe`); the review page's stats show them as typed."""
    table = comments_table(decisions)
    table["comment"] = table["comment"].map(spreadsheet_safe)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    return {"path": str(path), "comments": len(table)}
