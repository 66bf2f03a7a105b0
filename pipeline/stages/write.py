"""The write stage: pairs -> comparison sentences and the writer's own guess, rules or LLM backend (pipeline.extract)."""

from __future__ import annotations

from benchmark.tasks import writer_specs
from pipeline.extract.stages import write_stage

__all__ = ["run"]


def run(ctx) -> dict:
    return write_stage(ctx.build_dir, ctx.section("write"), writer_specs(ctx.all_params()), quiet=ctx.quiet,
                       offline=bool(ctx.options.get("offline")), key=ctx.key("write"),
                       engine=ctx.options.get("engine") or "local", workers=ctx.options.get("workers"))
