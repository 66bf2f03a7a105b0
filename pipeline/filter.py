"""Turn recognition candidates (each recognition task's item source) and written comparison pairs into benchmark
items, keeping or rejecting each with a reason.

Comparison items are kept only when the writer's own guess (from captions and source names alone) agrees with the
measured label (the paper's rule); sentences repeated inside a split or across splits are dropped (train wins over
test over dev), and so are comparison items whose two source names are already compared in another split; labels are
balanced per task and split by dropping the surplus of the majority label (a split left with one label is emptied,
and the manifest says so); recognition answers with too few items are dropped; reviewers' decisions (see
pipeline/review) drop items, fix their answers or settle their review flags. `candidates.parquet` holds the items
before review and balancing: what reviewers see.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
from pydantic import ValidationError as PydanticValidationError

from benchmark.errors import InputError
from benchmark.hashing import stable_hash
from benchmark.schema import Item, item_id
from benchmark.tasks import (
    TaskSpec,
    get_task,
    item_source_function,
    item_source_path,
    recognition_tasks,
)
from benchmark.tasks.sources import SOURCE_COLUMNS
from benchmark.validate import source_pair

__all__ = ["recognition_items", "comparison_items", "drop_repeated_sentences", "drop_repeated_source_pairs", "balance_labels",
           "drop_rare_answers", "apply_review_decisions", "review_decisions_path", "external_inputs", "source_candidates",
           "REVIEW_EXPORT", "REVIEW_DECISIONS"]

_PRIORITY = {"train": 0, "test": 1, "dev": 2}
REVIEW_EXPORT = Path("review") / "decisions.csv"  # under build/<corpus_id>/; read when filter.review_decisions is ""


def _group_id(clip_ids: list[str], groups: dict[str, str]) -> str:
    return stable_hash(sorted({groups[c] for c in clip_ids}))


def _licenses(clip_ids: list[str], licenses: dict[str, str]) -> list[str]:
    return [licenses.get(c, "") for c in clip_ids]


def _make_item(fields: dict, rejects: list[dict]) -> dict | None:
    try:
        return Item(**fields).model_dump()
    except PydanticValidationError as e:
        rejects.append({"stage": "filter", "key": fields.get("id", ""), "reason": "invalid_item",
                        "detail": str(e.errors()[0]["msg"])[:200]})
        return None


def recognition_items(task: str, candidates: pd.DataFrame, splits: pd.DataFrame, licenses: dict[str, str],
                      review_threshold: float, rejects: list[dict]) -> list[dict]:
    """A recognition task's items from its item source's candidates (columns tasks.sources.SOURCE_COLUMNS): one item
    per (split, sentence, answer), carrying every clip that produced it; ambiguous sentences are dropped; items from
    clips categorised below review_threshold get review_flag."""
    split_of = dict(zip(splits["clip_id"], splits["split"]))
    groups = dict(zip(splits["clip_id"], splits["group_id"]))
    df = candidates.copy()
    missing = ~df["clip_id"].isin(split_of)
    for cid in df.loc[missing, "clip_id"]:
        rejects.append({"stage": "filter", "key": f"{task}:{cid}", "reason": "clip_quarantined", "detail": "clip rejected by measure"})
    df = df[~missing]
    df["split"] = df["clip_id"].map(split_of)
    df["answer"] = df["answer"].str.strip().str.lower()
    out = []
    for (split, sentence), g in df.groupby(["split", "sentence"], sort=True):
        answers = sorted(g["answer"].unique())
        if len(answers) > 1:
            rejects.append({"stage": "filter", "key": f"{task}:{split}:{sentence}", "reason": "ambiguous_sentence",
                            "detail": f"answers {answers}"})
            continue
        clip_ids = sorted(g["clip_id"].unique())
        conf = float(g["confidence"].min())
        first = g.iloc[0]
        fields = {
            "id": item_id(task, sentence, answers[0], clip_ids), "task": task, "split": split, "sentence": sentence,
            "answer": answers[0], "spans": list(first["spans"]), "description": first["description"],
            "group_id": _group_id(clip_ids, groups), "clip_ids": clip_ids, "licenses": _licenses(clip_ids, licenses),
            "review_flag": conf < review_threshold, "basis": "", "source": "corpus",
        }
        item = _make_item(fields, rejects)
        if item:
            out.append(item)
    return out


def comparison_items(pairs: pd.DataFrame, sentences: pd.DataFrame, splits: pd.DataFrame, licenses: dict[str, str],
                     require_agreement: bool, review_gap: float, rejects: list[dict]) -> tuple[list[dict], dict]:
    """Items from written pairs; keeps a pair only when the writer's guess agrees with the measured label."""
    groups = dict(zip(splits["clip_id"], splits["group_id"]))
    sent = sentences.set_index("pair_id")
    agree: Counter = Counter()
    out = []
    for p in pairs.itertuples(index=False):
        if p.pair_id not in sent.index:
            rejects.append({"stage": "filter", "key": p.pair_id, "reason": "no_sentence", "detail": p.task})
            continue
        s = sent.loc[p.pair_id]
        guess = str(s["llm_guess"] or "")
        if not guess:
            agree[(p.task, "no_guess")] += 1
        else:
            agree[(p.task, "agree" if guess == p.label else "disagree")] += 1
        if require_agreement and get_task(p.task).require_agreement and guess != p.label:
            reason = "no_guess" if not guess else "disagrees_with_measurement"
            rejects.append({"stage": "filter", "key": p.pair_id, "reason": reason, "detail": f"{p.task}: guess {guess!r}, measured {p.label!r}"})
            continue
        clip_ids = list(p.clip_ids)
        fields = {
            "id": item_id(p.task, s["sentence"], p.label, clip_ids), "task": p.task, "split": p.split, "sentence": s["sentence"],
            "answer": p.label, "spans": [s["span1"], s["span2"]], "span1": s["span1"], "span2": s["span2"],
            "group_id": _group_id(clip_ids, groups), "clip_ids": clip_ids, "licenses": _licenses(clip_ids, licenses),
            "review_flag": bool(p.basis == "centroid" or (p.gap < review_gap if p.basis in ("f0", "centroid") else False)),
            "basis": p.basis, "value1": float(p.value_a), "value2": float(p.value_b), "source": "corpus",
        }
        item = _make_item(fields, rejects)
        if item:
            out.append(item)
    figures = {}
    for task in sorted({t for t, _ in agree}):
        a, d, n = agree[(task, "agree")], agree[(task, "disagree")], agree[(task, "no_guess")]
        figures[task] = {"agree": a, "disagree": d, "no_guess": n, "agreement_rate": round(a / (a + d), 4) if a + d else None}
    return out, figures


