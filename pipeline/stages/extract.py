"""The extract stage: clips -> categories and animal items, rules or LLM backend (pipeline.extract)."""

from __future__ import annotations

from pipeline.extract.stages import extract_stage

__all__ = ["run"]


def run(ctx) -> dict:
    return extract_stage(ctx.build_dir, ctx.section("extract"), quiet=ctx.quiet, offline=bool(ctx.options.get("offline")),
                         key=ctx.key("extract"), engine=ctx.options.get("engine") or "local",
                         workers=ctx.options.get("workers"))
