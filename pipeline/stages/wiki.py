"""The wiki stage: the versioned snapshots -> build/wiki/items.parquet (test-only split "wiki"), and the refresh.

    wiki_stage(Path("build/wiki"), stage_params("wiki"))      # offline, from pipeline/wiki/data/*.json
    wiki_refresh(stage_params("wiki"))                         # online: rebuild the snapshots from Wikipedia
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from benchmark.hashing import sha256_file
from benchmark.schema import COLUMNS
from benchmark.tasks import TaskSpec, get_task, list_tasks
from pipeline.contract import open_stage
from pipeline.wiki.client import (
    DEFAULT_API_URL,
    DEFAULT_USER_AGENT,
    WikiClient,
    refresh_animal_snapshot,
    refresh_snapshot,
)
from pipeline.wiki.items import ANIMAL_TEMPLATES, PITCH_TEMPLATES, build_animal_items, build_pitch_items, label_balance
from pipeline.wiki.snapshot import load_snapshot, snapshot_paths

__all__ = ["wiki_stage", "wiki_refresh", "run"]

_ITEM_KEYS = ("min_gap", "templates", "animal_templates")


def _snapshot_info(path: Path, snap: dict) -> dict:
    return {
        "path": str(path),
        "version": snap["version"],
        "sha256": sha256_file(path),
        "entries": len(snap["entries"]),
        "hand_curated": sum(bool(e.get("hand_curated")) for e in snap["entries"]),
    }


def wiki_stage(out_dir: Path, params: dict, quiet: bool = False, tasks: list[TaskSpec] | None = None,
               key: dict | None = None) -> dict:
    """Write out_dir/items.parquet (schema.Item columns, sorted by id), rejects.parquet and the manifest; return the
    manifest. Does nothing when snapshots, params, tasks and code are unchanged.

    params: the `wiki:` section (min_gap: ratio, templates / animal_templates: sentence templates,
    ranges_path / animal_sounds_path: snapshot files, "" = the packaged ones). tasks: the tasks to build (default:
    every registered task); those with a `wiki_source` get wiki items from that snapshot."""
    ranges_path, animals_path = snapshot_paths(params)
    item_params = {k: params[k] for k in _ITEM_KEYS if k in params}
    wiki_tasks = {t.name: t for t in ([get_task(n) for n in list_tasks()] if tasks is None else tasks) if t.wiki_source}
    run = open_stage(None, "wiki", item_params | {"tasks": {n: [t.wiki_source, t.answer_choices] for n, t in sorted(wiki_tasks.items())}},
                     out_dir=Path(out_dir), external={"ranges": ranges_path, "animal_sounds": animals_path}, key=key,
                     quiet=quiet)
    if run.fresh():
        return run.previous() or {}

    ranges, animals = load_snapshot(ranges_path), load_snapshot(animals_path)
    items, rejects, tasks_out = [], [], {}
    for name, spec in sorted(wiki_tasks.items()):
        if spec.wiki_source == "ranges":
            built, rej = build_pitch_items(ranges["entries"], float(params["min_gap"]), list(params.get("templates") or PITCH_TEMPLATES),
                                           task=name, choices=tuple(spec.answer_choices))
            sources = len({it.span1 for it in built} | {it.span2 for it in built})
        else:
            built, rej = build_animal_items(animals["entries"], list(params.get("animal_templates") or ANIMAL_TEMPLATES), task=name)
            sources = len({it.answer for it in built})
        items += built
        rejects += rej
        tasks_out[name] = {"items": len(built), "labels": label_balance(built), "sources": sources}
    items = sorted(items, key=lambda it: it.id)

    items_df = pd.DataFrame([it.model_dump() for it in items], columns=COLUMNS["items"])
    rejects_df = pd.DataFrame([r.model_dump() for r in rejects], columns=COLUMNS["rejects"])
    run.write_table("items.parquet", items_df)
    run.write_table("rejects.parquet", rejects_df.sort_values(["reason", "key"], kind="stable").reset_index(drop=True))

    counts = {"kept": len(items), "rejected": dict(sorted(Counter(r.reason for r in rejects).items()))}
    snapshots = {"ranges": _snapshot_info(ranges_path, ranges), "animal_sounds": _snapshot_info(animals_path, animals)}
    extra = {
        "split": "wiki",
        "tasks": tasks_out,
        "snapshots": snapshots,
        "hand_curated": {k: v["hand_curated"] for k, v in snapshots.items()},
    }
    return run.finish(counts, extra)


def wiki_refresh(params: dict, quiet: bool = False) -> dict:
    """Rebuild both snapshots from live Wikipedia pages (through the cached client); return their refresh tallies.

    params: the `wiki:` section (api_url, language, user_agent, cache_path, timeout_s, offline, and the snapshot paths)."""
    ranges_path, animals_path = snapshot_paths(params)
    client = WikiClient(
        cache_path=params.get("cache_path") or None,
        api_url=params.get("api_url") or DEFAULT_API_URL,
        language=params.get("language") or "en",
        user_agent=params.get("user_agent") or DEFAULT_USER_AGENT,
        offline=bool(params.get("offline", False)),
        timeout_s=float(params.get("timeout_s", 10.0)),
    )
    try:
        ranges = refresh_snapshot(None, ranges_path, client, quiet=quiet)
        animals = refresh_animal_snapshot(animals_path, client)
    finally:
        client.close()
    return {
        "ranges": {"version": ranges["version"], "refresh": ranges["refresh"]},
        "animal_sounds": {"version": animals["version"], "refresh": animals["refresh"]},
        "requests": client.requests,
        "cache_hits": client.cache_hits,
    }


def run(ctx) -> dict:
    """Build the wiki sets (shared by every corpus: build/wiki), or with the `refresh` action rebuild the snapshots."""
    if ctx.options.get("action") == "refresh":
        import json

        out = wiki_refresh(ctx.section("wiki"), quiet=ctx.quiet)
        print(json.dumps(out, indent=2, sort_keys=True, default=str))
        return out
    from benchmark.tasks import enabled_tasks

    return wiki_stage(ctx.stage_dir("wiki"), ctx.section("wiki"), quiet=ctx.quiet, tasks=enabled_tasks(ctx.all_params()),
                      key=ctx.key("wiki"))
