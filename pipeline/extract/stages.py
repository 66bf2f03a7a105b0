"""Stage wrappers: `extract` (categories + animal items from clips) and `write` (comparison sentences from pairs).

Both run a backend ("rules" offline, or "openai" for any OpenAI-compatible server) and send every proposal through
the same `validate` gate. Rejects are kept with a reason in rejects.parquet; a stage stops with RejectBudgetError when
they exceed max_reject_frac. A unit the endpoint failed to answer is no reject: the stage ends incomplete
(pending.stop_if_pending). LLM answers live in build/<corpus>/llm_cache/, so a rerun replays them with no request.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import fields
from pathlib import Path

import pandas as pd

from benchmark.errors import InputError, RejectBudgetError, UnknownNameError
from benchmark.schema import COLUMNS
from pipeline.extract.cache import LLMCache
from pipeline.extract.client import LLMSettings
from pipeline.extract.lexicon import load_lexicon
from pipeline.extract.pending import is_pending, stop_if_pending
from pipeline.extract.records import Failure, make_clip_text, make_pair_text
from pipeline.extract.rules import RulesBackend
from pipeline.extract.validate import validate_animal_item, validate_category, validate_sentence
from pipeline.stage import StageRun

__all__ = ["extract_stage", "write_stage", "make_backend", "BACKENDS", "CATEGORY_COLUMNS", "ANIMAL_COLUMNS", "SENTENCE_COLUMNS"]

BACKENDS = ("rules", "openai")
CATEGORY_COLUMNS = ["clip_id", "category", "source_name", "category_path", "confidence", "backend"]
ANIMAL_COLUMNS = ["clip_id", "sentence", "answer", "description", "spans", "backend", "model", "prompt_version"]
SENTENCE_COLUMNS = ["pair_id", "task", "sentence", "span1", "span2", "answer", "llm_guess", "backend", "model", "prompt_version"]
_EXTRACT_PROMPTS = {"categorise": "prompt_categorise", "animal_item": "prompt_animal_item"}
_WRITE_PROMPTS = {"comparison_sentence": "prompt_comparison_sentence"}


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


def _run_params(params: dict, backend, section: str) -> dict:
    """What decides the outputs: params plus the resolved model and prompts, each as "<name>.<version>@<hash of its
    text>" (never the key or endpoint)."""
    out = {k: v for k, v in params.items() if k not in ("model_override", "base_url_override", "base_url")}
    if backend.name == "rules":  # settings of the LLM client do not change what the rules write
        llm_keys = {f.name for f in fields(LLMSettings)} | {"cache_dir", "batch_size"}
        out = {k: v for k, v in out.items() if k not in llm_keys and not k.startswith("prompt_")}
    out["model"] = backend.model
    out["prompt_versions"] = backend.prompt_versions
    return out


def _prompt_id(backend, role: str) -> str:
    """What an output row records as its prompt: "<name>.<version>" (the rules: the lexicon's version)."""
    prompts = getattr(backend, "prompts", None)
    return prompts[role].id if prompts and role in prompts else backend.prompt_versions.get("rules", "")


def _reject(stage: str, key: str, f: Failure, step: str) -> dict:
    return {"stage": stage, "key": key, "reason": f.reason, "detail": f"{step}: {f.detail}" if f.detail else step}


def _check_budget(stage: str, n_units: int, rejects: list[dict], max_frac: float, where: Path) -> None:
    if n_units and len(rejects) / n_units > max_frac:
        top = ", ".join(f"{r} {n}" for r, n in Counter(x["reason"] for x in rejects).most_common(3))
        raise RejectBudgetError(f"{stage}: {len(rejects)} of {n_units} units rejected ({len(rejects) / n_units:.0%} > "
                                f"max_reject_frac {max_frac:.0%}; {top}); see {where}")


def _counts(kept: int, rejects: list[dict]) -> dict:
    reasons = Counter(r["reason"] for r in rejects)
    return {"kept": kept, "rejected": dict(sorted(reasons.items()))}


def _llm_run_stats(backend) -> dict | None:
    """run.json of an LLM run (it varies between runs): latency p50/p95, answers/s, the concurrency settled at."""
    return {"llm_timing": backend.client.timing()} if backend.name == "openai" else None


def _llm_extra(backend) -> dict:
    extra = {"backend": backend.name, "model": backend.model, "prompt_versions": backend.prompt_versions}
    if backend.name == "openai":
        extra["llm"] = backend.settings.public()
        extra["sampling"] = backend.settings.sampling()
        extra["llm_stats"] = backend.stats
        extra["structured_output_used"] = backend.client.mode  # after any fallback (auto: json_schema, json_object, text)
    return extra


