"""The data card: rendered from benchmark/card_template.md (package data) and a release's manifest, never hand-edited.

The card opens with Hugging Face dataset-card YAML front matter (configs → data_files per task and split, license,
task_categories, language, pretty_name) and then fixed sections. It is documentation, written by its own step
(`write_card`, the `card` stage) after the release's data: the release's manifest lists the data files' checksums, not
the card's, so editing the template or its wording rewrites the card and reruns nothing that reads the data. Its
figures are data (benchmark.figures, drawn by the release step); the card shows them with the captions the
manifest records.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path
from typing import Any

from benchmark.errors import InputError
from benchmark.hashing import atomic_path
from benchmark.release_io import CARD, MANIFEST
from benchmark.schema import SPLITS

__all__ = ["render_card", "write_card", "TEMPLATE_PATH", "HF_LICENSES", "CARD"]

DATA_FILES = ("card_template.md",)  # in the code hash of every stage that imports this module
TEMPLATE_PATH = Path(__file__).resolve().parent / "card_template.md"  # package data
HF_LICENSES = {"cc0": "cc0-1.0", "cc-by": "cc-by-4.0", "cc-by-nc": "cc-by-nc-4.0", "sampling+": "other",
               "non-cc": "other", "unknown": "unknown"}


def _front_matter(manifest: dict) -> str:
    lines = ["---", "configs:"]
    for task in sorted(manifest.get("tasks", {})):
        counts = manifest["tasks"][task].get("counts", {})
        lines += [f"- config_name: {task}", "  data_files:"]
        for split in SPLITS:
            if counts.get(split, 0) > 0:
                lines += [f"  - split: {split}", f"    path: {task}/{split}.parquet"]
    kind = manifest.get("license", "unknown")
    lines += [
        f"license: {HF_LICENSES.get(kind, 'other')}",
        "task_categories:",
        "- fill-mask",
        "language:",
        "- en",
        f"pretty_name: AuditoryBench ({manifest.get('name', '')} {manifest.get('version', '')})",
        "size_categories:",
        f"- {_size_category(int(manifest.get('counts', {}).get('items', 0)))}",
        "---",
    ]
    return "\n".join(lines)


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "n>1M"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _rejected_text(rejected: Any) -> str:
    if isinstance(rejected, dict):
        if not rejected:
            return "0"
        total = sum(int(v) for v in rejected.values() if isinstance(v, (int, float)))
        return f"{total} (" + ", ".join(f"{k}: {v}" for k, v in sorted(rejected.items())) + ")"
    return str(rejected if rejected is not None else "–")


def _built_section(manifest: dict, stage_manifests: dict[str, dict], stage_order: tuple[str, ...] = ()) -> str:
    stages = [s for s in stage_order if s in stage_manifests] + sorted(set(stage_manifests) - set(stage_order))
    parts = []
    if stages:
        rows = []
        for s in stages:
            counts = stage_manifests[s].get("counts", {}) or {}
            kept = counts.get("kept", "–")
            rows.append([s, kept, _rejected_text(counts.get("rejected"))])
        parts.append(_table(["stage", "kept", "rejected (by reason)"], rows))
    else:
        parts.append("No upstream stage manifests were given (e.g. an import of existing data).")
    prov = manifest.get("provenance", {}) or {}
    facts = []
    for key in ("corpus", "llm", "estimator", "source"):  # code versions are in manifest.json, not the card
        if key in prov and prov[key] not in (None, "", {}):
            facts.append(f"- **{key}**: `{_inline(prov[key])}`")
    if facts:
        parts.append("\n".join(facts))
    review = ((stage_manifests.get("filter") or {}).get("counts") or {}).get("review")
    parts.append(_review_text(review) if review else
                 "**Human review**: none applied to this build (`auditorybench review` serves the review page).")
    return "\n\n".join(parts)


def _review_text(review: dict) -> str:
    """What reviewers decided (the filter stage's `review` counts) and how far they agreed."""
    text = (f"**Human review**: {review.get('reviewed', 0)} items reviewed — {review.get('kept', 0)} kept, "
            f"{review.get('dropped', 0)} dropped, {review.get('fixed', 0)} answers fixed, {review.get('flagged', 0)} left "
            "flagged (reviewers tied).")
    agreement = review.get("agreement") or {}
    if agreement.get("items"):
        fleiss = agreement.get("fleiss") or {}
        figures = [f"Krippendorff's α = {_fmt(agreement.get('krippendorff_alpha'))}"]
        if fleiss:
            figures.append(f"Fleiss' κ = {_fmt(fleiss.get('kappa'))} ({fleiss.get('items')} items × {fleiss.get('raters_per_item')} raters)")
        if agreement.get("cohen_kappa") is not None:
            figures.append(f"Cohen's κ = {_fmt(agreement['cohen_kappa'])}")
        text += (f" Agreement on the {agreement['items']} items with two or more verdicts ({agreement.get('raters')} reviewers): "
                 + ", ".join(figures) + f"; unanimous on {100 * (agreement.get('unanimous') or 0):.0f} % of them.")
    if review.get("fluency_mean") is not None:
        text += f" Fluency (1 awkward … 3 fluent): mean {review['fluency_mean']:.2f} over {review.get('fluency_ratings')} ratings."
    return text


def _fmt(x: Any) -> str:
    return "undefined (one category only)" if x is None else f"{x:.3f}"


def _inline(v: Any) -> str:
    import json

    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, ensure_ascii=False)


