"""The pairs stage: measurements + categories + splits -> comparison pairs for every comparison task (pipeline.pairs)."""

from __future__ import annotations

from pipeline.pairs import pairs_stage

__all__ = ["run"]


def run(ctx) -> dict:
    return pairs_stage(ctx.build_dir, ctx.all_params(), quiet=ctx.quiet, key=ctx.key("pairs"))
