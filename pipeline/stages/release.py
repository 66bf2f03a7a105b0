"""The release stage: gather a build's filtered items (plus the wiki split), clips, audio index and stage manifests,
and write releases/<name>-<version>/ through benchmark.release.build_release. Its card is the next step's (`card`):
templates and wording reach that step only, never this one or what reads the release's data.

A published name-version is immutable: other content raises ReleaseIntegrityError naming what changed and the flag
that publishes a new version. The embedded demo's release is the exception (`replace=True` for the corpus id `demo`):
a newcomer reruns `make demo` after every pull, so it is rebuilt in place, with one line saying what changed.

Its inputs are the contract's (pipeline.contract, the `release` declaration): the filter's items and the clip table;
optional when the body is called outside a build: the audio index, the item stages' manifests (those that exist),
the pairs and sentences (the card's figures) and the categories (category mix).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from benchmark.errors import InputError, ReleaseIntegrityError
from benchmark.hashing import stable_hash
from benchmark.release import build_release
from benchmark.release_io import MANIFEST, load_release
from benchmark.schema import COLUMNS, license_kind
from benchmark.tasks import task_choices
from benchmark.validate import normalise_sentence
from pipeline.code_hash import code_hash
from pipeline.contract import open_stage, released_stages
from pipeline.stage import log

__all__ = ["release_stage", "gather_provenance", "explain_release_change", "UPSTREAM_STAGES", "run"]

UPSTREAM_STAGES = released_stages()  # the stage manifests a release carries, from the contract's declaration
_LLM_KEYS = ("backend", "model", "prompt", "prompt_version", "prompt_versions", "prompt_sha256", "temperature")


def _read_manifests(inputs: dict[str, Path]) -> dict[str, dict]:
    """The upstream stages' manifests among the release's inputs (roles "manifest:<stage>"), by stage."""
    out = {}
    for stage in UPSTREAM_STAGES:
        p = inputs.get(f"manifest:{stage}")
        if p is not None:
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
    code_files: dict[str, str] = dict(code_hash(__name__))
    for m in manifests.values():
        code_files |= (m.get("key") or {}).get("code") or {}
    return {
        "corpus": {
            "id": build_dir.name,
            "source": (read.get("params") or {}).get("source", ""),
            "fingerprint": stable_hash(read.get("inputs") or {}, n=64) if read else "",
            "clips": (read.get("counts") or {}).get("kept"),
        },
        "code_version": {"release": stable_hash(code_hash(__name__), n=16)} | {s: m.get("code_version", "") for s, m in sorted(manifests.items())},
        "code_files": dict(sorted(code_files.items())),
        "llm": llm,
        "estimator": (manifests.get("measure", {}).get("params") or {}).get("estimator", ""),
        "params": {s: m.get("params", {}) for s, m in sorted(manifests.items())} | {"release": release_params},
        "command": "auditorybench release   # with the params recorded under provenance.params",
    }


def _optional_table(path: Path | None, columns: list[str]) -> pd.DataFrame | None:
    if path is None or not path.exists():
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
                  quiet: bool = False, key: dict | None = None, replace: bool = False) -> Path:
    """Write releases_dir/<name>-<version>/ from build_dir (its data: the card is benchmark.card.write_card's).

    params: the `release:` section (version, exclude_nc) — a whole params dict with a "release" key works too. A
    release whose inputs and params did not change is not rebuilt; a name-version that exists with other content
    raises ReleaseIntegrityError naming the files, the settings and code that differ, and how to publish it as a new
    version — or, with replace (the embedded demo), is rebuilt in place with one line saying what changed; a release
    that breaks a benchmark rule raises ValidationError."""
    build_dir, releases_dir = Path(build_dir), Path(releases_dir)
    rp = dict(params.get("release", params) if isinstance(params.get("release"), dict) else params)
    version = str(rp.get("version") or "")
    if not version:
        raise InputError("params.yaml release.version is empty")
    exclude_nc = bool(rp.get("exclude_nc", False))
    release_params = {k: v for k, v in sorted(rp.items()) if k != "cards_dir"}  # the card step's setting

    external = {}
    if wiki_dir is not None:
        external["wiki_items"] = Path(wiki_dir) / "items.parquet"
        if not external["wiki_items"].exists():
            raise InputError(f"{external['wiki_items']}: missing; run the wiki stage first or pass no wiki_dir")
    run_params = release_params | {"name": name, "releases_dir": str(releases_dir)}
    optional = ("pairs", "sentences", "categories", "fingerprints", "audio_index", *(f"manifest:{s}" for s in UPSTREAM_STAGES))
    run = open_stage(build_dir, "release", run_params, key=key, quiet=quiet, optional=optional, skip=("wiki_items",),
                     external=external)
    inputs = run.inputs
    target = releases_dir / f"{name}-{version}"
    if run.fresh() and target.is_dir():
        load_release(target)  # raises if someone changed it since
        return target

    items = pd.read_parquet(inputs["items"])
    wiki_dropped = 0
    if "wiki_items" in inputs:
        wiki = pd.read_parquet(inputs["wiki_items"])
        wiki = wiki[[c for c in COLUMNS["items"] if c in wiki.columns]]
        wiki, wiki_dropped = drop_wiki_repeats(wiki, items)
        items = pd.concat([items[[c for c in COLUMNS["items"] if c in items.columns]], wiki], ignore_index=True)
    clips = pd.read_parquet(inputs["clips"])
    manifests = _read_manifests(inputs)
    plot_tables = {
        "pairs": _optional_table(inputs.get("pairs"), ["task", "basis", "value_a", "value_b", "label"]),
        "sentences": _optional_table(inputs.get("sentences"), ["answer", "llm_guess"]),
        "categories": _optional_table(inputs.get("categories"), ["clip_id", "category"]),
    }
    provenance = gather_provenance(build_dir, manifests, release_params) | {"wiki": wiki_provenance(wiki_dir, wiki_dropped)}
    notes = (manifests.get("filter") or {}).get("balance_notes") or []
    index_dir = inputs.get("audio_index")
    if exclude_nc and index_dir is not None:  # the shipped index holds no caption or embedding of a non-commercial clip
        index_dir = _commercial_index(Path(index_dir), clips, run.path(".audio_index_no_nc"))
    def build() -> Path:
        return build_release(
            items, releases_dir, name, version, clips=clips, task_choices=task_choices(items),
            defects={"one_label_splits_dropped": notes} if notes else None,
            provenance=provenance, stage_manifests=manifests,
            audio_index_dir=index_dir, exclude_nc=exclude_nc,
            plot_tables={k: v for k, v in plot_tables.items() if v is not None},
            extra_files=release_fingerprints(inputs.get("fingerprints"), items, clips, exclude_nc),
        )

    try:
        try:
            path = build()
        except ReleaseIntegrityError as e:
            if not (target / MANIFEST).exists():
                raise
            why = explain_release_change(target, provenance, version)
            if not replace:
                raise ReleaseIntegrityError(f"{str(e).split('; bump')[0]}; {why}") from None
            log(f"[release] {target.name} rebuilt in place (the embedded demo's release follows its build): {why.split('; publish')[0]}")
            shutil.rmtree(target)
            path = build()
    finally:
        if exclude_nc and index_dir is not None:
            shutil.rmtree(run.path(".audio_index_no_nc"), ignore_errors=True)
    rel = load_release(path)
    # what a stage that reads the release depends on: its data files (the card is not among them)
    run.write_json("release.json", {"path": path.as_posix(), "files": rel.manifest["files"]})
    rejected = {"wiki_sentence_in_corpus": wiki_dropped} if wiki_dropped else {}
    if exclude_nc:
        rejected["non_commercial"] = rel.manifest["counts"]["excluded_nc_items"]
    counts = {"kept": rel.manifest["counts"]["items"], "rejected": rejected,
              "per_task": {t: rel.manifest["tasks"][t]["counts"] for t in rel.tasks}}
    run.finish(counts, extra={"release": f"{name}-{version}", "license": rel.license})
    if not quiet:
        log(f"[release] {path} ({rel.manifest['counts']['items']} items, licence {rel.license})")
    return path


def release_fingerprints(path: Path | None, items: pd.DataFrame, clips: pd.DataFrame, exclude_nc: bool) -> dict[str, bytes]:
    """{benchmark.fingerprint.FINGERPRINTS_FILE: parquet bytes}: the audio fingerprints of the clips the items use
    (none of a non-commercial clip with exclude_nc), so that `validate` can check near-duplicate audio across
    splits; {} without the measure stage's fingerprints."""
    import io

    from benchmark.fingerprint import FINGERPRINTS_FILE, fingerprint_table, read_fingerprints

    if path is None:
        return {}
    used = {str(c) for cids in items["clip_ids"] for c in cids}
    if exclude_nc:
        kinds = clips["license_kind"].astype(str) if "license_kind" in clips.columns else clips["license"].map(license_kind)
        used -= set(clips.loc[kinds == "cc-by-nc", "clip_id"].astype(str))
    fps = read_fingerprints(path)
    buf = io.BytesIO()
    fingerprint_table({c: v for c, v in fps.items() if c in used}).to_parquet(buf, index=False)
    return {FINGERPRINTS_FILE: buf.getvalue()}


def _commercial_index(index_dir: Path, clips: pd.DataFrame, out: Path) -> Path:
    """A copy of the audio index without the clips whose licence is non-commercial (written to out, returned)."""
    from models.retrieval import AudioIndex

    kinds = clips["license_kind"].astype(str) if "license_kind" in clips.columns else clips["license"].map(license_kind)
    keep = clips.loc[kinds != "cc-by-nc", "clip_id"].astype(str).tolist()
    shutil.rmtree(out, ignore_errors=True)
    AudioIndex.load(index_dir).subset(keep, "exclude_nc: non-commercial clips removed").save(out)
    return out


def _flat(obj, prefix: str = "") -> dict[str, object]:
    if isinstance(obj, dict):
        out: dict[str, object] = {}
        for k, v in obj.items():
            out |= _flat(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return {prefix: obj}


def explain_release_change(target: Path, provenance: dict, version: str) -> str:
    """Why a build differs from the release already published under its name: the settings, code files, corpus and
    LLM identity that changed (from the two provenance records), and the flag that publishes a new version."""
    old = json.loads((target / MANIFEST).read_text(encoding="utf-8")).get("provenance") or {}
    causes = []
    for part, label in (("params", "setting"), ("llm", "LLM"), ("estimator", "estimator"), ("corpus", "corpus")):
        a, b = _flat(old.get(part) or {}), _flat(provenance.get(part) or {})
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if changed:
            causes.append(f"{label} changed: " + ", ".join(f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in changed[:3])
                          + (f" (+{len(changed) - 3} more)" if len(changed) > 3 else ""))
    a, b = old.get("code_files") or {}, provenance.get("code_files") or {}
    code = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if code:
        causes.append("code changed: " + ", ".join(code[:4]) + (f" (+{len(code) - 4} more)" if len(code) > 4 else ""))
    bumped = _next_version(version)
    return (f"caused by: {'; '.join(causes) or 'no recorded setting or code change (a non-deterministic stage?)'}; "
            f"publish it as a new version with `auditorybench release --version {bumped}` "
            f"(make: `make release VERSION={bumped}`), or remove {target}")


def _next_version(version: str) -> str:
    parts = version.split(".")
    if parts and parts[-1].isdigit():
        return ".".join(parts[:-1] + [str(int(parts[-1]) + 1)])
    return version + ".1"


def run(ctx) -> dict:
    """Release the corpus's build as releases/<name>-<version> (name: the corpus id; --version: another version)."""
    wiki_items = ctx.input_paths("release")["wiki_items"]
    path = release_stage(ctx.build_dir, ctx.releases, ctx.release_name(), ctx.section("release"),
                         wiki_items.parent if wiki_items.exists() else None, quiet=ctx.quiet, key=ctx.key("release"),
                         replace=ctx.corpus_id == "demo")
    print(path)
    return json.loads(ctx.manifest_path("release").read_text(encoding="utf-8"))