def _splits_section(manifest: dict) -> str:
    rows = []
    for task in sorted(manifest.get("tasks", {})):
        counts = manifest["tasks"][task].get("counts", {})
        rows.append([task] + [counts.get(s, 0) for s in SPLITS] + [sum(counts.values())])
    table = _table(["task"] + list(SPLITS) + ["total"], rows)
    split = (manifest.get("stages") or {}).get("split") or {}
    held = (split.get("counts") or {}).get("held_out_names") or []
    if held:
        frac = (split.get("params") or {}).get("holdout_frac")
        table += (f"\n\nHeld-out names (`split.holdout_frac` {frac}): these {len(held)} source names and animal sound "
                  "words occur in no train item (checked by `validate` on this release) — every clip of them is in dev or test — so test asks about names a "
                  "model never saw in training: " + ", ".join(held) + ".")
    return table


def _balance_section(manifest: dict) -> str:
    rows, notes = [], []
    for task in sorted(manifest.get("tasks", {})):
        t = manifest["tasks"][task]
        balance = t.get("balance", {})
        if t.get("kind") == "comparison":
            for split in SPLITS:
                if split in balance:
                    n = sum(balance[split].values())
                    shares = ", ".join(f"{a}: {c} ({100 * c / n:.1f} %)" for a, c in sorted(balance[split].items()))
                    rows.append([task, split, n, shares])
        else:
            for split in SPLITS:
                if split in balance:
                    top = sorted(balance[split].items(), key=lambda kv: (-kv[1], kv[0]))[:5]
                    notes.append(f"- {task}/{split}: {len(balance[split])} distinct answers; most frequent: "
                                 + ", ".join(f"{a} ({c})" for a, c in top))
    parts = []
    if rows:
        parts.append(_table(["task", "split", "n", "answers"], rows))
    if notes:
        parts.append("\n".join(notes))
    return "\n\n".join(parts) or "No items."


def _mix_section(manifest: dict) -> str:
    parts = []
    lic = manifest.get("license_mix", {})
    if lic:
        parts.append("Licences of the released clips (see ATTRIBUTION.csv for each clip's author, URL and licence):\n\n"
                     + _table(["licence", "clips"], [[k, v] for k, v in sorted(lic.items())]))
    else:
        parts.append("The release references no audio clips.")
    cat = manifest.get("category_mix", {})
    if cat:
        parts.append("Categories of the released clips:\n\n" + _table(["category", "clips"], [[k, v] for k, v in sorted(cat.items())]))
    basis = manifest.get("basis_mix", {})
    if basis:
        parts.append("Measurement basis of comparison items:\n\n"
                     + _table(["task", "basis", "items"], [[t, b, n] for t in sorted(basis) for b, n in sorted(basis[t].items())]))
    parts.append(f"Release licence (most restrictive among its clips): **{manifest.get('license', 'unknown')}**"
                 + ("; non-commercial clips were excluded." if manifest.get("exclude_nc") else "."))
    return "\n\n".join(parts)


