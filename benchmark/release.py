"""Building a release: write a release folder from items, validated, atomically. Reading one back is
benchmark.release_io (load, verify); this module imports it, never the other way round.

Layout of `releases/<name>-<version>/`:

    <task>/<split>.parquet   every schema.Item column (Arrow schema: schema.ITEM_ARROW_SCHEMA)
    <task>/<split>.csv       the columns the task's YAML declares (csv_columns; the official AuditoryBench order)
    manifest.json            sha256 of every file, counts, choices, kind, metrics, balance, provenance (no timestamps)
    README.md                the data card (written afterwards by benchmark.card.write_card; not in the checksums)
    ATTRIBUTION.csv          per clip: clip_id, author, url, license, license_kind, title
    figures/*.png            the card's plots (deterministic PNGs; captions and figures in manifest["figures"])
    audio_index/             copied verbatim from the models stage, when given

Same inputs and params give a byte-identical release. Building a name-version that already exists with other
content raises ReleaseIntegrityError; with the same content it is a no-op.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.errors import InputError, ReleaseIntegrityError, UnknownNameError, ValidationError
from benchmark.figures import write_figures
from benchmark.jsonable import jsonable
from benchmark.release_io import CARD, MANIFEST, file_digests
from benchmark.schema import (
    BOOL_COLUMNS,
    COLUMNS,
    FLOAT_COLUMNS,
    ITEM_ARROW_SCHEMA,
    LIST_COLUMNS,
    SPLITS,
    csv_field,
    license_kind,
    most_restrictive_license,
)
from benchmark.tasks import TaskSpec, get_task
from benchmark.validate import validate_release

__all__ = ["build_release", "normalise_items"]


# --------------------------------------------------------------------------------------------------- building


def _as_list(v: Any) -> list[str]:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return []
    if isinstance(v, str):
        return [v]
    return [str(x) for x in list(v)]


def normalise_items(items: pd.DataFrame) -> pd.DataFrame:
    """Items with every schema.Item column, in schema order, typed, and sorted by task, split, id."""
    df = items.copy()
    defaults = {"description": "", "span1": "", "span2": "", "basis": "", "source": "", "review_flag": False,
                "value1": math.nan, "value2": math.nan}
    for c in COLUMNS["items"]:
        if c not in df.columns:
            if c in LIST_COLUMNS:
                df[c] = [[] for _ in range(len(df))]
            elif c in defaults:
                df[c] = defaults[c]
            else:
                raise InputError(f"items: required column {c!r} is missing")
    extra = [c for c in df.columns if c not in COLUMNS["items"]]
    if extra:
        raise InputError(f"items: unknown columns {extra} (allowed: schema.Item fields)")
    out = pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS["items"]}) if df.empty else pd.DataFrame()
    if not df.empty:
        for c in COLUMNS["items"]:
            if c in LIST_COLUMNS:
                out[c] = [_as_list(v) for v in df[c]]
            elif c in FLOAT_COLUMNS:
                out[c] = pd.to_numeric(df[c], errors="coerce").astype(float).to_numpy()
            elif c in BOOL_COLUMNS:
                out[c] = df[c].fillna(False).astype(bool).to_numpy()
            else:
                out[c] = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in df[c]]
    order = {s: i for i, s in enumerate(SPLITS)}
    out["_split_order"] = [order.get(s, len(order)) for s in out["split"]]
    out = out.sort_values(["task", "_split_order", "id", "sentence"], kind="mergesort").drop(columns="_split_order")
    return out.reset_index(drop=True)


def _write_items_parquet(df: pd.DataFrame, path: Path) -> None:
    rows = df[COLUMNS["items"]].to_dict(orient="records")
    table = pa.Table.from_pylist(rows, schema=ITEM_ARROW_SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")


def _write_items_csv(df: pd.DataFrame, spec: TaskSpec, path: Path) -> None:
    """The task's declared CSV columns (header ← schema.Item field), in its declared order."""
    fields = [csv_field(c) for c in spec.csv_columns]
    out = pd.DataFrame({header: df[name].to_numpy() for header, name in fields})
    out.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")


def _spec(task: str) -> TaskSpec:
    try:
        return get_task(task)
    except UnknownNameError as e:
        raise InputError(f"items: {e}; register the task's YAML (or add its folder to $AUDITORYBENCH_TASK_DIRS)") from e


def _nc(kinds: list[str]) -> bool:
    return any(k == "cc-by-nc" for k in kinds)


