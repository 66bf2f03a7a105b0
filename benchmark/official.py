"""Import the official AuditoryBench CSVs (the dataset/ folder of the AudioBERT repository) as a release named "official".

Accepted layouts: flat `<task>_<split>.csv` (e.g. `animal_sound_recognition_train.csv`,
`sound_pitch_comparsion_wiki.csv` — the official spelling "comparsion" becomes "comparison") or nested
`<task>/<split>.csv`. Recognition files have `animal,description,sentence`; comparison files have
`sentence,answer,span1,span2` in any column order (the official pitch wiki file has `span1,span2,sentence,answer`).

The official data has defects (a train file byte-identical to its test file, test items that also appear in train,
duplicate rows, imbalanced answers). They are reported, not hidden: the release keeps every row as given (answers
folded to lower case), its manifest and card list the defects, and `official_defects.json` holds the details,
including each answer's original spelling. Only rows that cannot be items at all (no single [MASK]) are left out,
and they are listed there too.

`resplit=True` also writes "official-resplit": the same items regrouped so that no item id, sentence or source pair
crosses splits (`resplit_items`). The official test set is kept as intact as possible: a group of items that touches
test goes to test (then dev, then train); a group that touches a wiki set stays there alone. Duplicates and sentences
given two answers are dropped. What moved and what was dropped is in its manifest, card and `resplit.json`.
When train and test of a task are mostly the same items (the official animal files are byte-identical), "test first"
would empty train; those contested groups are then shared out by a stable hash in the original split sizes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pydantic

from benchmark.card import write_card
from benchmark.errors import InputError
from benchmark.hashing import sha256_file, stable_hash, unit_interval
from benchmark.metrics import connected_components
from benchmark.release import build_release
from benchmark.schema import SPLITS, Item, item_id
from benchmark.validate import normalise_sentence, source_pair

__all__ = [
    "import_official", "find_official_files", "read_official_csv", "resplit_items", "OFFICIAL_NAME", "RESPLIT_NAME",
    "DEFECTS_FILE", "RESPLIT_FILE",
]

OFFICIAL_NAME = "official"
RESPLIT_NAME = "official-resplit"
DEFECTS_FILE = "official_defects.json"
RESPLIT_FILE = "resplit.json"
_PRECEDENCE = ("test", "dev", "train")  # a contested group goes to the first split of these it touches
_TYPOS = {"comparsion": "comparison"}
_RECOGNITION = ("animal", "description", "sentence")
_COMPARISON = ("sentence", "answer", "span1", "span2")


def _task_name(raw: str) -> str:
    name = raw.strip().lower()
    for wrong, right in _TYPOS.items():
        name = name.replace(wrong, right)
    return name


def find_official_files(src_dir: str | Path) -> dict[tuple[str, str], Path]:
    """{(task, split): csv path} under src_dir (or its dataset/ folder); flat names win over nested ones."""
    src = Path(src_dir)
    root = src / "dataset" if (src / "dataset").is_dir() else src
    if not root.is_dir():
        raise InputError(f"{root}: official dataset folder not found")
    found: dict[tuple[str, str], Path] = {}
    split_re = "|".join(SPLITS)
    for f in sorted(root.rglob("*.csv"), key=lambda p: (len(p.relative_to(root).parts), p.as_posix())):
        rel = f.relative_to(root)
        m = re.fullmatch(rf"(.+)_({split_re})\.csv", f.name)
        if len(rel.parts) == 1 and m:
            key = (_task_name(m.group(1)), m.group(2))
        elif len(rel.parts) == 2 and f.stem in SPLITS:
            key = (_task_name(rel.parts[0]), f.stem)
        else:
            continue
        found.setdefault(key, f)
    if not found:
        raise InputError(f"{root}: no official CSVs (<task>_<split>.csv or <task>/<split>.csv) found")
    return found


def read_official_csv(path: Path) -> tuple[pd.DataFrame, str]:
    """The CSV as strings (nothing parsed as NaN) and its kind: "recognition" or "comparison"."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise InputError(f"{path}: cannot read official CSV ({e})") from e
    df.columns = [str(c).strip() for c in df.columns]
    cols = set(df.columns)
    if set(_RECOGNITION) <= cols:
        return df, "recognition"
    if set(_COMPARISON) <= cols:
        return df, "comparison"
    raise InputError(f"{path}: columns {list(df.columns)} are neither {','.join(_RECOGNITION)} nor {','.join(_COMPARISON)}")


