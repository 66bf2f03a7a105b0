"""The release stage: gather a build's filtered items (plus the wiki split), clips, audio index and stage manifests,
write releases/<name>-<version>/ through benchmark.release.build_release, and copy its card to data_cards/ (of the
current folder, or release.cards_dir).

Inputs under build_dir (= build/<corpus_id>): filter/items.parquet, read/clips.parquet, index/ (optional),
{read,extract,measure,split,pairs,write,filter}/manifest.json (those that exist), pairs/pairs.parquet and
write/sentences.parquet (optional, for the card's figures), extract/categories.parquet (optional, category mix).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd

from benchmark.errors import InputError
from benchmark.hashing import stable_hash
from benchmark.release import build_release
from benchmark.release_io import MANIFEST, load_release
from benchmark.schema import COLUMNS
from benchmark.tasks import task_choices
from benchmark.validate import normalise_sentence
from pipeline.stage import StageRun, code_version, log

__all__ = ["release_stage", "gather_provenance", "UPSTREAM_STAGES"]

UPSTREAM_STAGES = ("read", "extract", "measure", "split", "pairs", "write", "filter")
_LLM_KEYS = ("backend", "model", "prompt", "prompt_version", "prompt_versions", "prompt_sha256", "temperature")


def _read_manifests(build_dir: Path) -> dict[str, dict]:
    out = {}
    for stage in UPSTREAM_STAGES:
        p = build_dir / stage / MANIFEST
        if p.exists():
            try:
                out[stage] = json.loads(p.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise InputError(f"{p}: not valid JSON ({e.msg})") from e
    return out


def wiki_provenance(wiki_dir: Path | None, dropped: int) -> dict:
    """What the card says of the wiki split: snapshot versions and how many entries were written by hand."""
    if wiki_dir is None or not (Path(wiki_dir) / MANIFEST).exists():
        return {}
    m = json.loads((Path(wiki_dir) / MANIFEST).read_text(encoding="utf-8"))
    snaps = {k: {f: v[f] for f in ("version", "entries", "hand_curated", "sha256") if f in v} for k, v in (m.get("snapshots") or {}).items()}
    return {"snapshots": snaps, "items": (m.get("counts") or {}).get("kept"), "dropped_repeating_corpus_sentence": dropped}


def gather_provenance(build_dir: Path, manifests: dict[str, dict], release_params: dict) -> dict:
    """Corpus identity, code versions, LLM backends/models/prompt versions, estimator and params, from the stage
    manifests (no timestamps, no output locations: the release must not depend on where it is written)."""
    read = manifests.get("read", {})
    llm = {}
    for stage in ("extract", "write"):
        m = manifests.get(stage, {})
        found = {k: v for k, v in (m.get("params") or {}).items() if any(k.startswith(x) for x in _LLM_KEYS)}
        found |= {k: v for k, v in m.items() if k.startswith("prompt") or k.startswith("llm")}
        if found:
            llm[stage] = found
    modules = ("benchmark.release", "benchmark.release_io", "benchmark.validate", "benchmark.card", "benchmark.schema", __name__)
    return {
        "corpus": {
            "id": build_dir.name,
            "source": (read.get("params") or {}).get("source", ""),
            "fingerprint": stable_hash(read.get("inputs") or {}, n=64) if read else "",
            "clips": (read.get("counts") or {}).get("kept"),
        },
        "code_version": {"release": code_version(*modules)} | {s: m.get("code_version", "") for s, m in sorted(manifests.items())},
        "llm": llm,
        "estimator": (manifests.get("measure", {}).get("params") or {}).get("estimator", ""),
        "params": {s: m.get("params", {}) for s, m in sorted(manifests.items())} | {"release": release_params},
        "command": "auditorybench release   # with the params recorded under provenance.params",
    }


def _optional_table(path: Path, columns: list[str]) -> pd.DataFrame | None:
    if not path.exists():
        return None
    df = pd.read_parquet(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        log(f"[release] {path}: columns {missing} missing; figure skipped")
        return None
    return df[columns]


def drop_wiki_repeats(wiki: pd.DataFrame, items: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Wiki items whose sentence (case and spacing ignored, as validate compares them) is already a corpus item of the same task are dropped:
    the wiki split is test-only and must not repeat a train sentence."""
    seen = set(zip(items["task"], items["sentence"].map(normalise_sentence)))
    keep = [(t, normalise_sentence(s)) not in seen for t, s in zip(wiki["task"], wiki["sentence"])]
    return wiki[keep].reset_index(drop=True), int(len(wiki) - sum(keep))


