"""The LLM against known truth: extract → filter on the demo corpus, beside the rules backend.

`truth_figures(build, truth)` reads one build's stage outputs and manifests (categories, sources and animal answers
against the demo corpus's ground_truth.csv; items kept; rejects by reason; the writer's guess against the
measurement; the structured-output mode reached; requests, tokens, timeouts, retries; latency and the rate the
adaptive limit settled at); `truth_table` lays several builds side by side; `weak_model_reasons` says, in plain
sentences, where a model is below the thresholds. Both rates are over the truth (the sample's true animal clips, all
its clips), so they are defined when a model yields 0 items.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.contract import stage_file
from pipeline.extract.lexicon import load_lexicon
from pipeline.extract.text import canonical_name, phrase_in, split_title, tokenize

__all__ = ["Thresholds", "read_truth", "read_run_json", "truth_figures", "truth_table", "weak_model_reasons", "unsupported_items"]


@dataclass(frozen=True)
class Thresholds:
    """What a model must reach on the demo truth before a real run (flags of `auditorybench preflight`). The rules
    backend reaches 100 % and about 90 % on the demo corpus; a model below these would cost most of the benchmark."""

    min_category_agreement: float = 0.7  # clips whose category is the truth's, over all the sample's clips
    min_animal_recall: float = 0.5  # true animal clips with an accepted item naming the true animal, over them


def read_truth(path: Path) -> pd.DataFrame:
    """ground_truth.csv of a demo corpus: the good clips' clip_id, category, source_name."""
    truth = pd.read_csv(path, keep_default_na=False)
    return truth[truth["bad"] == ""][["clip_id", "category", "source_name"]].reset_index(drop=True)


def _manifest(build: Path, stage: str) -> dict:
    path = stage_file(build, f"{stage}/manifest.json")
    return json.loads(path.read_text()) if path.exists() else {}


def read_run_json(build: Path, stage: str) -> dict:
    """What varied in the stage's last computing run (its latency and rate): run.json beside the manifest."""
    path = stage_file(build, f"{stage}/run.json")
    return json.loads(path.read_text()) if path.exists() else {}


def _supported(answer: str, row) -> bool:
    """An independent check (not validate's code path): the answer's words (or, for the rules' lexicon names, one of
    their aliases: "perro" names a dog) are in the clip's title, tags or description."""
    tags = row.tags if row.tags is not None else []
    toks = tokenize(" ".join([split_title(str(row.title or "")), " ".join(str(t) for t in tags), str(row.description or "")]))
    return bool(phrase_in(canonical_name(answer), toks)) or answer in {m.name for m in load_lexicon().mentions(" ".join(toks))}


def unsupported_items(figures: dict) -> list[str]:
    """Accepted answers no model may give: not named in the clip's own text, or from a clip that is no animal."""
    return figures["unsupported_answers"] + figures["answers_on_non_animal_clips"]


def truth_figures(build: Path, truth: pd.DataFrame, walls: dict[str, float]) -> dict:
    """The figures of one build (extract → filter) against the truth; `walls`: wall seconds per stage."""
    ext, wr, fl, pairs = (_manifest(build, s) for s in ("extract", "write", "filter", "pairs"))
    cats = pd.read_parquet(stage_file(build, "extract/categories.parquet")).merge(truth, on="clip_id", suffixes=("", "_true"))
    items = pd.read_parquet(stage_file(build, "extract/animal_items.parquet")).merge(truth, on="clip_id")
    clips = pd.read_parquet(stage_file(build, "read/clips.parquet")).set_index("clip_id")
    named = cats[cats["category"] != "other"]
    right_items = items[items["answer"].map(canonical_name) == items["source_name"].map(canonical_name)]
    stats = [m.get("llm_stats") or {} for m in (ext, wr)]
    timing = [read_run_json(build, s).get("llm_timing") or {} for s in ("extract", "write")]
    return {
        "wall_s": walls,
        "requests": sum(s.get("requests_sent", 0) for s in stats),
        "answered": sum(s.get("answered", 0) for s in stats),
        "prompt_tokens": sum(s.get("prompt_tokens", 0) for s in stats),
        "completion_tokens": sum(s.get("completion_tokens", 0) for s in stats),
        "timeouts": sum(s.get("timeouts", 0) for s in stats),
        "retries": sum(s.get("retries", 0) for s in stats),
        "schema_fallbacks": sum(s.get("schema_fallbacks", 0) for s in stats),
        "structured_output": "/".join(dict.fromkeys(m.get("structured_output_used", "-") for m in (ext, wr))),
        "latency_p50_s": [t.get("latency_p50_s") for t in timing],
        "latency_p95_s": [t.get("latency_p95_s") for t in timing],
        "answers_per_s": [t.get("answers_per_s") for t in timing],
        "concurrency_settled": [t.get("concurrency_settled") for t in timing],
        "clips": len(cats),
        "categorised": len(named),
        "category_agree": int((cats["category"] == cats["category_true"]).sum()),
        "source_agree": int((named["source_name"].map(canonical_name) == named["source_name_true"].map(canonical_name)).sum()),
        "animal_clips_true": int((truth["category"] == "animal").sum()),
        "animal_items": len(items),
        "answer_agree": len(right_items),
        "animal_found": int(right_items[right_items["category"] == "animal"]["clip_id"].nunique()),
        "answers": dict(sorted(Counter(items["answer"]).items())),
        "unsupported_answers": [f"{r.clip_id}: {r.answer}" for r in items.itertuples()
                                if not _supported(r.answer, clips.loc[r.clip_id])],
        "answers_on_non_animal_clips": [f"{r.clip_id}: {r.answer} ({r.category})" for r in items.itertuples()
                                        if r.category != "animal"],
        "pairs": (pairs.get("counts") or {}).get("kept", "-"),
        "sentences": (wr.get("counts") or {}).get("kept", "-"),
        "guess_agreement": wr.get("guess_agreement", "-"),
        "released_items": (fl.get("counts") or {}).get("kept", "-"),
        "extract_rejects": (ext.get("counts") or {}).get("rejected", {}),
        "write_rejects": (wr.get("counts") or {}).get("rejected", {}),
    }


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.0f} %)" if d else "0/0"


