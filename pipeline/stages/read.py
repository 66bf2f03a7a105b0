"""The read stage: tar shards (or an extracted folder) + meta CSV -> the clip table (pipeline.reader reads them)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm import tqdm

from benchmark.schema import COLUMNS
from pipeline.contract import open_stage
from pipeline.reader import SHARD_ERRORS, dedupe_clips, find_shards, read_inputs, read_loose, read_meta, read_shard_job
from pipeline.stage import log

__all__ = ["read_stage", "run"]


def run(ctx) -> dict:
    return read_stage(ctx.corpus, ctx.build_dir, ctx.section("read"), meta=ctx.meta, quiet=ctx.quiet, key=ctx.key("read"),
                      engine=ctx.options.get("engine") or "local", workers=ctx.options.get("workers"))


def read_stage(corpus: str | Path, build_dir: Path, params: dict, meta: str | Path | None = None, quiet: bool = False,
               key: dict | None = None, engine: str = "local", workers: int | None = None) -> dict:
    """Read a corpus into the build's clip and rejects tables (build_dir: build/<corpus id>). Shards are read by `read_shard_job` mapped
    by the engine (pipeline.engines: local process pool or Ray Data; workers: processes or actors, default all
    cores); finished shards are kept in a result store, so a killed read resumes with the unfinished shards.
    key: the stage's freshness key (pipeline.contract)."""
    root, shards = find_shards(corpus)
    inputs = read_inputs(corpus, meta or params.get("meta"))
    meta_path = inputs.get("meta_csv")
    source = params.get("source") or root.name
    run_params = {**params, "source": source}
    run = open_stage(build_dir, "read", run_params, external=inputs, key=key, quiet=quiet)
    if run.fresh():
        return run.previous()  # type: ignore[return-value]
    meta_rows = read_meta(meta_path)
    clips: list[dict] = []
    rejects: list[dict] = []
    computed = 0
    if shards:
        from pipeline.engines import PerUnit, map_units

        store = run.result_store("progress.sqlite")
        fps = run.input_fingerprints()
        keys = []
        for shard in shards:
            name = f"shard:{shard.relative_to(root) if shard.is_relative_to(root) else shard}"
            keys.append(f"{fps[name]}:{source}:{fps.get('meta_csv', '')}")
        todo = [i for i, key in enumerate(keys) if key not in store]
        bar = tqdm(total=len(todo), desc=f"read shards ({engine})", unit="shard", disable=quiet)
        for j, result in map_units(PerUnit(read_shard_job, (str(root), source, meta_rows)), [(str(shards[i]),) for i in todo],
                                   engine=engine, workers=workers, batch_size=1):
            store.put(keys[todo[j]], result)  # a finished shard survives a killed run
            for r in result["rejects"]:
                if r["reason"] in SHARD_ERRORS:
                    log(f"error: {r['detail']}")
            computed += 1
            bar.update()
        bar.close()
        for key in keys:  # shard order, whatever order they finished in
            done = store.get(key)
            clips.extend(done["clips"])
            rejects.extend(done["rejects"])
        store.close()
    else:
        clips, rejects = read_loose(root, source, meta_rows)
    clips = dedupe_clips(clips, rejects)
    df = pd.DataFrame(clips, columns=COLUMNS["clips"]).sort_values("clip_id", kind="stable").reset_index(drop=True)
    rj = pd.DataFrame(rejects, columns=COLUMNS["rejects"]).sort_values(["key", "reason"], kind="stable").reset_index(drop=True)
    run.write_table("clips.parquet", df)
    run.write_table("rejects.parquet", rj)
    counts = {
        "kept": len(df),
        "rejected": {k: int(v) for k, v in sorted(rj["reason"].value_counts().items())},
        "shards": len(shards),
        "license_flagged": int(df["license_flag"].sum()) if len(df) else 0,
        "license_kinds": {k: int(v) for k, v in sorted(df["license_kind"].value_counts().items())} if len(df) else {},
    }
    return run.finish(counts, extra={"corpus": {"root": str(root), "source": source, "meta_csv": str(meta_path or "")}},
                      run_stats={"shards_computed": computed})
