"""The stage contract: one declaration per stage, read by the CLI, the Makefile check, the manifests and `status`.

A stage is declared once, in `STAGES` below: its name, the files it reads (upstream outputs as "<stage>/<file>",
plus external inputs such as the corpus shards), the files it writes, the params.yaml sections it uses, the
command-line flags it takes, and (for LLM stages) a function giving the backend's identity. Its code lives in
`pipeline/stages/<name>.py`, which exposes `run(ctx) -> manifest`.

Its freshness key holds everything that can change its outputs:

    inputs   sha256 (or cheap fingerprint) of every file it reads
    params   its resolved sections of params.yaml (file < environment < flags)
    backend  the backend's identity: backend, model, endpoint host, prompt versions (never the API key)
    code     sha256 of every project module the stage module imports, transitively (AST import graph over
             pipeline/, benchmark/, models/), plus the data files beside them (prompts, task YAMLs, snapshots)

The engine that maps a per-clip stage's work (`--engine local|ray`, pipeline.engines) is not in the key: both give
the same bytes (tests/pipeline/test_engines.py), so a build made on a laptop stays fresh on a cluster and back.

The stage writes it into its manifest; a stage whose manifest holds the same key (and whose outputs are intact)
does nothing. `status()` compares the key a run would use with the manifest's, and says which part differs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from benchmark.errors import ConfigError, InputError, UnknownNameError
from benchmark.hashing import stable_hash
from benchmark.jsonable import jsonable
from pipeline.code_hash import REPO_ROOT, code_hash

__all__ = ["Stage", "Flag", "Context", "STAGES", "TRAIN_FLAGS", "get_stage", "stage_order", "upstream_closure", "code_hash",
           "corpus_id", "status", "run_stage", "stale_stages", "explain_key_change", "REPO_ROOT", "stage_dir",
           "stage_file", "declared_inputs", "open_stage", "released_stages"]

DEMO_ROOT = Path("demo_corpus")
DEMO_CORPUS = DEMO_ROOT / "freesound"


# ---- declarations ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Flag:
    """A command-line flag of a stage. With `key`, its value overrides params[section][key] (and so enters the key);
    without, it is a run option (workers, offline) that cannot change the outputs."""

    names: tuple[str, ...]
    key: str = ""
    section: str = ""
    kwargs: dict = field(default_factory=dict)


def flag(*names: str, key: str = "", section: str = "", **kwargs) -> Flag:
    return Flag(names, key, section, kwargs)


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    inputs: dict[str, str]  # role -> "<upstream stage>/<file>" (read by the stage; hashed into its key)
    outputs: tuple[str, ...]  # files under the stage's folder, besides manifest.json
    sections: tuple[str, ...]  # params.yaml sections in its key ("tasks": the resolved task definitions)
    external: Callable[[Context], dict[str, Path]] | None = None  # inputs outside the build (corpus shards, ...)
    identity: Callable[[Context], dict] | None = None  # backend identity (model, endpoint host, prompt versions)
    flags: tuple[Flag, ...] = ()
    shared: bool = False  # one build for every corpus (build/<stage>), not build/<corpus id>/<stage>
    after: tuple[str, ...] = ()  # stages that must run first besides those it reads from

    @property
    def module(self) -> str:
        return f"pipeline.stages.{self.name}"

    @property
    def upstream(self) -> tuple[str, ...]:
        ups = [v.split("/", 1)[0] for v in self.inputs.values()] + list(self.after)
        return tuple(dict.fromkeys(ups))

    def run(self, ctx: Context) -> dict:
        import importlib

        return importlib.import_module(self.module).run(ctx)


def _read_inputs(ctx: Context) -> dict[str, Path]:
    from pipeline.reader import read_inputs

    return read_inputs(ctx.corpus, ctx.meta)


def _wiki_inputs(ctx: Context) -> dict[str, Path]:
    from pipeline.wiki.snapshot import snapshot_paths

    ranges, animals = snapshot_paths(ctx.section("wiki"))
    return {"ranges": ranges, "animal_sounds": animals}


def _filter_inputs(ctx: Context) -> dict[str, Path]:
    """The review decisions (when given) and the files holding the recognition tasks' item sources."""
    from pipeline.filter import external_inputs

    return external_inputs(ctx.build_dir, ctx.all_params())