def _item_license_kinds(row_licenses: list[str], clip_ids: list[str], clip_kind: dict[str, str]) -> list[str]:
    kinds = [clip_kind[c] for c in clip_ids if c in clip_kind]
    kinds += [license_kind(lic) for lic in row_licenses]
    return kinds


def _fill_licenses(df: pd.DataFrame, clip_license: dict[str, str]) -> pd.DataFrame:
    """An item whose licenses list is empty gets its clips' licence strings (each item carries its clips' licences)."""
    df = df.copy()
    df["licenses"] = [
        lics if lics else [clip_license[c] for c in cids if c in clip_license]
        for lics, cids in zip(df["licenses"], df["clip_ids"])
    ]
    return df


def _choices_for(task_items: pd.DataFrame, given: list[str] | None) -> list[str]:
    if given:
        return [str(c) for c in given]
    return sorted(set(task_items["answer"].astype(str)))


def _balance(task_items: pd.DataFrame) -> dict[str, dict[str, int]]:
    out = {}
    for split in SPLITS:
        sub = task_items[task_items["split"] == split]
        if len(sub):
            vc = sub["answer"].value_counts()
            out[split] = {str(k): int(vc[k]) for k in sorted(vc.index)}
    return out


def _attribution(items: pd.DataFrame, clips: pd.DataFrame) -> pd.DataFrame:
    used = sorted({c for cids in items["clip_ids"] for c in cids})
    cols = ["clip_id", "author", "url", "license", "license_kind", "title"]
    if not used:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    if clips is None or clips.empty or "clip_id" not in clips.columns:
        raise InputError(f"clips: no clip table given, but items use {len(used)} clips (e.g. {used[0]})")
    by_id = clips.drop_duplicates("clip_id").set_index("clip_id")
    missing = [c for c in used if c not in by_id.index]
    if missing:
        raise InputError(f"clips: {len(missing)} clips used by items have no attribution row (e.g. {missing[0]})")
    sub = by_id.loc[used].reset_index()
    if "license_kind" not in sub.columns:
        sub["license_kind"] = [license_kind(x) for x in sub["license"]]
    for c in cols:
        if c not in sub.columns:
            sub[c] = ""
    return sub[cols].fillna("").astype(str)


