"""The filter stage: items kept or rejected (agreement, repeats, balance, rare answers, review) (pipeline.filter)."""

from __future__ import annotations

from pipeline.filter import filter_stage

__all__ = ["run"]


def run(ctx) -> dict:
    return filter_stage(ctx.build_dir, ctx.all_params(), quiet=ctx.quiet, key=ctx.key("filter"))