def _figures_section(figures: dict[str, dict]) -> str:
    if not figures:
        return "No figures: the release has no measured comparison pairs and no LLM agreement data."
    parts = []
    for name in sorted(figures):
        f = figures[name]
        stats = f.get("stats")
        parts.append(f"![{name}]({f['path']})\n\n{f['caption']}" + (f" Figures: `{_inline(stats)}`." if stats else ""))
    return "\n\n".join(parts)


def _defects_section(manifest: dict) -> str:
    defects = manifest.get("defects") or {}
    lines = []
    for v in defects.get("violations", []) or []:
        lines.append(f"- {v}")
    for key in sorted(k for k in defects if k != "violations"):
        lines.append(f"- **{key}**: {_inline(defects[key])}")
    return "\n".join(lines)


def _limitations_section(manifest: dict) -> str:
    lines = []
    defects = _defects_section(manifest)
    if defects:
        lines.append("Known defects, reported rather than hidden:\n\n" + defects)
    counts = manifest.get("counts", {})
    if counts.get("review_flagged"):
        lines.append(f"- {counts['review_flagged']} items carry review_flag = true (kept, but a person should check them).")
    lic = manifest.get("license_mix", {})
    flagged = sum(v for k, v in lic.items() if k in ("non-cc", "unknown"))
    if flagged:
        lines.append(f"- {flagged} clips have a licence that is not Creative Commons or is unknown; it is kept as given.")
    prov = manifest.get("provenance", {}) or {}
    if prov.get("estimator"):
        lines.append(f"- Comparison answers come from an automatic estimator ({_inline(prov['estimator'])}); "
                     "pitch of noisy or polyphonic sounds can be wrong.")
    lines.append("- Sentences are templated or LLM-written from captions; captions can be wrong about the sound.")
    if ((manifest.get("provenance") or {}).get("corpus") or {}).get("id") == "demo":
        lines.append("- **This is the demo release: it measures the mechanism, not real-world knowledge.** Its clips "
                     "are synthesised by `pipeline/demo/` (each source a recipe with its own pitch range, level and "
                     "length), and its held-out names make the test ask what only the audio can answer. A score here "
                     "says whether a model reads injected audio, not what it knows about how the world sounds.")
    return "\n".join(lines)


def _regenerate_section(manifest: dict) -> str:
    prov = manifest.get("provenance", {}) or {}
    cmd = prov.get("command")
    text = []
    if cmd:
        text.append(f"```\n{cmd}\n```")
    text.append("The params, corpus identity, code version and backends used are in `manifest.json`; the same inputs "
                "and params rebuild this release byte for byte (every file's sha256 is in the manifest). Load and "
                "verify it with `benchmark.release_io.load_release(path)`, or read it with "
                "`datasets.load_dataset(\"parquet\", data_files=...)`.")
    return "\n\n".join(text)


def _tasks_section(manifest: dict) -> str:
    """Each task: what it asks, its answers, how it was built and its limits (the task file's card_notes)."""
    from benchmark.errors import UnknownNameError
    from benchmark.tasks import get_task

    out = []
    for name, info in sorted((manifest.get("tasks") or {}).items()):
        choices = info.get("choices") or []
        shown = ", ".join(choices[:12]) + (f" … ({len(choices)} in all)" if len(choices) > 12 else "")
        try:
            spec = get_task(name)
            head = f"### {name} (v{spec.version}, {spec.kind})\n\n{spec.description}\n\nAnswers: {shown}."
            if spec.answer_choices == "from_items":
                head += _vocabulary_line(info)
            notes = spec.card_notes
        except UnknownNameError:
            head, notes = f"### {name}\n\nAnswers: {shown}.", ""
        out.append(head + (f"\n\n{notes}" if notes else ""))
    wiki = ((manifest.get("provenance") or {}).get("wiki")) or {}
    if wiki.get("snapshots"):
        parts = [f"{k}: {v.get('entries')} entries, {v.get('hand_curated')} marked hand_curated (snapshot {v.get('version')})"
                 for k, v in sorted(wiki["snapshots"].items())]
        out.append("### The wiki split\n\nTest-only items from the versioned Wikipedia snapshot shipped with the code — "
                   + "; ".join(parts) + ". Entries marked hand_curated were written offline from general knowledge, not "
                   f"fetched; `auditorybench wiki refresh` rebuilds the snapshot online. {wiki.get('dropped_repeating_corpus_sentence', 0)} "
                   "wiki items that repeated a corpus sentence were dropped.")
    return "\n\n".join(out)