def _row_to_item(task: str, split: str, kind: str, row: dict) -> dict:
    sentence = row["sentence"].strip()
    if kind == "recognition":
        original = row["animal"].strip()
        description = row["description"].strip()
        spans = [description] if description and description.lower() in sentence.lower() else []
        span1 = span2 = ""
        group = f"official:{original.lower()}"
    else:
        original = row["answer"].strip()
        description = ""
        span1, span2 = row["span1"].strip(), row["span2"].strip()
        spans = [s for s in (span1, span2) if s and s.lower() in sentence.lower()]
        group = "official:" + "|".join(sorted([span1.lower(), span2.lower()]))
    answer = original.lower()
    if not answer:
        raise ValueError("empty answer")
    item = Item(id=item_id(task, sentence, answer, [OFFICIAL_NAME]), task=task, split=split, sentence=sentence,
                answer=answer, spans=spans, description=description, span1=span1, span2=span2,
                group_id=stable_hash(group), source=OFFICIAL_NAME)
    return item.model_dump() | {"_original": original}


def _defects(frames: dict[tuple[str, str], pd.DataFrame], files: dict[tuple[str, str], Path],
             items: pd.DataFrame, rejected: list[dict], root: Path) -> tuple[dict, dict]:
    """A summary (manifest, card) and the details (official_defects.json) of the official data's defects."""
    digests = {k: sha256_file(p) for k, p in files.items()}
    by_digest: dict[str, list[str]] = {}
    for k in sorted(files):
        by_digest.setdefault(digests[k], []).append(files[k].relative_to(root).as_posix())
    identical = [names for names in by_digest.values() if len(names) > 1]
    dup_rows = {files[k].relative_to(root).as_posix(): int(df.duplicated().sum()) for k, df in sorted(frames.items())}
    dup_rows = {k: v for k, v in dup_rows.items() if v}
    overlap: dict[str, dict[str, int]] = {}
    balance: dict[str, dict[str, dict[str, float]]] = {}
    for task, sub in items.groupby("task", sort=True):
        sents = {s: set(g["sentence"].map(normalise_sentence)) for s, g in sub.groupby("split")}
        for later in SPLITS:
            for earlier in SPLITS[: SPLITS.index(later)]:
                if later in sents and earlier in sents:
                    rows = sub[sub["split"] == later]["sentence"].map(normalise_sentence)
                    n = int(rows.isin(sents[earlier]).sum())
                    if n:
                        overlap.setdefault(task, {})[f"{later} rows also in {earlier}"] = n
        if (sub["span1"] != "").all():
            for split, g in sub.groupby("split"):
                vc = g["answer"].value_counts()
                balance.setdefault(task, {})[split] = {str(a): round(int(n) / len(g), 4) for a, n in sorted(vc.items())}
    changed = items[items["_original"] != items["answer"]]
    case = {f"{t}/{s}": int(len(g)) for (t, s), g in changed.groupby(["task", "split"], sort=True)}
    summary = {
        "identical_files": identical,
        "exact_duplicate_rows": dup_rows,
        "cross_split_overlap": overlap,
        "answer_share": balance,
        "answers_lower_cased": case,
        "rejected_rows": len(rejected),
    }
    details = dict(summary)
    details["answer_originals"] = [
        {"task": t, "split": s, "id": i, "answer": a, "original": o}
        for t, s, i, a, o in changed[["task", "split", "id", "answer", "_original"]].itertuples(index=False)
    ]
    details["rejected"] = rejected
    details["source_files"] = {files[k].relative_to(root).as_posix(): digests[k] for k in sorted(files)}
    return summary, details