def _llm_identity(section: str) -> Callable[[Context], dict]:
    def identity(ctx: Context) -> dict:
        p = ctx.section(section)
        backend = str(p.get("backend", "rules"))
        if backend != "openai":
            return {"backend": backend}
        from pipeline.extract.client import LLMSettings
        from pipeline.extract.prompts import load_prompt

        s = LLMSettings.from_params(p, section)
        prompts = {k[len("prompt_"):]: str(v) for k, v in sorted(p.items()) if k.startswith("prompt_")}
        out = {"backend": backend, "model": s.model, "endpoint_host": urlparse(s.base_url).netloc or s.base_url,
               "prompt_versions": prompts,
               "prompt_sha256": {n: load_prompt(n, v).sha for n, v in prompts.items()}}
        if section == "write":  # each comparison task's own prompt file (a user's task folder may hold it)
            from benchmark.tasks import writer_specs
            from pipeline.extract.prompts import load_prompt_file

            task_prompts = {name: load_prompt_file(spec["prompt_file"]) for name, spec in writer_specs(ctx.all_params()).items()
                            if spec.get("prompt_file")}
            out["task_prompts"] = {name: f"{p.id}@{p.sha}" for name, p in sorted(task_prompts.items())}
        return out

    identity.__name__ = f"{section}_llm_identity"
    return identity


def _measure_identity(ctx: Context) -> dict:
    p = ctx.section("measure")
    used = [str(p.get("estimator", ""))] + ([str(p.get("check_estimator", ""))] if p.get("cross_check") else [])
    out: dict[str, Any] = {"estimators": used}
    if any(e.startswith("crepe") for e in used):
        from importlib.metadata import PackageNotFoundError, version

        try:
            out["torchcrepe"] = version("torchcrepe")
        except PackageNotFoundError:
            out["torchcrepe"] = ""
    return out


def _index_inputs(ctx: Context) -> dict[str, Path]:
    from models.clap_checkpoint import checkpoint_inputs  # a clap:<file.pt> and its tokenizer folder

    return checkpoint_inputs(ctx.section("index"))


def _index_identity(ctx: Context) -> dict:
    """What `auto` resolves to (models.retrieval.resolve_auto, the resolver the build uses too): the published CLAP /
    AST when the hub cache (or HF_HOME) holds them, else the demo retrieval model and aisfx. Explicit model names
    are in the params already."""
    p = ctx.section("index")
    if "auto" not in (str(p.get("retrieval", "")), str(p.get("inject", ""))):
        return {}
    from models.retrieval import resolve_auto

    return resolve_auto(str(p.get("retrieval", "")), str(p.get("inject", "")))


TRAIN_FLAGS = (  # the training stages' flags; `auditorybench train` takes the same ones (pipeline.cli)
    flag("--epochs", key="epochs", section="train", type=int),
    flag("--lm", key="lm", section="train", help="hub id or local path of the masked LM ('minilm': the packaged MiniLM)"),
    flag("--device", key="device", section="train", choices=["cpu", "cuda"]),
    flag("--seed", key="seed", section="train", type=int),
)

