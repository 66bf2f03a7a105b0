"""One module per stage, each exposing `run(ctx) -> manifest` (ctx: pipeline.contract.Context).

The stages themselves are declared in pipeline/contract.py (inputs, outputs, params sections, flags); a module here
is the thin wrapper that reads the context and calls the stage's code with the freshness key."""