def extract_stage(build_dir: Path, params: dict, quiet: bool = False, offline: bool = False, key: dict | None = None,
                  engine: str = "local", workers: int | None = None) -> dict:
    """build_dir/read/clips.parquet -> build_dir/extract/{categories,animal_items,rejects}.parquet + manifest.json."""
    build_dir = Path(build_dir)
    clips_path = build_dir / "read" / "clips.parquet"
    if not clips_path.exists():
        raise InputError(f"{clips_path}: no clip table; run the read stage first")
    backend = make_backend(params, build_dir, _EXTRACT_PROMPTS, "extract", offline=offline, quiet=quiet, engine=engine,
                           workers=workers)
    try:
        return _extract(build_dir, clips_path, params, backend, quiet, key)
    finally:
        backend.close()


def _extract(build_dir: Path, clips_path: Path, params: dict, backend, quiet: bool, key: dict | None) -> dict:
    run = StageRun("extract", build_dir / "extract", _run_params(params, backend, "extract"), inputs={"clips": clips_path},
                   key=key, quiet=quiet)
    prev = run.previous()
    if prev and run.fresh():
        return prev
    max_chars = int(params.get("max_caption_chars", 600))
    df = pd.read_parquet(clips_path)
    rejects: list[dict] = []
    clips, seen = [], set()
    for r in df.sort_values("clip_id", kind="stable").itertuples(index=False):
        if r.clip_id in seen:
            rejects.append(_reject("extract", r.clip_id, Failure("duplicate_clip_id"), "read"))
            continue
        seen.add(r.clip_id)
        clips.append(make_clip_text(r.clip_id, r.title, r.tags, r.description, r.captions, max_chars))
    lex = load_lexicon()

    # 1. categories: batches, then every clip that failed inside a batch is asked again alone, so one clip's bad
    #    (or hostile) text cannot cost another clip its category.
    batch_size = max(1, int(params.get("batch_size", 8))) if backend.batched else max(1, len(clips))
    batches = [clips[i : i + batch_size] for i in range(0, len(clips), batch_size)]
    results = {}
    props = backend.propose_categories(batches)
    for c in clips:
        p = props.get(c.clip_id, Failure("missing_in_reply"))
        results[c.clip_id] = p if isinstance(p, Failure) else validate_category(c, p, lex)
    if backend.batched and batch_size > 1:
        # (not those the endpoint failed: asked alone, their answers would depend on when it failed)
        again = [c for c in clips if isinstance(results[c.clip_id], Failure) and not is_pending(results[c.clip_id])]
        if again:
            props = backend.propose_categories([[c] for c in again])
            for c in again:
                p = props.get(c.clip_id, Failure("missing_in_reply"))
                results[c.clip_id] = p if isinstance(p, Failure) else validate_category(c, p, lex)
    cat_rows = []
    for c in clips:
        res = results[c.clip_id]
        if isinstance(res, Failure):
            rejects.append(_reject("extract", c.clip_id, res, "categorise"))
            res = {"clip_id": c.clip_id, "category": "other", "source_name": "", "category_path": "other", "confidence": 0.0}
        cat_rows.append({**res, "backend": backend.name})

    # 2. animal items, for the clips categorised as animals
    by_id = {c.clip_id: c for c in clips}
    animal = [(by_id[r["clip_id"]], r["source_name"]) for r in cat_rows if r["category"] == "animal"]
    props = backend.propose_animal_items(animal)
    item_rows = []
    item_version = _prompt_id(backend, "animal_item")
    for c, source in animal:
        p = props.get(c.clip_id, Failure("missing_in_reply"))
        res = p if isinstance(p, Failure) else validate_animal_item(c, p, lex, source)
        if isinstance(res, Failure):
            rejects.append(_reject("extract", c.clip_id, res, "animal_item"))
        else:
            item_rows.append({**res, "backend": backend.name, "model": backend.model, "prompt_version": item_version})

    categories = pd.DataFrame(cat_rows, columns=CATEGORY_COLUMNS)
    items = pd.DataFrame(item_rows, columns=ANIMAL_COLUMNS)
    stop_if_pending("extract", rejects, len(clips), "clips", backend)
    reject_df = pd.DataFrame(rejects, columns=COLUMNS["rejects"])
    run.write_table("rejects.parquet", reject_df)
    _check_budget("extract", len(clips) + len(animal), rejects, float(params.get("max_reject_frac", 0.5)),
                  run.path("rejects.parquet"))
    run.write_table("categories.parquet", categories)
    run.write_table("animal_items.parquet", items)
    counts = _counts(len(items), rejects)
    counts["categories"] = dict(sorted(Counter(categories["category"]).items()))
    extra = _llm_extra(backend)
    # the rules answer from the lexicon's animals; an LLM's vocabulary is open (any animal a clip's own text names)
    extra["answer_vocabulary"] = lex.animals if backend.name == "rules" else "open"
    extra["answers_used"] = dict(sorted(Counter(items["answer"]).items()))
    extra["clips_with_instruction_text"] = sum(c.injected for c in clips)
    return run.finish(counts, extra, _llm_run_stats(backend))


