"""`auditorybench`: one subcommand per stage and tool. Settings: flag > environment variable > params.yaml.

The stage subcommands are generated from the declarations in pipeline/contract.py. The Makefile calls them in
pipeline order; each stage skips itself when its freshness key (inputs, params, backend, code) is unchanged, and
resumes where it stopped when it was killed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from benchmark.errors import AuditoryBenchError
from pipeline.contract import DEMO_CORPUS, DEMO_ROOT

__all__ = ["main", "build_parser", "context"]


# ---- settings and the stage context --------------------------------------------------------------------------

def _params(args, section: str, **flags):
    from pipeline.params import stage_params

    return stage_params(section, flags, path=args.params)


def _overrides(args) -> dict[str, dict]:
    """--set section.key=value (YAML value), --llm, then the stage's own flags: what they change enters the key."""
    import yaml

    from benchmark.errors import ConfigError
    from pipeline.contract import get_stage

    out: dict[str, dict] = {}
    for item in getattr(args, "set", None) or []:
        name, sep, raw = item.partition("=")
        section, dot, key = name.partition(".")
        if not sep or not dot:
            raise ConfigError(f"--set {item!r}: expected section.key=value (e.g. measure.estimator=pyin)")
        out.setdefault(section, {})[key] = yaml.safe_load(raw)
    if getattr(args, "llm", None):
        for section in ("extract", "write"):
            out.setdefault(section, {})["backend"] = args.llm
    if getattr(args, "fn", None) is cmd_stage:
        for f in get_stage(args.command).flags:
            value = getattr(args, _dest(f), None)
            if f.key and value is not None:
                out.setdefault(f.section, {})[f.key] = value
    return out


def context(args):
    """The pipeline.contract.Context of a stage, `status` or `plan` invocation."""
    from pipeline.contract import Context, get_stage

    options = {}
    if getattr(args, "fn", None) is cmd_stage:
        options = {_dest(f): getattr(args, _dest(f)) for f in get_stage(args.command).flags if not f.key}
    options["engine"] = getattr(args, "engine", None) or "local"  # a run option: never in a key (same bytes either way)
    return Context(corpus=args.corpus, corpus_id=args.corpus_id or "", build_root=Path(args.build_root),
                   releases=Path(args.releases), params_path=args.params, meta=args.meta, overrides=_overrides(args),
                   options=options, quiet=args.quiet)


def _dest(f) -> str:
    return f.names[0].lstrip("-").replace("-", "_")


def _add_flags(p, flags) -> None:
    """Add declared flags (pipeline.contract.Flag) to a subcommand's parser."""
    for f in flags:
        p.add_argument(*f.names, **({"dest": _dest(f)} if f.names[0].startswith("-") else {}), **f.kwargs)


def cmd_stage(args) -> None:
    from pipeline.contract import run_stage

    run_stage(args.command, context(args))


# ---- tools (not stages) ---------------------------------------------------------------------------------------

def cmd_corpus(args) -> None:
    from pipeline.demo.corpus import build_demo_corpus

    p = _params(args, "demo_corpus", seed=args.seed, n_clips=args.n_clips)
    folder = build_demo_corpus(Path(args.out), seed=int(p["seed"]), n_clips=int(p["n_clips"]), n_shards=int(p["n_shards"]),
                               sample_rate=int(p["sample_rate"]), quiet=args.quiet)
    print(folder)


def cmd_status(args) -> None:
    """Every stage as fresh / stale (why) / missing, for the corpus given (like `dvc status`)."""
    from pipeline.contract import status

    ctx = context(args)
    print(f"corpus {ctx.corpus} -> {ctx.build_dir} (release {ctx.release_dir()})")
    for s in status(ctx):
        print("  " + s.line())


def cmd_plan(args) -> None:
    """For the Makefile (read once, at parse time): corpus id, release folder and the stages that must run."""
    from pipeline.contract import is_demo, stale_stages

    ctx = context(args)
    stale = stale_stages(ctx)
    if is_demo(ctx.corpus) and not _demo_corpus_fresh(args):
        stale = ["corpus", *stale]
    print(f"corpus_id={ctx.corpus_id} release={ctx.release_dir()} stale={','.join(stale)}")


