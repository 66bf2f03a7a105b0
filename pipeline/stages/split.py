"""The split stage: clips -> train/dev/test by hashing audio-content groups (pipeline.split)."""

from __future__ import annotations

from pipeline.split import split_stage

__all__ = ["run"]


def run(ctx) -> dict:
    return split_stage(ctx.build_dir, ctx.section("split"), quiet=ctx.quiet, key=ctx.key("split"), tasks=ctx.section("tasks"))