def write_stage(build_dir: Path, params: dict, task_specs: dict, quiet: bool = False, offline: bool = False,
                key: dict | None = None, engine: str = "local", workers: int | None = None) -> dict:
    """build_dir/pairs/pairs.parquet -> build_dir/write/{sentences,rejects}.parquet + manifest.json.
    The writer sees source names and captions only; the measured label is joined in after validation."""
    build_dir = Path(build_dir)
    pairs_path = build_dir / "pairs" / "pairs.parquet"
    if not pairs_path.exists():
        raise InputError(f"{pairs_path}: no pair table; run the pairs stage first")
    task_prompts = {name: spec["prompt_file"] for name, spec in task_specs.items() if spec.get("prompt_file")}
    backend = make_backend(params, build_dir, _WRITE_PROMPTS, "write", offline=offline, quiet=quiet,
                           task_prompt_files=task_prompts, engine=engine, workers=workers)
    try:
        return _write(build_dir, pairs_path, params, task_specs, backend, quiet, key)
    finally:
        backend.close()


def _write(build_dir: Path, pairs_path: Path, params: dict, task_specs: dict, backend, quiet: bool, key: dict | None) -> dict:
    run_params = _run_params(params, backend, "write")
    # a prompt file counts by its name and text (in prompt_versions), never by where this checkout keeps it
    run_params["task_specs"] = {name: {k: v for k, v in spec.items() if k != "prompt_file"} for name, spec in task_specs.items()}
    run = StageRun("write", build_dir / "write", run_params, inputs={"pairs": pairs_path}, key=key, quiet=quiet)
    prev = run.previous()
    if prev and run.fresh():
        return prev
    max_chars = int(params.get("max_caption_chars", 600))
    df = pd.read_parquet(pairs_path).sort_values("pair_id", kind="stable")
    rejects: list[dict] = []
    pairs, labels = [], {}
    for r in df.itertuples(index=False):
        if r.task not in task_specs:
            rejects.append(_reject("write", r.pair_id, Failure("unknown_task", f"{r.task!r}"), "write"))
            continue
        if r.pair_id in labels:
            rejects.append(_reject("write", r.pair_id, Failure("duplicate_pair_id"), "write"))
            continue
        labels[r.pair_id] = str(r.label)
        pairs.append(make_pair_text(r.pair_id, r.task, r.source_a, r.source_b, r.caption_a, r.caption_b, task_specs[r.task], max_chars))
    props = backend.propose_sentences(pairs)
    rows = []
    for p in pairs:
        prop = props.get(p.pair_id, Failure("missing_in_reply"))
        res = prop if isinstance(prop, Failure) else validate_sentence(p, prop)
        if isinstance(res, Failure):
            rejects.append(_reject("write", p.pair_id, res, "sentence"))
        else:
            version = backend.sentence_prompt(p.task).id if backend.name == "openai" else _prompt_id(backend, "rules")
            rows.append({**res, "answer": labels[p.pair_id], "backend": backend.name, "model": backend.model,
                         "prompt_version": version})
    stop_if_pending("write", rejects, len(pairs), "pairs", backend)
    reject_df = pd.DataFrame(rejects, columns=COLUMNS["rejects"])
    run.write_table("rejects.parquet", reject_df)
    _check_budget("write", len(df), rejects, float(params.get("max_reject_frac", 0.5)), run.path("rejects.parquet"))
    sentences = pd.DataFrame(rows, columns=SENTENCE_COLUMNS)
    run.write_table("sentences.parquet", sentences)
    counts = _counts(len(sentences), rejects)
    guessed = sentences[sentences["llm_guess"] != ""]
    extra = _llm_extra(backend)
    extra["guess_rate"] = round(len(guessed) / len(sentences), 4) if len(sentences) else 0.0
    extra["guess_agreement"] = round(float((guessed["llm_guess"] == guessed["answer"]).mean()), 4) if len(guessed) else None
    return run.finish(counts, extra, _llm_run_stats(backend))
