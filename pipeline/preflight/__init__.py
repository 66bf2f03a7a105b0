"""`auditorybench preflight`: the LLM against the demo truth, a sample of the user's corpus, and the projection of
the whole run, before a real one (run.py; truth.py, sample.py, projection.py)."""

from pipeline.preflight.run import WeakModelError, run_preflight
from pipeline.preflight.truth import Thresholds

__all__ = ["run_preflight", "Thresholds", "WeakModelError"]