_ITEM_STAGES: tuple[Stage, ...] = (  # the stages that make a corpus's items, up to the filter
    Stage("read", "read tar shards (or an extracted folder) + meta CSV into the clip table",
          inputs={}, outputs=("clips.parquet", "rejects.parquet"), sections=("read",), external=_read_inputs,
          flags=(flag("--workers", type=int, help="processes or Ray actors reading shards (default: all cores)"),)),
    Stage("extract", "categorise clips and write animal items (rules or LLM backend)",
          inputs={"clips": "read/clips.parquet"}, outputs=("categories.parquet", "animal_items.parquet", "rejects.parquet"),
          sections=("extract",), identity=_llm_identity("extract"),
          flags=(flag("--model", key="model_override", section="extract", help="LLM model name (else $AUDITORYBENCH_LLM_MODEL, else params.yaml)"),
                 flag("--offline", action="store_true", help="use the LLM cache only; fail naming the first missing entry"))),
    Stage("measure", "measure f0, brightness, loudness and duration of every clip",
          inputs={"clips": "read/clips.parquet"},
          outputs=("measurements.parquet", "pitch_notes.parquet", "fingerprints.parquet", "rejects.parquet"),
          sections=("measure",), identity=_measure_identity,
          flags=(flag("--estimator", key="estimator", section="measure", help="yin | pyin | crepe-tiny | crepe-full (see params.yaml)"),
                 flag("--cross-check", key="cross_check", section="measure", action="store_true", default=None,
                      help="run a second estimator and flag disagreements"),
                 flag("--device", key="device", section="measure", choices=["cpu", "cuda"]),
                 flag("--workers", type=int, help="processes or Ray actors (default: all cores)"))),
    Stage("split", "assign clips to train/dev/test by hashing audio-content groups",
          inputs={"clips": "read/clips.parquet", "measure_rejects": "measure/rejects.parquet",
                  "fingerprints": "measure/fingerprints.parquet",
                  "categories": "extract/categories.parquet", "animal_items": "extract/animal_items.parquet"},
          outputs=("clip_splits.parquet",), sections=("split", "tasks"),  # tasks: which recognition facts group clips
          flags=(flag("--seed", key="seed", section="split", type=int),)),
    Stage("pairs", "make comparison pairs inside each split for every comparison task",
          inputs={"clips": "read/clips.parquet", "categories": "extract/categories.parquet",
                  "measurements": "measure/measurements.parquet", "clip_splits": "split/clip_splits.parquet"},
          outputs=("pairs.parquet",), sections=("pairs", "split", "tasks")),
    Stage("write", "write comparison sentences for the pairs (rules or LLM backend)",
          inputs={"pairs": "pairs/pairs.parquet"}, outputs=("sentences.parquet", "rejects.parquet"),
          sections=("write", "tasks"), identity=_llm_identity("write"),
          flags=(flag("--model", key="model_override", section="write", help="LLM model name (else $AUDITORYBENCH_LLM_MODEL, else params.yaml)"),
                 flag("--offline", action="store_true", help="use the LLM cache only; fail naming the first missing entry"))),
    Stage("filter", "keep or reject items (agreement, repeats, balance, rare answers, review)",
          inputs={"clips": "read/clips.parquet", "clip_splits": "split/clip_splits.parquet",
                  "categories": "extract/categories.parquet", "animal_items": "extract/animal_items.parquet",
                  "pairs": "pairs/pairs.parquet", "sentences": "write/sentences.parquet"},
          outputs=("candidates.parquet", "items.parquet", "rejects.parquet"), sections=("filter", "tasks"),
          external=_filter_inputs),
)


def upstream_closure(name: str, stages: tuple[Stage, ...]) -> tuple[str, ...]:
    """`name` and every stage it reads from, directly or not, in declaration order."""
    by_name = {s.name: s for s in stages}
    todo, seen = [name], set()
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(by_name[n].upstream)
    return tuple(s.name for s in stages if s.name in seen)


_RELEASED_MANIFESTS = upstream_closure("filter", _ITEM_STAGES)  # the stage manifests a release carries (its card's table)

