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
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pydantic

from benchmark.errors import InputError
from benchmark.hashing import sha256_file, stable_hash
from benchmark.release import build_release
from benchmark.schema import SPLITS, Item, item_id
from benchmark.validate import normalise_sentence

__all__ = ["import_official", "find_official_files", "read_official_csv", "OFFICIAL_NAME", "DEFECTS_FILE"]

OFFICIAL_NAME = "official"
DEFECTS_FILE = "official_defects.json"
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


def import_official(src_dir: str | Path, releases_dir: str | Path, version: str) -> Path:
    """Convert the official AuditoryBench CSVs into the release format as releases_dir/official-<version>/.

    The data's defects are reported in the manifest ("defects"), the card and official_defects.json; they do not
    stop the import. Raises InputError when no official CSV is found or a file has unknown columns."""
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
    return build_release(
        items.drop(columns="_original"), Path(releases_dir), OFFICIAL_NAME, str(version), clips=pd.DataFrame(),
        task_choices={}, provenance=provenance, stage_manifests={}, defects=summary, strict=False,
        extra_files={DEFECTS_FILE: details_bytes},
    )
