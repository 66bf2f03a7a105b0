"""The measure stage wrapper: clips.parquet in; measurements.parquet, pitch_notes.parquet, fingerprints.parquet
(each measured clip's audio fingerprint, `pipeline.measure.fingerprint`: what the split stage finds near-duplicate
audio by), rejects.parquet and manifest.json out. pitch_notes.parquet says, per measured clip, which pass gave its pitch (f0_pass: base | high) and
why it is unpitched (unpitched_reason: "" when pitched; no_voiced | few_voiced | unstable | low_confidence |
passes_disagree).

Each unique audio (by audio_sha256) is measured once per params, by a module-level pure worker
(`measure_clip_job`) mapped by an engine (pipeline.engines: the local process pool, or Ray Data, a GPU per actor
for CREPE with device: cuda); results go into the stage's result store as they arrive, so a killed run resumes
computing only what is missing and a rerun with new shards measures only the new audio. The store is tied to the
stage's code version: after a change to the code that measures, every value is computed again.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmark.errors import InputError
from benchmark.hashing import sha256_bytes, stable_hash
from benchmark.schema import COLUMNS, Measurement, Reject
from pipeline.contract import open_stage
from pipeline.engines import PerUnit, map_units
from pipeline.measure.audio import AudioRejected
from pipeline.measure.fingerprint import FINGERPRINT_VERSION, fingerprint_audio_bytes
from pipeline.measure.measurement import NOTE_FIELDS, measure_audio_bytes
from pipeline.stage import ResultStore

__all__ = ["measure_stage", "measure_clip_job", "cache_key", "PITCH_NOTE_COLUMNS", "run"]

PITCH_NOTE_COLUMNS = ["clip_id", *NOTE_FIELDS]



def measure_clip_job(corpus_root: str, shard: str, member: str, offset: int, size: int, params: dict) -> dict:
    """Read one clip's bytes and measure them: a pure function of its arguments (safe in any worker process).

    Returns {"audio_sha256": hex, "measurement": {Measurement fields but clip_id/audio_sha256}} or
    {"audio_sha256": hex or "", "reject": reason, "detail": text}.
    """
    from pipeline.reader import read_clip_bytes

    try:
        data = read_clip_bytes(Path(corpus_root), shard, member, int(offset), int(size))
    except (InputError, OSError) as e:
        return {"audio_sha256": "", "reject": "unreadable_member", "detail": " ".join(str(e).split())[:200]}
    sha = sha256_bytes(data)
    try:
        return {"audio_sha256": sha, "measurement": measure_audio_bytes(data, params),
                "fingerprint": fingerprint_audio_bytes(data).tolist()}
    except AudioRejected as e:
        return {"audio_sha256": sha, "reject": e.reason, "detail": e.detail}


def cache_key(audio_sha256: str, params: dict) -> str:
    """The result store key of one audio under one set of measure params."""
    return stable_hash([audio_sha256, params, FINGERPRINT_VERSION], n=32)


def _unit_id(row) -> str:
    """Audio identity for de-duplication: its content hash, else where it lives."""
    return row.audio_sha256 or f"at:{row.shard}:{row.member}:{row.offset}:{row.size}"


def _run_jobs(jobs: dict[str, tuple], params: dict, store: ResultStore, workers: int | None, quiet: bool,
              engine: str = "local") -> int:
    """Compute every job (key -> clip location) on the engine, putting each result into the store as it arrives."""
    keys = list(jobs)
    num_gpus = 1.0 if str(params.get("device", "cpu")) == "cuda" and str(params.get("estimator", "")).startswith("crepe") else 0.0
    bar = tqdm(total=len(jobs), desc=f"measure ({engine})", unit="clip", disable=quiet)
    done = 0
    for i, result in map_units(PerUnit(measure_clip_job, (params,)), [jobs[k] for k in keys], engine=engine,
                               workers=workers, batch_size=4, num_gpus=num_gpus):
        store.put(keys[i], result)
        done += 1
        bar.update()
    bar.close()
    return done


def measure_stage(build_dir: Path, corpus_root: Path, params: dict, workers: int | None = None, quiet: bool = False,
                  key: dict | None = None, engine: str = "local") -> dict:
    """Measure every clip of the build's clip table (build_dir: build/<corpus id>); write the measurements, pitch notes and rejects tables.

    params: the `measure` section of params.yaml. workers: processes or Ray actors (default os.cpu_count(); 1 with
    the local engine = in-process). engine: local | ray (pipeline.engines; the outputs are the same bytes).
    Returns the manifest (counts kept / rejected by reason; extra: estimators, per-estimator counts, computed /
    from_cache units). Bad audio becomes reject rows, never a crash.
    """
    build_dir, corpus_root = Path(build_dir), Path(corpus_root)
    run = open_stage(build_dir, "measure", params, key=key, quiet=quiet)
    clips_path = run.inputs["clips"]
    if run.fresh():
        return run.previous() or {}
    clips = pd.read_parquet(clips_path, columns=["clip_id", "shard", "member", "offset", "size", "audio_sha256"])
    store = run.result_store("cache.sqlite")
    try:
        keys: list[str] = []
        jobs: dict[str, tuple] = {}
        for row in clips.itertuples(index=False):
            key = cache_key(_unit_id(row), params)
            keys.append(key)
            if key not in jobs and key not in store:
                jobs[key] = (str(corpus_root), row.shard, row.member, int(row.offset), int(row.size))
        n_units = len(set(keys))
        computed = _run_jobs(jobs, params, store, workers, quiet, engine)
        rows, notes, rejects, prints = [], [], [], []
        for row, key in zip(clips.itertuples(index=False), keys):
            res = store.get(key)
            if res is None:  # cannot happen unless the store was edited underneath us
                raise InputError(f"{store.path}: result for clip {row.clip_id} missing after computing it")
            if "reject" in res:
                rejects.append(Reject(stage="measure", key=row.clip_id, reason=res["reject"], detail=res.get("detail", "")).model_dump())
                continue
            if row.audio_sha256 and res["audio_sha256"] != row.audio_sha256:
                rejects.append(Reject(stage="measure", key=row.clip_id, reason="audio_changed",
                                      detail=f"sha256 {res['audio_sha256'][:12]} != clips.parquet {row.audio_sha256[:12]}").model_dump())
                continue
            rows.append(Measurement(clip_id=row.clip_id, audio_sha256=res["audio_sha256"], **res["measurement"]).model_dump())
            notes.append({"clip_id": row.clip_id, **{k: str(res["measurement"].get(k, "")) for k in NOTE_FIELDS}})
            prints.append({"clip_id": row.clip_id, "fingerprint": np.asarray(res["fingerprint"], np.uint32).tobytes()})
    finally:
        store.close()
    table = pd.DataFrame(rows, columns=COLUMNS["measurements"]).sort_values("clip_id", kind="stable").reset_index(drop=True)
    rej = pd.DataFrame(rejects, columns=COLUMNS["rejects"]).sort_values(["key", "reason"], kind="stable").reset_index(drop=True)
    note_table = pd.DataFrame(notes, columns=PITCH_NOTE_COLUMNS).sort_values("clip_id", kind="stable").reset_index(drop=True)
    run.write_table("measurements.parquet", table)
    run.write_table("pitch_notes.parquet", note_table)
    run.write_table("fingerprints.parquet", pd.DataFrame(prints, columns=["clip_id", "fingerprint"]).sort_values("clip_id", kind="stable")
                    .reset_index(drop=True))
    run.write_table("rejects.parquet", rej)
    check = str(params["check_estimator"]) if params.get("cross_check") else None
    extra = {
        "estimators": {"f0_hz": str(params["estimator"]), "f0_check_hz": check},
        "per_estimator": {str(params["estimator"]): len(table), **({check: len(table)} if check else {})},
        "pitched": int(table["pitched"].sum()) if len(table) else 0,
        "estimator_disagree": int(table["estimator_disagree"].sum()) if len(table) else 0,
        "unique_audio": n_units,
        "f0_pass": dict(sorted(Counter(note_table["f0_pass"]).items())),
        "unpitched_reasons": dict(sorted(Counter(r for r in note_table["unpitched_reason"] if r).items())),
    }
    counts = {"kept": len(table), "rejected": dict(sorted(Counter(r["reason"] for r in rejects).items()))}
    return run.finish(counts, extra, run_stats={"units": {"unique_audio": n_units, "computed": computed, "from_cache": n_units - computed}})


def run(ctx) -> dict:
    return measure_stage(ctx.build_dir, ctx.corpus_root(), ctx.section("measure"), workers=ctx.options.get("workers"),
                         quiet=ctx.quiet, key=ctx.key("measure"), engine=ctx.options.get("engine") or "local")