STAGES: tuple[Stage, ...] = _ITEM_STAGES + (
    Stage("wiki", "build the test-only wiki sets from the Wikipedia snapshot (or refresh the snapshot online)",
          inputs={}, outputs=("items.parquet", "rejects.parquet"), sections=("wiki", "tasks"), external=_wiki_inputs, shared=True,
          flags=(flag("action", nargs="?", default="build", choices=["build", "refresh"]),)),
    Stage("index", "build the audio index (retrieval + injection embeddings) over the corpus clips",
          inputs={"clips": "read/clips.parquet", "categories": "extract/categories.parquet",
                  "measure_rejects": "measure/rejects.parquet", "clip_splits": "split/clip_splits.parquet"},
          outputs=("audio_index", "rejects.parquet"), sections=("index",), identity=_index_identity, external=_index_inputs,
          flags=(flag("--device", key="device", section="index", choices=["cpu", "cuda"]),
                 flag("--workers", type=int, help="processes or Ray actors embedding clips (default: all cores)"),
                 flag("source", nargs="?", default=None, help="with --out: the corpus (folder or glob of tar shards) to index"),
                 flag("--out", help="write a standalone index of any corpus here (read + index), for train/eval --index DIR"))),
    Stage("release", "write the versioned release with its data card, and validate it",
          inputs={"items": "filter/items.parquet", "clips": "read/clips.parquet", "wiki_items": "wiki/items.parquet",
                  "pairs": "pairs/pairs.parquet", "sentences": "write/sentences.parquet",
                  "categories": "extract/categories.parquet", "audio_index": "index/audio_index",
                  "fingerprints": "measure/fingerprints.parquet",
                  **{f"manifest:{s}": f"{s}/manifest.json" for s in _RELEASED_MANIFESTS}},
          outputs=("release.json",), sections=("release", "tasks"),
          flags=(flag("--name", help="release name (default: the corpus id)"),
                 flag("--version", key="version", section="release",
                      help="publish under this version (e.g. when <name>-<version> exists with other content)"),
                 flag("--exclude-nc", key="exclude_nc", section="release", action="store_true", default=None,
                      help="leave out items that use non-commercial clips"))),
    Stage("card", "render the release's data card into it and copy it to the cards folder (release.cards_dir)",
          inputs={"release": "release/release.json", "manifest": "release/manifest.json"}, outputs=("card.json",),
          sections=("release",)),
    Stage("span_detector", "train the span detector on the corpus's release (AudioBERT and both twins read it)",
          inputs={"release": "release/release.json"}, outputs=("detector",), sections=("train",), flags=TRAIN_FLAGS),
    Stage("audiobert", "train AudioBERT on the corpus's release with the span_detector stage's detector (`train` trains on any release)",
          inputs={"release": "release/release.json", "detector": "span_detector/manifest.json"}, outputs=("config.json",),
          sections=("train",), flags=TRAIN_FLAGS),
    Stage("text_twin", "train AudioBERT's text-only twin (same LM and LoRA gate, no audio) with the same span detector",
          inputs={"release": "release/release.json", "detector": "span_detector/manifest.json"}, outputs=("config.json",),
          sections=("train",), flags=TRAIN_FLAGS),
    Stage("caption_twin", "train the caption twin: the text twin given the retrieved clips' captions as text (same retrieval, no audio)",
          inputs={"release": "release/release.json", "detector": "span_detector/manifest.json"}, outputs=("config.json",),
          sections=("train",), flags=TRAIN_FLAGS),
    Stage("results", "evaluate AudioBERT against its controls (text twin, caption twin, excluded / oracle / shuffled audio) on every task and split",
          inputs={"release": "release/release.json", "audiobert": "audiobert/manifest.json", "text": "text_twin/manifest.json",
                  "captions": "caption_twin/manifest.json"},
          outputs=("results.json", "results.md", "predictions.jsonl"), sections=("eval",),
          flags=(flag("--device", key="device", section="eval", choices=["cpu", "cuda"]),
                 flag("--max-items", key="max_items", section="eval", type=int, help="per task and split (0 = all)"),
                 flag("--workers", type=int, help="processes scoring the models at once (default: all cores; the same results)"))),
)
_BY_NAME = {s.name: s for s in STAGES}