def drop_repeated_sentences(items: list[dict], rejects: list[dict]) -> list[dict]:
    """One item per (task, sentence): within a split the first by id, across splits train > test > dev."""
    best: dict[tuple, dict] = {}
    for it in sorted(items, key=lambda i: (_PRIORITY[i["split"]], i["id"])):
        key = (it["task"], it["sentence"].strip().lower())
        if key in best:
            other = best[key]
            reason = "duplicate_sentence" if other["split"] == it["split"] else "sentence_in_other_split"
            rejects.append({"stage": "filter", "key": it["id"], "reason": reason, "detail": f"{it['split']} repeats {other['split']} {other['id']}"})
            continue
        best[key] = it
    return list(best.values())


def drop_repeated_source_pairs(items: list[dict], rejects: list[dict]) -> list[dict]:
    """One split per (comparison task, unordered pair of source names): train wins over test over dev, as for
    sentences (validate's source-pair rule compares names, not clips)."""
    owner: dict[tuple, str] = {}
    keep = []
    for it in sorted(items, key=lambda i: (_PRIORITY[i["split"]], i["id"])):
        pair = source_pair(it["span1"], it["span2"]) if get_task(it["task"]).kind == "comparison" else None
        if pair is not None:
            key = (it["task"], pair)
            if owner.setdefault(key, it["split"]) != it["split"]:
                rejects.append({"stage": "filter", "key": it["id"], "reason": "source_pair_in_other_split",
                                "detail": f"{it['split']}: {pair[0]} / {pair[1]} already in {owner[key]}"})
                continue
        keep.append(it)
    return keep