def _vocabulary_line(info: dict) -> str:
    """An open answer set, every answer with its item count over all splits (most frequent first)."""
    totals: dict[str, int] = {}
    for per_split in (info.get("balance") or {}).values():
        for answer, n in per_split.items():
            totals[answer] = totals.get(answer, 0) + int(n)
    if not totals:
        return ""
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return f"\n\nAnswer vocabulary ({len(ranked)} answers, items each): " + ", ".join(f"{a} {n}" for a, n in ranked) + "."


def _summary_section(manifest: dict) -> str:
    counts = manifest.get("counts", {})
    tasks = sorted(manifest.get("tasks", {}))
    return (f"AuditoryBench release **{manifest.get('name')}-{manifest.get('version')}**: "
            f"{counts.get('items', 0)} fill-mask items over {len(tasks)} tasks ({', '.join(tasks)}), "
            f"built from {counts.get('clips', 0)} audio clips. Each `<task>/<split>.parquet` holds every item field "
            "(id, group_id, clip_ids, licenses, review_flag ...); each `<task>/<split>.csv` holds the official "
            "AuditoryBench columns in the official order."
            + (f" {counts['excluded_nc_items']} items with non-commercial clips were left out." if counts.get("excluded_nc_items") else ""))


def render_card(release_dir: Path, manifest: dict, *, stage_manifests: dict[str, dict] | None = None,
                figures: dict[str, dict] | None = None, template_path: Path | None = None,
                stage_order: tuple[str, ...] = ()) -> str:
    """The README.md of a release, from the template and the release's manifest (stage manifests for the
    'how it was built' table, in stage_order, the pipeline's: the others by name; figures as returned by
    write_figures)."""
    tpath = Path(template_path or TEMPLATE_PATH)
    if not tpath.exists():
        raise InputError(f"{tpath}: data card template not found")
    template = string.Template(tpath.read_text(encoding="utf-8"))
    values = {
        "front_matter": _front_matter(manifest),
        "title": f"AuditoryBench — {manifest.get('name')} {manifest.get('version')}",
        "summary": _summary_section(manifest),
        "tasks": _tasks_section(manifest),
        "built": _built_section(manifest, stage_manifests or {}, stage_order),
        "splits": _splits_section(manifest),
        "balance": _balance_section(manifest),
        "mix": _mix_section(manifest),
        "figures": _figures_section(figures or {}),
        "limitations": _limitations_section(manifest),
        "regenerate": _regenerate_section(manifest),
    }
    try:
        return template.substitute(values).rstrip("\n") + "\n"
    except (KeyError, ValueError) as e:
        raise InputError(f"{tpath}: template placeholder problem ({e})") from e


def write_card(release_dir: str | Path, cards_dir: str | Path | None = None, template_path: Path | None = None,
               stage_order: tuple[str, ...] = ()) -> Path:
    """Render the card of the release at release_dir from its manifest into release_dir/README.md (atomically) and,
    with cards_dir, copy it to cards_dir/<release folder name>.md. Returns the card's path in the release.
    stage_order: the order of the stages in the 'how it was built' table (the card stage passes the pipeline's,
    from its declarations; unlisted stages come after, by name)."""
    release_dir = Path(release_dir)
    mpath = release_dir / MANIFEST
    if not mpath.exists():
        raise InputError(f"{mpath}: missing; not a release folder")
    manifest = json.loads(mpath.read_text(encoding="utf-8"))
    figures = manifest.get("figures") if isinstance(manifest.get("figures"), dict) else {}
    card = render_card(release_dir, manifest, stage_manifests=manifest.get("stages") or {}, figures=figures,
                       template_path=template_path, stage_order=stage_order)
    with atomic_path(release_dir / CARD) as tmp:
        tmp.write_text(card, encoding="utf-8")
    if cards_dir is not None:
        Path(cards_dir).mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(cards_dir) / f"{release_dir.name}.md") as tmp:
            shutil.copyfile(release_dir / CARD, tmp)
    return release_dir / CARD