def get_stage(name: str) -> Stage:
    if name not in _BY_NAME:
        import difflib

        close = difflib.get_close_matches(name, list(_BY_NAME), n=1)
        raise UnknownNameError(f"unknown stage {name!r}" + (f"; did you mean {close[0]!r}?" if close else f" (stages: {', '.join(_BY_NAME)})"))
    return _BY_NAME[name]


def stage_order() -> list[str]:
    """Stage names, every stage after those it reads from (declaration order breaks ties)."""
    done: list[str] = []
    while len(done) < len(STAGES):
        ready = [s.name for s in STAGES if s.name not in done and all(u in done for u in s.upstream)]
        if not ready:
            raise ConfigError(f"stage declarations form a cycle among {sorted(set(_BY_NAME) - set(done))}")
        done.append(ready[0])
    return done


def released_stages() -> tuple[str, ...]:
    """The stages whose manifests a release carries (read ... filter), in pipeline order: the card's table lists them."""
    return tuple(k.split(":", 1)[1] for k in get_stage("release").inputs if k.startswith("manifest:"))


# ---- where a build's files live: the one module that joins a stage's name into a path ---------------------------

def stage_dir(build_dir: str | Path, name: str) -> Path:
    """A stage's output folder in the build at build_dir (= build/<corpus id>): build_dir/<stage>; a shared stage's
    (wiki) is beside the corpus builds, build/<stage>, one for every corpus."""
    build_dir = Path(build_dir)
    return (build_dir.parent if get_stage(name).shared else build_dir) / name


def stage_file(build_dir: str | Path, ref: str) -> Path:
    """The path of "<stage>/<file>" in a build: a declared output of the stage (or a file inside one, e.g. a
    folder's member), its manifest.json or its run.json; anything else is a ConfigError (a typo, or an undeclared
    output another stage would silently depend on)."""
    name, _, rel = ref.partition("/")
    st = get_stage(name)
    if rel not in ("manifest.json", "run.json") and rel.split("/", 1)[0] not in st.outputs:
        raise ConfigError(f"{ref}: not an output of stage {name} (outputs: {', '.join(st.outputs)}, manifest.json)")
    return stage_dir(build_dir, name) / rel


def declared_inputs(build_dir: str | Path, name: str) -> dict[str, Path]:
    """role -> path of every upstream file the stage declares it reads, in the build at build_dir."""
    return {role: stage_file(build_dir, ref) for role, ref in get_stage(name).inputs.items()}


def open_stage(build_dir: str | Path | None, name: str, params: dict, *, key: dict | None = None, quiet: bool = False,
               optional: tuple[str, ...] = (), external: dict[str, Path] | None = None, skip: tuple[str, ...] = (),
               out_dir: Path | None = None):
    """The preamble of every stage body: a StageRun writing into the stage's folder, reading its declared inputs
    (`run.inputs[role]`) plus `external` ones (corpus shards, review decisions, ...).

    key: the freshness key from Context.key (None when the body is called directly: the run builds it from params,
    the input files and the stage's code hash). A declared input that is missing raises InputError naming the
    stage to run, unless its role is in `optional` (then it is left out of run.inputs); roles in `skip` are never
    read by this call (e.g. the wiki items of a release built without them)."""
    from pipeline.stage import StageRun

    inputs: dict[str, Path] = {}
    for role, path in (declared_inputs(build_dir, name) if build_dir is not None else {}).items():
        if role in skip:
            continue
        if path.exists():
            inputs[role] = path
        elif role not in optional:
            raise InputError(f"{path}: missing; run the {get_stage(name).inputs[role].split('/', 1)[0]} stage first")
    folder = Path(out_dir) if out_dir is not None else stage_dir(build_dir, name)  # type: ignore[arg-type]
    return StageRun(name, folder, params, inputs | (external or {}), key=key, quiet=quiet)


# ---- corpus identity ------------------------------------------------------------------------------------------