def balance_labels(items: list[dict], rejects: list[dict]) -> tuple[list[dict], list[str]]:
    """Per comparison task and split, drop the majority label's surplus (highest ids first) until |a - b| <= 1.
    A split holding one label only cannot be balanced: its items are dropped (reason one_label_split) and the split
    is named in the returned notes, which the manifest (and so the release card) carries."""
    comparison = {i["task"] for i in items if get_task(i["task"]).kind == "comparison"}
    keep, notes = [], []
    by_key: dict[tuple, list[dict]] = {}
    for it in items:
        (by_key.setdefault((it["task"], it["split"]), []) if it["task"] in comparison else keep).append(it)
    for (task, split), group in sorted(by_key.items()):
        counts = Counter(i["answer"] for i in group)
        labels = sorted(counts)
        if len(labels) == 1:
            for i in group:
                rejects.append({"stage": "filter", "key": i["id"], "reason": "one_label_split",
                                "detail": f"{task}/{split}: only {labels[0]!r}"})
            notes.append(f"{task}/{split}: {len(group)} items all {labels[0]!r}; dropped (a one-label split cannot be balanced)")
            continue
        hi, lo = sorted(labels, key=lambda label: (-counts[label], label))[:2]
        surplus = counts[hi] - counts[lo] - 1
        if surplus > 0:
            drop = set(i["id"] for i in sorted((i for i in group if i["answer"] == hi), key=lambda i: i["id"])[-surplus:])
            for i in group:
                if i["id"] in drop:
                    rejects.append({"stage": "filter", "key": i["id"], "reason": "rebalance", "detail": f"{task}/{split}: surplus {hi!r}"})
            group = [i for i in group if i["id"] not in drop]
        keep.extend(group)
    return keep, notes


def drop_rare_answers(items: list[dict], task: str, min_per_answer: int, rejects: list[dict]) -> list[dict]:
    """A recognition task's answers with fewer than min_per_answer items (over all splits) are dropped."""
    counts = Counter(i["answer"] for i in items if i["task"] == task)
    rare = {a for a, n in counts.items() if n < min_per_answer}
    for i in items:
        if i["task"] == task and i["answer"] in rare:
            rejects.append({"stage": "filter", "key": i["id"], "reason": "rare_answer", "detail": f"{task}: {i['answer']!r}: {counts[i['answer']]} item(s)"})
    return [i for i in items if not (i["task"] == task and i["answer"] in rare)]


REVIEW_DECISIONS = ("keep", "drop", "fix", "flag")  # the one vocabulary: a reviewer picks one of the first three; flag = reviewers tied


def _read_decisions(path: Path) -> pd.DataFrame:
    dec = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"id", "decision"} - set(dec.columns)
    if missing:
        raise InputError(f"{path}: review decisions need columns id and decision (missing {sorted(missing)})")
    dec["decision"] = dec["decision"].str.strip().str.lower()
    bad = dec[~dec["decision"].isin(REVIEW_DECISIONS)]
    if len(bad):
        raise InputError(f"{path}: item {bad['id'].iloc[0]}: decision {bad['decision'].iloc[0]!r} is not one of {', '.join(REVIEW_DECISIONS)}")
    if "answer" not in dec.columns:
        dec["answer"] = ""
    fix_no_answer = dec[(dec["decision"] == "fix") & (dec["answer"].str.strip() == "")]
    if len(fix_no_answer):
        raise InputError(f"{path}: item {fix_no_answer['id'].iloc[0]}: decision fix needs the corrected answer in column answer")
    if dec["id"].duplicated().any():
        raise InputError(f"{path}: item {dec.loc[dec['id'].duplicated(), 'id'].iloc[0]} has more than one row")
    return dec