def release_stage(build_dir: Path, releases_dir: Path, name: str, params: dict, wiki_dir: Path | None,
                  quiet: bool = False) -> Path:
    """Write releases_dir/<name>-<version>/ from build_dir and copy its card to data_cards/<name>-<version>.md.

    params: the `release:` section (version, exclude_nc, cards_dir) — a whole params dict with a "release" key
    works too. A release whose inputs and params did not change is not rebuilt; a name-version that exists with
    other content raises ReleaseIntegrityError; a release that breaks a benchmark rule raises ValidationError."""
    build_dir, releases_dir = Path(build_dir), Path(releases_dir)
    rp = dict(params.get("release", params) if isinstance(params.get("release"), dict) else params)
    version = str(rp.get("version") or "")
    if not version:
        raise InputError("params.yaml release.version is empty")
    exclude_nc = bool(rp.get("exclude_nc", False))
    cards_dir = Path(rp.get("cards_dir") or "data_cards")  # relative: to the current folder (the repository for make)
    release_params = {k: v for k, v in sorted(rp.items()) if k != "cards_dir"}

    inputs = {"items": build_dir / "filter" / "items.parquet", "clips": build_dir / "read" / "clips.parquet"}
    for key, p in inputs.items():
        if not p.exists():
            raise InputError(f"{p}: missing; run the {'filter' if key == 'items' else 'read'} stage first")
    if wiki_dir is not None:
        inputs["wiki_items"] = Path(wiki_dir) / "items.parquet"
        if not inputs["wiki_items"].exists():
            raise InputError(f"{inputs['wiki_items']}: missing; run the wiki stage first or pass no wiki_dir")
    optional = {"pairs": build_dir / "pairs" / "pairs.parquet", "sentences": build_dir / "write" / "sentences.parquet",
                "categories": build_dir / "extract" / "categories.parquet"}
    inputs |= {k: p for k, p in optional.items() if p.exists()}
    index_dir = build_dir / "index" / "audio_index"
    if not index_dir.is_dir():
        index_dir = build_dir / "index"
    if index_dir.is_dir():
        inputs["audio_index"] = index_dir
    for stage in UPSTREAM_STAGES:
        if (build_dir / stage / MANIFEST).exists():
            inputs[f"manifest:{stage}"] = build_dir / stage / MANIFEST

    run_params = release_params | {"name": name, "releases_dir": str(releases_dir), "cards_dir": str(cards_dir)}
    run = StageRun("release", build_dir / "release", run_params, inputs=inputs,
                   code=code_version(__name__, "benchmark.release", "benchmark.release_io", "benchmark.validate", "benchmark.card", "benchmark.tasks"), quiet=quiet)
    target = releases_dir / f"{name}-{version}"
    card_copy = cards_dir / f"{name}-{version}.md"
    if run.fresh() and target.is_dir() and card_copy.exists():
        load_release(target)  # raises if someone changed it since
        os.utime(target / MANIFEST)  # so make sees the release as up to date
        return target

    items = pd.read_parquet(inputs["items"])
    wiki_dropped = 0
    if "wiki_items" in inputs:
        wiki = pd.read_parquet(inputs["wiki_items"])
        wiki = wiki[[c for c in COLUMNS["items"] if c in wiki.columns]]
        wiki, wiki_dropped = drop_wiki_repeats(wiki, items)
        items = pd.concat([items[[c for c in COLUMNS["items"] if c in items.columns]], wiki], ignore_index=True)
    clips = pd.read_parquet(inputs["clips"])
    manifests = _read_manifests(build_dir)
    plot_tables = {
        "pairs": _optional_table(optional["pairs"], ["task", "basis", "value_a", "value_b", "label"]),
        "sentences": _optional_table(optional["sentences"], ["answer", "llm_guess"]),
        "categories": _optional_table(optional["categories"], ["clip_id", "category"]),
    }
    notes = (manifests.get("filter") or {}).get("balance_notes") or []
    path = build_release(
        items, releases_dir, name, version, clips=clips, task_choices=task_choices(items),
        defects={"one_label_splits_dropped": notes} if notes else None,
        provenance=gather_provenance(build_dir, manifests, release_params) | {"wiki": wiki_provenance(wiki_dir, wiki_dropped)},
        stage_manifests=manifests,
        audio_index_dir=inputs.get("audio_index"), exclude_nc=exclude_nc,
        plot_tables={k: v for k, v in plot_tables.items() if v is not None},
    )
    cards_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path / "README.md", card_copy)
    rel = load_release(path)
    run.write_json("release.json", {"path": path.as_posix(), "card": card_copy.as_posix(), "files": rel.manifest["files"]})
    rejected = {"wiki_sentence_in_corpus": wiki_dropped} if wiki_dropped else {}
    if exclude_nc:
        rejected["non_commercial"] = rel.manifest["counts"]["excluded_nc_items"]
    counts = {"kept": rel.manifest["counts"]["items"], "rejected": rejected,
              "per_task": {t: rel.manifest["tasks"][t]["counts"] for t in rel.tasks}}
    run.finish(counts, extra={"release": f"{name}-{version}", "license": rel.license})
    if not quiet:
        log(f"[release] {path} ({rel.manifest['counts']['items']} items, licence {rel.license}); card {card_copy}")
    return path