def _demo_corpus_fresh(args) -> bool:
    """Whether `auditorybench corpus` would do nothing (its manifest holds the key it would write)."""
    from pipeline.code_hash import code_hash
    from pipeline.stage import StageRun

    root = Path(args.corpus).parent
    if not (root / "manifest.json").exists():
        return False
    p = _params(args, "demo_corpus")
    params = {k: int(p[k]) for k in ("seed", "n_clips", "n_shards", "sample_rate")}
    run = StageRun("corpus", root, params, code=code_hash("pipeline.demo.corpus"), quiet=True)
    old = run.previous() or {}
    return old.get("key") == run.full_key() and all((root / rel).exists() for rel in old.get("outputs", {}))


def cmd_validate(args) -> None:
    from benchmark.validate import validate_release

    report = validate_release(args.release)
    for v in report.violations:
        print(f"violation: {v}", file=sys.stderr)
    print(json.dumps(report.figures, indent=2, sort_keys=True, default=str))
    if not report.ok:
        raise SystemExit(f"{args.release}: {len(report.violations)} violation(s)")
    print(f"{args.release}: valid", file=sys.stderr)


def cmd_import_official(args) -> None:
    from benchmark.official import import_official

    version = args.version or _params(args, "release")["version"]
    scores = None
    if args.score:  # train and score on the original and the resplit release, for the resplit card
        import tempfile

        from models.config import RunOptions, TrainConfig
        from models.leakage import score_resplit

        if not args.resplit:
            raise AuditoryBenchError("--score needs --resplit (it compares the official test with the resplit test)")
        p = _params(args, "train", preset=args.preset, lm=args.lm, device=args.device, index_dir=args.index)
        with tempfile.TemporaryDirectory(prefix="resplit-score-") as work:
            scores = score_resplit(Path(args.src), version, TrainConfig.from_params(p), Path(work), RunOptions.from_params(p),
                                   quiet=args.quiet)
    path = import_official(Path(args.src), Path(args.releases), version, resplit=args.resplit, resplit_scores=scores)
    print(path)
    print(_defects_line(json.loads((path / "manifest.json").read_text(encoding="utf-8")).get("defects") or {}))


def _defects_line(defects: dict) -> str:
    """One line of what the official importer found: each defect kind with its count (details: the card and
    official_defects.json)."""
    def count(v) -> int:
        if isinstance(v, dict):
            return sum(count(x) for x in v.values())
        if isinstance(v, list):
            return len(v)
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0

    parts = [f"{k.replace('_', ' ')} {count(v)}" for k, v in sorted(defects.items()) if k != "answer_share" and count(v)]
    return "defects: " + ("; ".join(parts) if parts else "none found") + " (details in the card and official_defects.json)"


def cmd_tasks(args) -> None:
    from benchmark.tasks import get_task, list_tasks

    names = [args.name] if args.name else list_tasks()
    for n in names:
        t = get_task(n)
        choices = t.answer_choices if isinstance(t.answer_choices, list) else "(answers of its items)"
        print(f"{t.name}\tv{t.version}\t{t.kind}\tchoices={choices}\t{t.description}")