def resplit_items(items: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """(items regrouped so that no item id, sentence or source pair is in two splits, a report of what moved).

    Per task: rows with one id are one item (kept once); a sentence given several answers is ambiguous (dropped);
    items sharing an id, a sentence or (comparison tasks) a source pair form a group, placed whole in one split:
    the one split it touches; else, next to a wiki set, wiki (its other items dropped: wiki is a test-only set of
    its own); else test, dev, train in that order, unless that would leave train with under half of its items
    (then contested groups go to a split they touch, by a stable hash weighted by the splits' sizes)."""
    kept, report = [], {}
    for task, sub in items.groupby("task", sort=True):
        sub = sub.reset_index(drop=True)
        comparison = bool((sub["span1"] != "").all())
        rep = {"before": {s: int(n) for s, n in sub["split"].value_counts().sort_index().items()},
               "dropped": {}, "moved": {}, "policy": "test first"}

        def drop(frame, mask, why, dropped=rep["dropped"]):
            if mask.any():
                dropped[why] = dropped.get(why, 0) + int(mask.sum())
            return frame[~mask].reset_index(drop=True)

        sub = drop(sub, sub.duplicated(["id", "split"]), "repeated row")
        norm = sub["sentence"].map(normalise_sentence)
        answers = sub.groupby(norm)["answer"].nunique()
        sub = drop(sub, norm.map(answers).gt(1).to_numpy(), "sentence given several answers")
        norm = sub["sentence"].map(normalise_sentence)
        keys = []
        for r, n in zip(sub.itertuples(index=False), norm):
            ks = [("id", r.id), ("sentence", n)]
            pair = source_pair(r.span1, r.span2) if comparison else None
            if pair and r.split != "wiki":  # wiki pairs may repeat train pairs (the wiki sets are exempt from that rule)
                ks.append(("pair", pair))
            keys.append(ks)
        group = pd.Series(connected_components(keys))
        touched = sub.groupby(group)["split"].agg(lambda x: frozenset(x))
        sizes = {s: int((sub["split"] == s).sum()) for s in _PRECEDENCE}

        def first(splits: frozenset) -> str:
            return next(s for s in _PRECEDENCE if s in splits)

        target = {g: ("wiki" if "wiki" in sp else first(sp)) for g, sp in touched.items()}
        left = int(((sub["split"] == "train") & group.map(target).eq("train")).sum())
        if sizes["train"] and left < sizes["train"] / 2:
            rep["policy"] = "contested groups shared out by hash (train and test are mostly the same items)"
            for g, sp in touched.items():
                if "wiki" not in sp and len(sp) > 1:
                    cand = [s for s in _PRECEDENCE if s in sp]
                    weights = np.array([max(sizes[s], 1) for s in cand], dtype=float)
                    u = unit_interval(str(min(sub.loc[group == g, "id"])), "official-resplit")
                    target[g] = cand[int(np.searchsorted(np.cumsum(weights) / weights.sum(), u, side="right"))]
        sub["_to"] = group.map(target)
        out_rows = sub[~((sub["_to"] == "wiki") & (sub["split"] != "wiki"))]
        rep["dropped"]["shares an id, sentence or source pair with a wiki item"] = int(len(sub) - len(out_rows)) or None
        # the same item in two splits is kept once, where its group goes (rows already there first)
        out_rows = out_rows.assign(_from=out_rows["split"], _stay=out_rows["split"] == out_rows["_to"],
                                   _n=out_rows["sentence"].map(normalise_sentence))
        out_rows = out_rows.sort_values("_stay", ascending=False, kind="stable").assign(split=lambda d: d["_to"])
        dup = out_rows.duplicated("id") | out_rows.duplicated(["split", "_n"])
        rep["dropped"]["the same item in two splits, kept once"] = int(dup.sum()) or None
        out_rows = out_rows[~dup].sort_index()
        moved = out_rows[out_rows["_from"] != out_rows["split"]]
        for (a, b), n in moved.groupby(["_from", "split"]).size().items():
            rep["moved"][f"{a} -> {b}"] = int(n)
        out_rows = out_rows.drop(columns=["_to", "_from", "_stay", "_n"])
        rep["dropped"] = {k: v for k, v in rep["dropped"].items() if v}
        rep["after"] = {s: int(n) for s, n in out_rows["split"].value_counts().sort_index().items()}
        orig_test = set(sub.loc[sub["split"] == "test", "id"])
        rep["official_test_kept"] = f"{len(orig_test & set(out_rows.loc[out_rows['split'] == 'test', 'id']))} of {len(orig_test)}"
        report[task] = rep
        kept.append(out_rows)
    return pd.concat(kept, ignore_index=True), report


def import_official(src_dir: str | Path, releases_dir: str | Path, version: str, resplit: bool = False,
                    resplit_scores: dict | None = None) -> Path:
    """Convert the official AuditoryBench CSVs into the release format as releases_dir/official-<version>/.

    The data's defects are reported in the manifest ("defects"), the card and official_defects.json; they do not
    stop the import. Raises InputError when no official CSV is found or a file has unknown columns.
    resplit: also write releases_dir/official-resplit-<version>/ (see `resplit_items`); resplit_scores (as made by
    `models.eval.leak_scores`) go into its manifest and card. Returns the official release's path."""
    files = find_official_files(src_dir)
    root = Path(src_dir) / "dataset" if (Path(src_dir) / "dataset").is_dir() else Path(src_dir)
    frames, rows, rejected = {}, [], []
    for (task, split), path in sorted(files.items()):
        df, kind = read_official_csv(path)
        frames[(task, split)] = df
        for i, rec in enumerate(df.to_dict(orient="records")):
            try:
                rows.append(_row_to_item(task, split, kind, rec))
            except (pydantic.ValidationError, ValueError) as e:
                reason = e.errors()[0]["msg"] if isinstance(e, pydantic.ValidationError) else str(e)
                rejected.append({"file": path.relative_to(root).as_posix(), "row": i + 2, "reason": reason})
    if not rows:
        raise InputError(f"{root}: the official CSVs hold no usable rows")
    items = pd.DataFrame(rows)
    summary, details = _defects(frames, files, items, rejected, root)
    provenance = {
        "source": "official AuditoryBench CSVs (AudioBERT repository, dataset/)",
        "source_files": details["source_files"],
        "importer": stable_hash(Path(__file__).read_bytes().decode("utf-8")),
    }
    details_bytes = (json.dumps(details, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    items = items.drop(columns="_original")
    if resplit:
        write_resplit(items, provenance, Path(releases_dir), str(version), resplit_scores)
    path = build_release(
        items, Path(releases_dir), OFFICIAL_NAME, str(version), clips=pd.DataFrame(),
        task_choices={}, provenance=provenance, stage_manifests={}, defects=summary, strict=False,
        extra_files={DEFECTS_FILE: details_bytes},
    )
    write_card(path)
    return path


def write_resplit(items: pd.DataFrame, provenance: dict, releases_dir: Path, version: str, scores: dict | None = None) -> Path:
    """Write releases_dir/official-resplit-<version>/ from the official items (see `resplit_items`)."""
    regrouped, report = resplit_items(items)
    summary = {"resplit": {t: {k: v for k, v in r.items() if k != "before"} | {"before": r["before"]} for t, r in report.items()}}
    if scores:
        summary["leak_effect"] = _leak_text(scores)
    doc = {"report": report, "scores": scores or {}}
    path = build_release(
        regrouped, releases_dir, RESPLIT_NAME, version, clips=pd.DataFrame(), task_choices={},
        provenance=provenance | {"resplit_of": OFFICIAL_NAME}, stage_manifests={}, defects=summary, strict=False,
        extra_files={RESPLIT_FILE: (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")},
    )
    write_card(path)
    return path


def _ci_text(ci) -> str:
    return "(too few units for an interval)" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _leak_text(scores: dict) -> str:
    """One line per model and task: accuracy on the original test and on the resplit test, with intervals."""
    parts = []
    for model, tasks in sorted(scores.items()):
        for task, by in sorted(tasks.items()):
            cells = [f"{where} {by[where]['accuracy']:.3f} {_ci_text(by[where]['ci'])} (n {by[where]['n']})"
                     for where in ("original test", "resplit test") if where in by]
            parts.append(f"{model} on {task}: " + " → ".join(cells))
    return "; ".join(parts)