def _dump_json(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(jsonable(obj), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n",
                    encoding="utf-8")


def build_release(
    items: pd.DataFrame,
    out_root: Path,
    name: str,
    version: str,
    *,
    clips: pd.DataFrame,
    task_choices: dict[str, list[str]],
    provenance: dict,
    stage_manifests: dict[str, dict],
    audio_index_dir: Path | None = None,
    exclude_nc: bool = False,
    plot_tables: dict[str, pd.DataFrame] | None = None,
    defects: dict | None = None,
    strict: bool = True,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write releases/<name>-<version>/ atomically (build in a temp folder, validate, rename) and return its path.

    items: schema.Item rows for every task and split (wiki included); clips: schema.Clip columns (attribution and
    licences); task_choices: answer choices per task (missing tasks: sorted set of answers); provenance: corpus
    identity, code version, LLM backend/model/prompt versions, estimator, params; stage_manifests: upstream
    manifests for the card. plot_tables: optional "pairs" (task, basis, value_a, value_b, label), "sentences"
    (answer, llm_guess), "categories" (clip_id, category) for the card's figures. defects: a report of known
    defects (official import) shown in the manifest and card. strict: refuse to publish when validation finds a
    violation (ValidationError); when False the violations are recorded as defects instead.
    """
    if not re.fullmatch(r"[A-Za-z0-9][\w.+-]*", name) or not re.fullmatch(r"[\w.+-]+", str(version)):
        raise InputError(f"release name {name!r} / version {version!r}: use letters, digits, '.', '_', '+', '-'")
    out_root = Path(out_root)
    target = out_root / f"{name}-{version}"
    df = normalise_items(items)
    bad_split = sorted(set(df["split"]) - set(SPLITS))
    if bad_split:
        raise InputError(f"items: unknown splits {bad_split} (splits: {', '.join(SPLITS)})")
    clips = clips if clips is not None else pd.DataFrame()
    clip_license = dict(zip(clips["clip_id"], clips["license"].fillna("").astype(str))) if len(clips) else {}
    clip_kind = (dict(zip(clips["clip_id"], clips["license_kind"].astype(str))) if "license_kind" in clips.columns
                 else {c: license_kind(lic) for c, lic in clip_license.items()}) if len(clips) else {}
    df = _fill_licenses(df, clip_license)
    item_kinds = [_item_license_kinds(lics, cids, clip_kind) for lics, cids in zip(df["licenses"], df["clip_ids"])]
    n_before = len(df)
    if exclude_nc:
        keep = [not _nc(k) for k in item_kinds]
        df = df[keep].reset_index(drop=True)
        item_kinds = [k for k, kept in zip(item_kinds, keep) if kept]
    n_excluded_nc = n_before - len(df)
    if df.empty:
        raise InputError(f"{target}: no items left to release")

    out_root.mkdir(parents=True, exist_ok=True)
    tmp = out_root / f".{name}-{version}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        tasks: dict[str, dict] = {}
        for task in sorted(set(df["task"])):
            sub = df[df["task"] == task]
            spec = _spec(task)
            for split in SPLITS:
                part = sub[sub["split"] == split]
                if part.empty:
                    continue
                _write_items_parquet(part, tmp / task / f"{split}.parquet")
                _write_items_csv(part, spec, tmp / task / f"{split}.csv")
            tasks[task] = {
                "choices": _choices_for(sub, (task_choices or {}).get(task)),
                "counts": {s: int((sub["split"] == s).sum()) for s in SPLITS if (sub["split"] == s).any()},
                "balance": _balance(sub),
                "kind": spec.kind,
                "csv_columns": [csv_field(c)[0] for c in spec.csv_columns],
                "metrics": list(spec.metrics),
            }
        attribution = _attribution(df, clips)
        attribution.to_csv(tmp / "ATTRIBUTION.csv", index=False, lineterminator="\n", encoding="utf-8")
        if audio_index_dir is not None:
            src = Path(audio_index_dir)
            if not src.is_dir():
                raise InputError(f"{src}: audio index folder not found")
            shutil.copytree(src, tmp / "audio_index", ignore=shutil.ignore_patterns(".*"))
        for rel, data in sorted((extra_files or {}).items()):
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)

        report = validate_release(tmp, kinds={t: v["kind"] for t, v in tasks.items()})
        if not report.ok and strict:
            shown = "; ".join(report.violations[:3])
            raise ValidationError(f"{target}: refusing to publish, {len(report.violations)} violations: {shown}")
        all_kinds = sorted({k for ks in item_kinds for k in ks})
        manifest: dict[str, Any] = {
            "format": "auditorybench-release/1",
            "name": name,
            "version": str(version),
            "license": most_restrictive_license(all_kinds) if all_kinds else "unknown",
            "license_mix": {k: int(v) for k, v in sorted(attribution["license_kind"].value_counts().items())},
            "exclude_nc": bool(exclude_nc),
            "counts": {
                "items": int(len(df)),
                "clips": int(len(attribution)),
                "excluded_nc_items": int(n_excluded_nc),
                "review_flagged": int(df["review_flag"].sum()),
            },
            "tasks": tasks,
            "provenance": provenance or {},
            "stages": {
                s: {k: m.get(k) for k in ("counts", "params", "code_version") if k in m}
                for s, m in sorted((stage_manifests or {}).items())
            },
            "validation": {"ok": report.ok, "violations": report.violations, "figures": report.figures},
            "defects": dict(defects or {}) | ({"violations": report.violations} if report.violations else {}),
        }
        manifest["basis_mix"] = {
            t: {str(b): int(n) for b, n in sorted(g["basis"].value_counts().items()) if b}
            for t, g in df.groupby("task", sort=True) if tasks[t]["kind"] == "comparison" and (g["basis"] != "").any()
        }
        categories = (plot_tables or {}).get("categories")
        if categories is not None and len(categories) and len(attribution):
            cat = categories.drop_duplicates("clip_id").set_index("clip_id")["category"]
            used = cat.reindex(attribution["clip_id"]).fillna("unknown").astype(str)
            manifest["category_mix"] = {str(k): int(v) for k, v in sorted(used.value_counts().items())}
        manifest["figures"] = write_figures(tmp, df, plot_tables or {})
        manifest["files"] = file_digests(tmp)
        _dump_json(manifest, tmp / MANIFEST)
        return _publish(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _publish(tmp: Path, target: Path) -> Path:
    """Rename tmp onto target; if target exists, same content is a no-op and other content an error."""
    if not target.exists():
        try:
            os.rename(tmp, target)
            return target
        except OSError:
            if not target.exists():
                raise
    new, old = file_digests(tmp), {k: v for k, v in file_digests(target).items() if k != CARD}
    if new == old:
        return target
    differ = sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k))
    shown = ", ".join(differ[:4]) + (f" and {len(differ) - 4} more" if len(differ) > 4 else "")
    raise ReleaseIntegrityError(
        f"{target}: release {target.name} already exists with different content ({shown}); "
        f"bump release.version in params.yaml or remove the old release"
    )
