"""The read stage: tar shards (or an extracted folder) + meta CSV -> read/clips.parquet (pipeline.reader)."""

from __future__ import annotations

from pipeline.reader import read_stage

__all__ = ["run"]


def run(ctx) -> dict:
    return read_stage(ctx.corpus, ctx.build_dir, ctx.section("read"), meta=ctx.meta, quiet=ctx.quiet, key=ctx.key("read"),
                      engine=ctx.options.get("engine") or "local", workers=ctx.options.get("workers"))
