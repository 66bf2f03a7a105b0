"""What the `extract` stage (categories + animal items from clips, pipeline/stages/extract.py) and the `write` stage
(comparison sentences from pairs, pipeline/stages/write.py) share: their output columns, the backend, and how
rejects are counted.

Both run a backend ("rules" offline, or "openai" for any OpenAI-compatible server) and send every proposal through
the same `validate` gate. Rejects are kept with a reason in rejects.parquet; a stage stops with RejectBudgetError when
they exceed max_reject_frac. A unit the endpoint failed to answer is no reject: the stage ends incomplete
(pending.stop_if_pending). LLM answers live in build/<corpus>/llm_cache/, so a rerun replays them with no request.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import fields
from pathlib import Path

from benchmark.errors import RejectBudgetError, UnknownNameError
from pipeline.extract.cache import LLMCache
from pipeline.extract.client import LLMSettings
from pipeline.extract.lexicon import load_lexicon
from pipeline.extract.records import Failure
from pipeline.extract.rules import RulesBackend

__all__ = ["make_backend", "run_params", "prompt_id", "reject_row", "check_budget", "reject_counts", "llm_extra",
           "llm_run_stats", "BACKENDS", "CATEGORY_COLUMNS", "ANIMAL_COLUMNS", "SENTENCE_COLUMNS", "EXTRACT_PROMPTS", "WRITE_PROMPTS"]

BACKENDS = ("rules", "openai")
CATEGORY_COLUMNS = ["clip_id", "category", "source_name", "category_path", "confidence", "backend"]
ANIMAL_COLUMNS = ["clip_id", "sentence", "answer", "description", "spans", "backend", "model", "prompt_version"]
SENTENCE_COLUMNS = ["pair_id", "task", "sentence", "span1", "span2", "answer", "llm_guess", "backend", "model", "prompt_version"]
EXTRACT_PROMPTS = {"categorise": "prompt_categorise", "animal_item": "prompt_animal_item"}
WRITE_PROMPTS = {"comparison_sentence": "prompt_comparison_sentence"}


def make_backend(params: dict, build_dir: Path, prompts: dict[str, str], section: str, offline: bool = False,
                 quiet: bool = False, task_prompt_files: dict[str, str] | None = None, engine: str = "local",
                 workers: int | None = None):
    """The backend named by params["backend"]: RulesBackend or OpenAIBackend (with its cache under build_dir).
    `task_prompt_files`: each comparison task's own prompt file (the LLM writer uses it instead of the generic one).
    `engine`, `workers`: where an LLM's requests are asked from (pipeline.engines; the rules run here)."""
    name = str(params.get("backend", "rules"))
    if name == "rules":
        return RulesBackend(load_lexicon(), guess_margin=float(params.get("guess_margin", 0.5)))
    if name == "openai":
        from pipeline.extract.llm import OpenAIBackend  # imports the openai package only when asked for

        settings = LLMSettings.from_params(params, section)
        cache = LLMCache(Path(build_dir) / str(params.get("cache_dir", "llm_cache")))
        versions = {p: str(params.get(key, "v1")) for p, key in prompts.items()}
        return OpenAIBackend(settings, cache, versions, offline=offline, quiet=quiet, task_prompt_files=task_prompt_files,
                             engine=engine, workers=workers)
    import difflib

    close = difflib.get_close_matches(name, BACKENDS, n=1)
    raise UnknownNameError(f"{section}.backend: unknown backend {name!r}" + (f"; did you mean {close[0]!r}?" if close else
                                                                              f" (known: {', '.join(BACKENDS)})"))


def run_params(params: dict, backend, section: str) -> dict:
    """What decides the outputs: params plus the resolved model and prompts, each as "<name>.<version>@<hash of its
    text>" (never the key or endpoint)."""
    out = {k: v for k, v in params.items() if k not in ("model_override", "base_url_override", "base_url")}
    if backend.name == "rules":  # settings of the LLM client do not change what the rules write
        llm_keys = {f.name for f in fields(LLMSettings)} | {"cache_dir", "batch_size"}
        out = {k: v for k, v in out.items() if k not in llm_keys and not k.startswith("prompt_")}
    out["model"] = backend.model
    out["prompt_versions"] = backend.prompt_versions
    return out


def prompt_id(backend, role: str) -> str:
    """What an output row records as its prompt: "<name>.<version>" (the rules: the lexicon's version)."""
    prompts = getattr(backend, "prompts", None)
    return prompts[role].id if prompts and role in prompts else backend.prompt_versions.get("rules", "")


def reject_row(stage: str, key: str, f: Failure, step: str) -> dict:
    return {"stage": stage, "key": key, "reason": f.reason, "detail": f"{step}: {f.detail}" if f.detail else step}


def check_budget(stage: str, n_units: int, rejects: list[dict], max_frac: float, where: Path) -> None:
    if n_units and len(rejects) / n_units > max_frac:
        top = ", ".join(f"{r} {n}" for r, n in Counter(x["reason"] for x in rejects).most_common(3))
        raise RejectBudgetError(f"{stage}: {len(rejects)} of {n_units} units rejected ({len(rejects) / n_units:.0%} > "
                                f"max_reject_frac {max_frac:.0%}; {top}); see {where}")


def reject_counts(kept: int, rejects: list[dict]) -> dict:
    reasons = Counter(r["reason"] for r in rejects)
    return {"kept": kept, "rejected": dict(sorted(reasons.items()))}


def llm_run_stats(backend) -> dict | None:
    """run.json of an LLM run (it varies between runs): latency p50/p95, answers/s, the concurrency settled at."""
    return {"llm_timing": backend.client.timing()} if backend.name == "openai" else None


def llm_extra(backend) -> dict:
    extra = {"backend": backend.name, "model": backend.model, "prompt_versions": backend.prompt_versions}
    if backend.name == "openai":
        extra["llm"] = backend.settings.public()
        extra["sampling"] = backend.settings.sampling()
        extra["llm_stats"] = backend.stats
        extra["structured_output_used"] = backend.client.mode  # after any fallback (auto: json_schema, json_object, text)
    return extra