def _review_figures(dec: pd.DataFrame, path: Path) -> dict:
    """Agreement and fluency from the `votes` column ({reviewer: {"label", "fluency"}} as JSON), when the file has it."""
    from pipeline.review.agreement import agreement_summary

    if "votes" not in dec.columns:
        return {}
    ratings, fluency = {}, []
    for item, cell in zip(dec["id"], dec["votes"]):
        try:
            votes = json.loads(cell) if cell else {}
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: item {item}: votes is not valid JSON ({e.msg})") from e
        ratings[item] = {r: v["label"] for r, v in votes.items() if v.get("label")}
        fluency += [int(v["fluency"]) for v in votes.values() if v.get("fluency")]
    return {"agreement": agreement_summary(ratings), "fluency_ratings": len(fluency),
            "fluency_mean": round(sum(fluency) / len(fluency), 3) if fluency else None}


def apply_review_decisions(items: list[dict], path: Path, rejects: list[dict]) -> tuple[list[dict], dict]:
    """Apply reviewers' decisions from a CSV with columns id, decision (keep | drop | fix | flag) and, for fix, answer.

    drop removes the item (a `review_drop` reject); fix gives it the corrected answer (which must be one of its task's
    answers) and so a new id; keep clears its review_flag; flag (reviewers tied) sets it. Returns the items and the
    figures the card reports: how many items were reviewed, kept, dropped, fixed, left flagged, and the agreement
    (from the optional `votes` column that `auditorybench review export` writes)."""
    dec = _read_decisions(path).set_index("id")
    counts = dict.fromkeys(("reviewed", "kept", "dropped", "fixed", "flagged"), 0)
    out = []
    for item in items:
        if item["id"] not in dec.index:
            out.append(item)
            continue
        row = dec.loc[item["id"]]
        counts["reviewed"] += 1
        if row["decision"] == "drop":
            counts["dropped"] += 1
            rejects.append({"stage": "filter", "key": item["id"], "reason": "review_drop", "detail": str(path)})
        elif row["decision"] == "fix":
            counts["fixed"] += 1
            out.append(_fixed(item, row["answer"].strip(), path))
        else:
            counts["kept" if row["decision"] == "keep" else "flagged"] += 1
            out.append({**item, "review_flag": row["decision"] == "flag"})
    counts["not_in_build"] = int(len(dec) - counts["reviewed"])
    return out, {**counts, **_review_figures(dec.reset_index(), path)}


def _fixed(item: dict, answer: str, path: Path) -> dict:
    """The item with its corrected answer, and so its new content id; the answer must be one of the task's."""
    choices = get_task(item["task"]).answer_choices
    if isinstance(choices, list) and answer not in choices:
        raise InputError(f"{path}: item {item['id']}: fixed answer {answer!r} is not one of {item['task']}'s answers {choices}")
    return {**item, "answer": answer, "review_flag": False, "id": item_id(item["task"], item["sentence"], answer, list(item["clip_ids"]))}


def source_candidates(spec: TaskSpec, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """A recognition task's candidates (SOURCE_COLUMNS) from its item source run on the build's tables."""
    rows = item_source_function(spec)(tables, spec, **spec.item_source_args)
    missing = [c for c in SOURCE_COLUMNS if c not in rows.columns]
    if missing:
        raise InputError(f"{spec.path}: item source {spec.item_source} returned no columns {missing}")
    return rows[SOURCE_COLUMNS]


def review_decisions_path(build_dir: Path, params: dict) -> Path | None:
    """The reviewers' decisions the filter applies: filter.review_decisions when set (it must exist), else what
    `auditorybench review export` wrote for this build (build/<corpus_id>/review/decisions.csv), else None."""
    given = params.get("review_decisions")
    if given:
        if not Path(given).is_file():
            raise InputError(f"{given}: review decisions file (filter.review_decisions) not found")
        return Path(given)
    exported = Path(build_dir) / REVIEW_EXPORT
    return exported if exported.is_file() else None


def external_inputs(build_dir: Path, params_all: dict) -> dict[str, Path]:
    """The filter's inputs from outside the build's stages: the review decisions (when given) and the files holding
    the recognition tasks' item sources (an item source's code is part of the key)."""
    decisions = review_decisions_path(build_dir, params_all.get("filter") or {})
    out = {"review_decisions": decisions} if decisions is not None else {}
    for t in recognition_tasks(params_all):
        source = item_source_path(t)
        if source is not None:
            out[f"item_source:{t.name}"] = source
    return out