def _pair(values: list) -> str:
    return " / ".join("-" if v is None else str(v) for v in values)


def truth_table(res: dict[str, dict]) -> str:
    """A markdown table, one column per build."""
    rows = [
        ("LLM requests (incl. retries)", lambda f: f["requests"]),
        ("tokens in / out", lambda f: f"{f['prompt_tokens']} / {f['completion_tokens']}"),
        ("timeouts / retries / schema fallbacks", lambda f: f"{f['timeouts']} / {f['retries']} / {f['schema_fallbacks']}"),
        ("structured output reached (extract/write)", lambda f: f["structured_output"]),
        ("latency p50 s (extract/write)", lambda f: _pair(f["latency_p50_s"])),
        ("latency p95 s (extract/write)", lambda f: _pair(f["latency_p95_s"])),
        ("answers/s at the settled concurrency (extract/write)",
         lambda f: " / ".join(f"{r} at {c}" if r else "-" for r, c in zip(f["answers_per_s"], f["concurrency_settled"]))),
        ("wall s: extract / write", lambda f: f"{f['wall_s'].get('extract', '-')} / {f['wall_s'].get('write', '-')}"),
        ("category = truth (of all clips)", lambda f: _pct(f["category_agree"], f["clips"])),
        ("clips categorised (not other)", lambda f: _pct(f["categorised"], f["clips"])),
        ("source = truth (of categorised)", lambda f: _pct(f["source_agree"], f["categorised"])),
        ("true animal clips with the right item", lambda f: _pct(f["animal_found"], f["animal_clips_true"])),
        ("animal items / answer = truth", lambda f: f"{f['animal_items']} / {f['answer_agree']}"),
        ("answers not named in the clip's text", lambda f: len(f["unsupported_answers"])),
        ("animal items from clips that are no animal (truth)", lambda f: len(f["answers_on_non_animal_clips"])),
        ("pairs / sentences kept", lambda f: f"{f['pairs']} / {f['sentences']}"),
        ("writer guess = measurement", lambda f: f["guess_agreement"]),
        ("items after filter", lambda f: f["released_items"]),
        ("extract rejects", lambda f: ", ".join(f"{k} {v}" for k, v in f["extract_rejects"].items()) or "-"),
        ("write rejects", lambda f: ", ".join(f"{k} {v}" for k, v in f["write_rejects"].items()) or "-"),
    ]
    cols = list(res)
    lines = ["| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    lines += ["| " + name + " | " + " | ".join(str(get(res[c])) for c in cols) + " |" for name, get in rows]
    return "\n".join(lines)


def weak_model_reasons(f: dict, t: Thresholds) -> list[str]:
    """Plain sentences, one per threshold the build's figures miss (empty: the model passes)."""
    out = []
    cat = f["category_agree"] / f["clips"] if f["clips"] else 0.0
    if cat < t.min_category_agreement:
        out.append(f"it gives the true category for {f['category_agree']} of {f['clips']} clips ({cat:.0%}, below "
                   f"--min-category-agreement {t.min_category_agreement:.0%})")
    rec = f["animal_found"] / f["animal_clips_true"] if f["animal_clips_true"] else 1.0
    if rec < t.min_animal_recall:
        out.append(f"it yields the right animal item for {f['animal_found']} of {f['animal_clips_true']} true animal "
                   f"clips ({rec:.0%}, below --min-animal-recall {t.min_animal_recall:.0%})")
    return out
