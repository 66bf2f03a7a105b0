"""The README's demo results, generated from results.json (never typed by hand).

    headline(results, split="test") -> markdown: the control table and what the controls support, per task
    sync_readme(results_json, readme, check=False) -> True when the README's block is (or now is) that markdown

The block sits between `<!-- demo-results:begin -->` and `<!-- demo-results:end -->` in the README; `auditorybench
report build/demo/results/results.json --readme README.md` rewrites it, `--check` only says whether it matches.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmark.errors import InputError

__all__ = ["headline", "sync_readme", "BEGIN", "END"]

BEGIN, END = "<!-- demo-results:begin -->", "<!-- demo-results:end -->"


def _cell(c: dict | None, few: bool = False) -> str:
    from models.eval import fmt_ci

    return fmt_ci(c["accuracy"], c["ci"], few) if c else "–"


def _diff(comps: list[dict], model: str, baseline: str, task: str, split: str) -> dict | None:
    return next((c for c in comps if c["model"] == model and c["baseline"] == baseline and c["task"] == task
                 and c["split"] == split and c["metric"] == "accuracy"), None)


def _pts(c: dict) -> str:
    return f"{100 * c['diff']:+.1f} points [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}]"


def _verdict(c: dict | None, other: str) -> str:
    if c is None or math.isnan(c["diff"]):
        return f"no paired comparison with the {other}"
    if c.get("too_few_units") or math.isnan(c["ci_low"]):
        return f"{100 * c['diff']:+.1f} points against the {other}, with too few units for an interval"
    if c["ci_low"] > 0:
        return f"AudioBERT beats the {other} by {_pts(c)}"
    if c["ci_high"] < 0:
        return f"the {other} beats AudioBERT by {_pts({'diff': -c['diff'], 'ci_low': -c['ci_high'], 'ci_high': -c['ci_low']})}"
    return f"no difference from the {other} that the interval can tell from zero ({_pts(c)})"


def headline(results: dict, split: str = "test") -> str:
    """The control table of `split` (accuracy, 95 % interval; seen / unseen answers) and, per task, what the controls
    support: AudioBERT against the caption twin with the item's own clips excluded from both, and against the text twin."""
    from models.eval import CONTROLS, variant_name

    rows = [a for a in results.get("ablation") or [] if a["split"] == split]
    if not rows:
        raise InputError(f"results of {results['release']['name']}: no control rows on the {split} split")
    comps = results.get("comparisons") or []
    cols = [c for c in CONTROLS if any(a.get(c) for a in rows)]
    rel = results["release"]
    out = [f"Controls on the {split} split of {rel['name']}-{rel['version']} (seed {results['seed']}; accuracy, 95 % "
           f"interval, {results['uncertainty'].get('resampling', 'bootstrap')}):", "",
           "| task | n | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for a in rows:
        out.append(f"| {a['task']} | {a['n']} | " + " | ".join(_cell(a.get(c), bool(a.get("too_few_units"))) for c in cols) + " |")
    out += ["", "Seen / unseen answers (an unseen answer is never a train answer of its task):", "",
            "| task | n seen / unseen | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for a in rows:
        first = next(a[c] for c in cols if a.get(c))
        cells = [f"{a[c]['accuracy_seen']:.3f} / {a[c]['accuracy_unseen']:.3f}".replace("nan", "–") if a.get(c) else "–" for c in cols]
        out.append(f"| {a['task']} | {first['n_seen']} / {first['n_unseen']} | " + " | ".join(cells) + " |")
    out += ["", "What the controls support:", ""]
    for a in rows:
        name, task = a["model"], a["task"]
        caption = next((c["baseline"] for c in comps if c["model"] == variant_name(name, "excluded")
                        and c["baseline"].startswith("caption twin")), None)
        text = next((c["baseline"] for c in comps if c["model"] == name and c["baseline"].startswith("text-only")), None)
        parts = [f"with item clips excluded, {_verdict(_diff(comps, variant_name(name, 'excluded'), caption, task, split), 'caption twin') if caption else 'no caption twin was run'}",
                 f"with retrieval as it is, {_verdict(_diff(comps, name, text, task, split), 'text twin') if text else 'no text twin was run'}"]
        out.append(f"- **{task}**: " + "; ".join(parts) + ".")
    return "\n".join(out) + "\n"


def sync_readme(results_json: str | Path, readme: str | Path, check: bool = False) -> bool:
    """Write headline(results) between the README's markers (check: only compare). True when they match (or now do)."""
    results = json.loads(Path(results_json).read_text(encoding="utf-8"))
    text = Path(readme).read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise InputError(f"{readme}: no {BEGIN} ... {END} block to hold the demo results")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{headline(results)}{END}{tail}"
    if new == text:
        return True
    if check:
        return False
    Path(readme).write_text(new, encoding="utf-8")
    return True