def corpus_id(corpus: str | Path) -> str:
    """`demo` for the embedded demo corpus; else the corpus folder's name plus 8 hex digits of a fingerprint of its
    shard list (relative names and sizes, plus the meta CSV's): cheap on a 630k-clip corpus (no byte is read), the
    same on every machine, and different for two corpora in folders of the same name."""
    from pipeline.reader import corpus_name, read_inputs

    name = corpus_name(corpus)
    if name == "demo":
        return name
    try:
        files = read_inputs(corpus, None)
    except InputError:
        return f"{name}-missing"
    sizes = {k: (p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file()))
             for k, p in sorted(files.items())}
    return f"{name}-{stable_hash(sizes, n=8)}"


# ---- context: the settings of one invocation -------------------------------------------------------------------

@dataclass
class Context:
    """Where a run reads and writes, and the settings it resolves (file < environment < flags)."""

    corpus: str = str(DEMO_CORPUS)
    corpus_id: str = ""  # "" = corpus_id(corpus)
    build_root: Path = Path("build")
    releases: Path = Path("releases")
    params_path: str | None = None
    meta: str | None = None
    overrides: dict[str, dict] = field(default_factory=dict)  # section -> key -> value (from flags)
    options: dict[str, Any] = field(default_factory=dict)  # run options that do not change outputs
    quiet: bool = False

    def __post_init__(self) -> None:
        self.build_root, self.releases = Path(self.build_root), Path(self.releases)
        if not self.corpus_id:
            self.corpus_id = corpus_id(self.corpus)
        self._keys: dict[str, dict] = {}
        self._params: dict | None = None

    @property
    def build_dir(self) -> Path:
        return self.build_root / self.corpus_id

    def stage_dir(self, name: str) -> Path:
        return stage_dir(self.build_dir, name)

    def manifest_path(self, name: str) -> Path:
        return stage_file(self.build_dir, f"{name}/manifest.json")

    def all_params(self) -> dict:
        if self._params is None:
            from pipeline.params import load_params, profile_for

            params = load_params(self.params_path, profile_for(self.corpus_id))
            for section, values in self.overrides.items():
                params[section] = {**(params.get(section) or {}), **{k: v for k, v in values.items() if v is not None}}
            self._params = params
        return self._params

    def section(self, name: str) -> dict:
        params = self.all_params()
        if name not in params:
            raise ConfigError(f"params.yaml has no section {name!r} (sections: {', '.join(sorted(params))})")
        return dict(params[name] or {})

    def release_name(self) -> str:
        exclude_nc = bool(self.section("release").get("exclude_nc"))
        return self.options.get("name") or (f"{self.corpus_id}-no-nc" if exclude_nc else self.corpus_id)

    def corpus_root(self) -> Path:
        """The folder the clip table's shard paths are relative to (recorded by the read stage)."""
        manifest = self.manifest_path("read")
        if not manifest.exists():
            raise InputError(f"{manifest}: not found; run `auditorybench read` first")
        return Path(json.loads(manifest.read_text(encoding="utf-8"))["corpus"]["root"])

    def release_dir(self) -> Path:
        return self.releases / f"{self.release_name()}-{self.section('release')['version']}"

    def open_stage(self, name: str, params: dict, **kwargs):
        """The stage's StageRun in this build, with its freshness key (pipeline.contract.open_stage)."""
        return open_stage(self.build_dir, name, params, key=self.key(name), quiet=self.quiet, **kwargs)

    def input_paths(self, name: str) -> dict[str, Path]:
        st = get_stage(name)
        paths = declared_inputs(self.build_dir, name)
        if st.external:
            paths |= st.external(self)
        return dict(sorted(paths.items()))

    def key(self, name: str) -> dict:
        """The stage's freshness key for this context (computed once)."""
        if name not in self._keys:
            from pipeline.stage import fingerprint

            st = get_stage(name)
            params = {s: self._section_for_key(s) for s in st.sections}
            if name == "release":
                params["release_name"] = self.release_name()
            missing = [str(p) for p in self.input_paths(name).values() if not p.exists()]
            if missing:
                raise InputError(f"{missing[0]}: input of stage {name} missing; run the stages before it")
            key = {"inputs": {k: fingerprint(p) for k, p in self.input_paths(name).items()},
                   "params": jsonable(params), "code": code_hash(st.module)}
            if st.identity:
                key["backend"] = jsonable(st.identity(self))
            self._keys[name] = key
        return self._keys[name]

    def _section_for_key(self, section: str) -> Any:
        if section == "tasks":  # the resolved task definitions (task YAMLs may come from AUDITORYBENCH_TASK_DIRS)
            from benchmark.tasks import enabled_tasks

            return {t.name: t.model_dump(exclude={"path"}) for t in enabled_tasks(self.all_params())}
        return self.section(section)


