"""The domain of the extract stage (categories and animal items from captions) and the write stage (comparison
sentences): an offline rules backend and an OpenAI-compatible LLM backend behind one validation gate. The stage
bodies are pipeline/stages/extract.py and pipeline/stages/write.py."""

from pipeline.extract.backend import BACKENDS, make_backend

__all__ = ["make_backend", "BACKENDS"]
