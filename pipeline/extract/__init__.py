"""The extract stage (categories and animal items from captions) and the write stage (comparison sentences),
with an offline rules backend and an OpenAI-compatible LLM backend behind one validation gate."""

from pipeline.extract.stages import BACKENDS, extract_stage, make_backend, write_stage

__all__ = ["extract_stage", "write_stage", "make_backend", "BACKENDS"]
