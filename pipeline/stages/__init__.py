"""One module per stage, each exposing `run(ctx) -> manifest` (ctx: pipeline.contract.Context) and the stage body.

The stages themselves are declared in pipeline/contract.py (inputs, outputs, params sections, flags). A body gets its
paths from there alone: `open_stage` (or `ctx.open_stage`) gives the StageRun writing into its folder, with its
declared inputs in `run.inputs`; no module here names another stage's folder (tests/test_stage_paths.py). The domain
code a body calls stays in its package (pipeline.reader, pipeline.extract, pipeline.measure, pipeline.split, ...)."""