def cmd_params(args) -> None:
    """The resolved settings (defaults < params.yaml < environment) and the registered tasks, as JSON (--out: to a file)."""
    from benchmark.hashing import atomic_path
    from benchmark.tasks import get_task, list_tasks
    from pipeline.params import load_params

    resolved = {"params": load_params(args.params),
                "tasks": {n: get_task(n).model_dump(exclude={"path"}) for n in list_tasks()}}
    text = json.dumps(resolved, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    if not args.out:
        print(text, end="")
        return
    with atomic_path(Path(args.out)) as tmp:
        tmp.write_text(text, encoding="utf-8")


def cmd_train(args) -> None:
    from models.config import RunOptions, TrainConfig
    from models.train import train
    from pipeline.contract import TRAIN_FLAGS

    p = _params(args, "train", preset=args.preset, mode=args.mode, detector_dir=args.detector_dir, index_dir=args.index,
                **{f.key: getattr(args, _dest(f)) for f in TRAIN_FLAGS})
    from benchmark.hashing import stable_hash
    from pipeline.code_hash import code_hash

    options = RunOptions.from_params({**p, "resume_key": stable_hash(code_hash("models.train"))})  # no state of other code
    print(train(args.release, TrainConfig.from_params(p), Path(args.out), options, quiet=args.quiet))


def cmd_sweep(args) -> None:
    """Train the demo recipe and its variants on a release and choose by dev accuracy (models.sweep)."""
    from models.config import RunOptions, TrainConfig
    from models.sweep import VARIANTS, sweep
    from pipeline.contract import TRAIN_FLAGS

    p = _params(args, "train", preset=args.preset, **{f.key: getattr(args, _dest(f)) for f in TRAIN_FLAGS})
    chosen = {k: v for k, v in VARIANTS.items() if not args.variants or k in args.variants}
    res = sweep(args.release, TrainConfig.from_params(p), chosen, Path(args.out), RunOptions.from_params(p), quiet=args.quiet,
                workers=args.workers or os.cpu_count() or 1)
    print((Path(args.out) / "sweep.md").read_text(encoding="utf-8"), end="")
    print(f"chosen on dev: {res['chosen']}")


def cmd_report(args) -> None:
    """The README's demo results block from a results.json (models.report); --check: exit 1 when it differs."""
    from models.report import headline, sync_readme

    if not args.readme:
        print(headline(json.loads(Path(args.results).read_text(encoding="utf-8"))), end="")
        return
    if sync_readme(args.results, args.readme, check=args.check):
        print(f"{args.readme}: demo results match {args.results}")
    else:
        raise SystemExit(f"{args.readme}: its demo results differ from {args.results}; "
                         f"`auditorybench report {args.results} --readme {args.readme}` rewrites them")


def cmd_eval(args) -> None:
    from models.eval import evaluate

    p = _params(args, "eval", device=args.device, max_items=args.max_items)
    evaluate(args.release, args.models, Path(args.out), splits=tuple(p["splits"]),
             device=p["device"], seed=int(p["seed"]), max_items=int(p["max_items"]), index_dir=args.index,
             ablation=tuple(args.ablation or ()), quiet=args.quiet, workers=args.workers)
    if not args.quiet:
        print((Path(args.out) / "results.md").read_text(encoding="utf-8"))


def cmd_preflight(args) -> None:
    """The LLM against the demo truth, a sample of CORPUS, and the projection of the whole run (pipeline.preflight)."""
    from pipeline.preflight import Thresholds, run_preflight

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    run_preflight(args.corpus, Path(args.out), llm=args.llm, model=args.model, n_truth_clips=args.n_clips,
                  sample_clips=args.sample_clips, accept_weak=args.accept_weak_llm, params_path=args.params,
                  meta=args.meta, quiet=args.quiet, log=say,
                  thresholds=Thresholds(args.min_category_agreement, args.min_animal_recall))


def cmd_export(args) -> None:
    """A release in another harness's format: `export lm-eval RELEASE --out DIR` (lm-evaluation-harness tasks)."""
    from benchmark.export_lm_eval import export_lm_eval

    print(export_lm_eval(args.release, Path(args.out), split=args.split, tasks=tuple(args.tasks or ())))


def cmd_demo(args) -> None:
    """The whole chain on the embedded demo corpus, as `make demo` does."""
    import subprocess

    cmd = ["make", "demo", f"LLM={args.llm}"] + (["QUIET=1"] if args.quiet else [])
    raise SystemExit(subprocess.call(cmd))


# ---- parser ---------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from pipeline.contract import STAGES, TRAIN_FLAGS

    ap = argparse.ArgumentParser(prog="auditorybench", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn, help: str, pipeline: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=fn)
        p.add_argument("--params", default=None, help="params.yaml to use (default: the repository's, or $AUDITORYBENCH_PARAMS)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--build-root", default=os.environ.get("AUDITORYBENCH_BUILD", "build"), help="where stage outputs live (default: build)")
        if pipeline:  # what the Makefile passes to every stage and to `plan`, so that both resolve the same key
            p.add_argument("--corpus", default=os.environ.get("CORPUS", str(DEMO_CORPUS)), help="corpus folder or glob of tar shards (default: the demo corpus)")
            p.add_argument("--corpus-id", default=None, help="name of the corpus's build folder and release (default: demo, or the "
                                                             "corpus folder's name + a fingerprint of its shard list)")
            p.add_argument("--meta", default=os.environ.get("META") or None, help="the *_meta.csv with licences (default: found beside the corpus)")
            p.add_argument("--releases", default=os.environ.get("AUDITORYBENCH_RELEASES", "releases"))
            p.add_argument("--llm", default=None, choices=["rules", "openai"], help="backend of extract and write")
            p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a setting (repeatable)")
            p.add_argument("--engine", default=os.environ.get("AUDITORYBENCH_ENGINE") or "local", choices=["local", "ray"],
                           help="what maps the per-clip work of read, measure and index: the local process pool or Ray Data "
                                "($RAY_ADDRESS: a running cluster); the outputs are the same bytes, so it is not in any key")
        return p

    # the stages: one subcommand each, generated from their declarations (pipeline/contract.py)
    for stage in STAGES:
        p = add(stage.name, cmd_stage, stage.help, pipeline=True)
        _add_flags(p, stage.flags)
    p = add("status", cmd_status, "every stage as fresh / stale (and why) / missing, for a corpus", pipeline=True)
    p = add("plan", cmd_plan, "for the Makefile: corpus id, release folder and the stages that must run", pipeline=True)

    # the tools: add a non-stage subcommand here (a handler above, and its arguments)
    p = add("corpus", cmd_corpus, "build the embedded demo corpus (LAION-Audio-630K format) from its seed")
    p.add_argument("--out", default=str(DEMO_ROOT))
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--n-clips", type=int, default=None)
    p = add("validate", cmd_validate, "check a release for overlaps, duplicates, balance and schema; non-zero exit on a violation")
    p.add_argument("release")
    p = add("import-official", cmd_import_official, "convert the official AuditoryBench CSVs into the release format")
    p.add_argument("src", help="the dataset/ folder of the AudioBERT repository")
    p.add_argument("--releases", default=os.environ.get("AUDITORYBENCH_RELEASES", "releases"))
    p.add_argument("--version", default=None)
    p.add_argument("--resplit", action="store_true", help="also write official-resplit: no item id, sentence or source pair in two splits")
    p.add_argument("--score", action="store_true", help="with --resplit: train text-only (and AudioBERT with --index) on both, card shows the scores")
    p.add_argument("--index", default=None, help="audio index for AudioBERT in --score (`auditorybench index CORPUS --out DIR`)")
    p.add_argument("--preset", default=None, choices=["published", "demo"], help="training settings for --score")
    p.add_argument("--lm", default=None, help="masked LM for --score (hub id, local path or 'minilm')")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"])
    p = add("tasks", cmd_tasks, "list the registered tasks")
    p.add_argument("name", nargs="?", default=None)
    p = add("params", cmd_params, "print the resolved settings and the registered tasks (--out: write them to a file)")
    p.add_argument("--out", default=None)
    p = add("train", cmd_train, "train the span detector and AudioBERT (or its text-only twin) on a release")
    p.add_argument("release", help="a release folder or name (e.g. demo, official)")
    p.add_argument("--out", required=True, help="checkpoint folder (training resumes from its last state)")
    p.add_argument("--preset", default=None, choices=["published", "demo"], help="published settings (default) or the small demo config")
    p.add_argument("--mode", default=None, choices=["audiobert", "text", "captions"], help="text: the same model and gate with no audio; captions: no audio, the retrieved clips' captions as text")
    p.add_argument("--detector-dir", default=None, help="reuse a trained span detector")
    _add_flags(p, TRAIN_FLAGS)  # the training stages' flags (pipeline.contract), declared once
    p.add_argument("--index", default=None, help="audio index folder (`auditorybench index CORPUS --out DIR`); default: the release's audio_index/")
    p = add("eval", cmd_eval, "evaluate checkpoints and text-only LMs on a release; writes results.md and results.json")
    p.add_argument("release")
    p.add_argument("--models", nargs="+", required=True,
                   help="checkpoint folders, mlm:<hub id or path>, causal:<hub id or path> (causal:smollm2 = the packaged SmolLM2)")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None, choices=["cpu", "cuda"])
    p.add_argument("--max-items", type=int, default=None, help="per task and split, a fixed hash-chosen subset (0 = all)")
    p.add_argument("--index", default=None, help="audio index AudioBERT checkpoints retrieve from (default: the release's, else their own)")
    p.add_argument("--ablation", nargs="+", default=None, metavar="SPLIT",
                   help="also score the controls on these splits: item clips excluded, oracle (own clips) and shuffled audio")
    p.add_argument("--workers", type=int, default=1, help="processes scoring the models at once (the same results)")
    p = add("sweep", cmd_sweep, "train a recipe and its variants on a release, score them on dev only, choose by dev accuracy")
    p.add_argument("release")
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="demo", choices=["published", "demo"])
    p.add_argument("--variants", nargs="+", default=None, help="names from models.sweep.VARIANTS (default: all)")
    p.add_argument("--workers", type=int, default=None, help="variants trained at once, a process each (default: all cores; the same rows)")
    _add_flags(p, TRAIN_FLAGS)
    p = add("report", cmd_report, "the README's demo results block (control table, what the controls support) from a results.json")
    p.add_argument("results", help="results.json of `eval` or the results stage")
    p.add_argument("--readme", default=None, help="rewrite the block between its demo-results markers (else print it)")
    p.add_argument("--check", action="store_true", help="with --readme: only compare; exit 1 when the README differs")
    p = add("preflight", cmd_preflight, "before a real run: the LLM against the demo truth (beside the rules), a sample of "
            "CORPUS, and the whole run projected; non-zero exit when the model is below the thresholds")
    p.add_argument("corpus", nargs="?", default=None, help="the corpus folder or glob of tar shards a real run would "
                   "read (default: the demo corpus of the truth check stands in)")
    p.add_argument("--llm", default="openai", choices=["openai", "rules"], help="openai: the endpoint of $OPENAI_BASE_URL "
                   "(else params.yaml, else api.openai.com); rules: the projection without an LLM")
    p.add_argument("--model", default=None, help="LLM model name (else $AUDITORYBENCH_LLM_MODEL, else params.yaml)")
    p.add_argument("--meta", default=None, help="the corpus's *_meta.csv (default: found beside it)")
    p.add_argument("--out", default=str(Path(os.environ.get("AUDITORYBENCH_BUILD", "build")) / "preflight"))
    p.add_argument("--n-clips", type=int, default=72, help="clips of the demo corpus the LLM is checked on (truth known)")
    p.add_argument("--sample-clips", type=int, default=300, help="clips sampled from CORPUS for the projection")
    from pipeline.preflight.truth import Thresholds

    p.add_argument("--min-category-agreement", type=float, default=Thresholds.min_category_agreement,
                   help="of the demo clips, with the true category")
    p.add_argument("--min-animal-recall", type=float, default=Thresholds.min_animal_recall,
                   help="of the demo's true animal clips, with an accepted item naming the true animal")
    p.add_argument("--accept-weak-llm", action="store_true", help="report a model below the thresholds, exit 0")
    p = add("export", cmd_export, "write a release as lm-evaluation-harness tasks (lm_eval --include_path DIR --tasks auditorybench)")
    p.add_argument("format", choices=["lm-eval"])
    p.add_argument("release", help="a release folder or name")
    p.add_argument("--out", required=True, help="folder for the tasks (written to DIR/auditorybench/)")
    p.add_argument("--split", default="test", help="the split lm-eval scores (default test; every split is exported)")
    p.add_argument("--tasks", nargs="+", default=None, help="only these tasks (default: every task of the release)")
    p = add("demo", cmd_demo, "run the whole pipeline on the embedded demo corpus (same as `make demo`)")
    p.add_argument("--llm", default="rules", choices=["rules", "openai"])
    from pipeline.review.cli import add_parser as add_review_parser  # `review`: the review web app (pipeline/review/)
    add_review_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):  # also the progress bars of libraries (transformers' weight loading, hub)
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        args.fn(args)
    except AuditoryBenchError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