# ---- status and running --------------------------------------------------------------------------------------

def explain_key_change(old: dict | None, new: dict, parts: tuple[str, ...] = ("inputs", "params", "backend", "code")) -> list[str]:
    """Why a stage is stale, one short phrase per differing part of the key."""
    if not old:
        return ["no freshness key in its manifest"]
    why = []
    for part in parts:
        a, b = old.get(part) or {}, new.get(part) or {}
        if a == b:
            continue
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if part == "params":
            changed = [f"{s}.{k}" for s in changed for k in sorted(set((a.get(s) or {}) if isinstance(a.get(s), dict) else {}) |
                                                                     set((b.get(s) or {}) if isinstance(b.get(s), dict) else {}))
                       if not isinstance(a.get(s), dict) or (a.get(s) or {}).get(k) != (b.get(s) or {}).get(k)] or changed
        label = {"inputs": "input", "params": "setting", "backend": "backend", "code": "code"}[part]
        shown = ", ".join(changed[:4]) + (f" (+{len(changed) - 4} more)" if len(changed) > 4 else "")
        why.append(f"{label} changed: {shown}")
    return why


@dataclass
class StageStatus:
    name: str
    state: str  # fresh | stale | missing
    why: list[str]
    path: Path

    def line(self) -> str:
        return f"{self.name:<11} {self.state:<7} {'; '.join(self.why)}".rstrip()


def status(ctx: Context, names: list[str] | None = None) -> list[StageStatus]:
    """Every stage (in pipeline order) as fresh, stale (and why) or missing, without running anything."""
    out: dict[str, StageStatus] = {}
    for name in stage_order():
        st = get_stage(name)
        manifest = ctx.manifest_path(name)
        ups = [u for u in st.upstream if out[u].state != "fresh"]
        if not manifest.exists():
            out[name] = StageStatus(name, "missing", [], manifest)
            continue
        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            out[name] = StageStatus(name, "stale", ["manifest unreadable"], manifest)
            continue
        why = [f"upstream {', '.join(ups)} {'is' if len(ups) == 1 else 'are'} not fresh"] if ups else []
        try:  # with an upstream stage to rerun, its own inputs will change anyway: say what else changed
            why += explain_key_change(old.get("key"), ctx.key(name), ("params", "backend", "code") if ups else
                                      ("inputs", "params", "backend", "code"))
        except InputError as e:
            why.append(str(e))
        gone = [rel for rel in old.get("outputs", {}) if not (ctx.stage_dir(name) / rel).exists()]
        if gone:
            why.append(f"output missing: {gone[0]}")
        out[name] = StageStatus(name, "stale" if why else "fresh", why, manifest)
    return [out[n] for n in (names or stage_order())]


def stale_stages(ctx: Context) -> list[str]:
    return [s.name for s in status(ctx) if s.state != "fresh"]


def run_stage(name: str, ctx: Context) -> dict:
    """Run one stage through its module's `run(ctx)`; the stage does nothing when its key is in its manifest."""
    return get_stage(name).run(ctx)


def is_demo(corpus: str | Path) -> bool:
    return os.path.normpath(str(corpus)) == os.path.normpath(str(DEMO_CORPUS)) or Path(corpus).parent.name == "demo_corpus"
