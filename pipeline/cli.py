"""`auditorybench`: one subcommand per stage and tool. Settings: flag > environment variable > params.yaml.

The Makefile calls these subcommands in pipeline order; each stage skips itself when its inputs, params and code
did not change, and resumes where it stopped when it was killed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from benchmark.errors import AuditoryBenchError

__all__ = ["main", "build_parser"]

DEMO_ROOT = Path("demo_corpus")
DEMO_CORPUS = DEMO_ROOT / "freesound"


def _build_dir(args) -> Path:
    from pipeline.reader import corpus_id_for

    corpus_id = args.corpus_id or corpus_id_for(args.corpus)
    return Path(args.build_root) / corpus_id


def _corpus_root(build_dir: Path) -> Path:
    manifest = build_dir / "read" / "manifest.json"
    if not manifest.exists():
        raise AuditoryBenchError(f"{manifest}: not found; run `auditorybench read` first")
    return Path(json.loads(manifest.read_text())["corpus"]["root"])


def _params(args, section: str, **flags):
    from pipeline.params import stage_params

    return stage_params(section, flags, path=args.params)


def _all_params(args) -> dict:
    from pipeline.params import load_params

    return load_params(args.params)


# ---- stage handlers -------------------------------------------------------------------------------------------

def cmd_corpus(args) -> None:
    from pipeline.demo_corpus import build_demo_corpus

    p = _params(args, "demo_corpus", seed=args.seed, n_clips=args.n_clips)
    folder = build_demo_corpus(Path(args.out), seed=int(p["seed"]), n_clips=int(p["n_clips"]), n_shards=int(p["n_shards"]),
                               sample_rate=int(p["sample_rate"]), quiet=args.quiet)
    print(folder)


def cmd_read(args) -> None:
    from pipeline.reader import read_stage

    read_stage(args.corpus, _build_dir(args), _params(args, "read"), meta=args.meta, quiet=args.quiet)


def cmd_extract(args) -> None:
    from pipeline.extract import extract_stage

    extract_stage(_build_dir(args), _params(args, "extract", backend=args.backend, model_override=args.model), quiet=args.quiet, offline=args.offline)


def cmd_measure(args) -> None:
    from pipeline.measure.stage import measure_stage

    b = _build_dir(args)
    p = _params(args, "measure", estimator=args.estimator, device=args.device, cross_check=args.cross_check)
    measure_stage(b, _corpus_root(b), p, workers=args.workers, quiet=args.quiet)


def cmd_split(args) -> None:
    from pipeline.split import split_stage

    split_stage(_build_dir(args), _params(args, "split", seed=args.seed), quiet=args.quiet)


def cmd_pairs(args) -> None:
    from pipeline.pairs import pairs_stage

    pairs_stage(_build_dir(args), _all_params(args), quiet=args.quiet)


def cmd_write(args) -> None:
    from benchmark.tasks import writer_specs
    from pipeline.extract import write_stage

    write_stage(_build_dir(args), _params(args, "write", backend=args.backend, model_override=args.model), writer_specs(_all_params(args)),
                quiet=args.quiet, offline=args.offline)


def cmd_filter(args) -> None:
    from pipeline.filter import filter_stage

    filter_stage(_build_dir(args), _all_params(args), quiet=args.quiet)


def cmd_wiki(args) -> None:
    if args.action == "refresh":
        from pipeline.wiki.stage import wiki_refresh

        print(json.dumps(wiki_refresh(_params(args, "wiki"), quiet=args.quiet), indent=2, sort_keys=True, default=str))
        return
    from pipeline.wiki.stage import wiki_stage

    wiki_stage(Path(args.build_root) / "wiki", _params(args, "wiki"), quiet=args.quiet)


def cmd_index(args) -> None:
    from pipeline.index_stage import index_corpus, index_stage

    if args.out:  # standalone: any corpus -> an index folder that train/eval --index use
        corpus = args.source or args.corpus
        p = _params(args, "index", device=args.device)
        print(index_corpus(corpus, Path(args.out), _params(args, "read"), p, meta=args.meta, corpus_id=args.corpus_id, quiet=args.quiet))
        return
    if args.source:
        raise AuditoryBenchError("index CORPUS needs --out DIR (without --out, the index stage of the build uses --corpus)")
    b = _build_dir(args)
    index_stage(b, _corpus_root(b), _params(args, "index", device=args.device), quiet=args.quiet)


def cmd_release(args) -> None:
    from pipeline.release_stage import release_stage

    b = _build_dir(args)
    p = _params(args, "release", version=args.version, exclude_nc=True if args.exclude_nc else None)
    # a release without non-commercial clips is another dataset: by default it gets its own name, never the full one's
    name = args.name or (f"{b.name}-no-nc" if p.get("exclude_nc") else b.name)
    wiki_dir = Path(args.build_root) / "wiki"
    path = release_stage(b, Path(args.releases), name, p, wiki_dir if (wiki_dir / "items.parquet").exists() else None, quiet=args.quiet)
    print(path)


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

        from models.config import TrainConfig
        from models.leakage import score_resplit

        if not args.resplit:
            raise AuditoryBenchError("--score needs --resplit (it compares the official test with the resplit test)")
        p = _params(args, "train", preset=args.preset, lm=args.lm, device=args.device, index_dir=args.index)
        with tempfile.TemporaryDirectory(prefix="resplit-score-") as work:
            scores = score_resplit(Path(args.src), version, TrainConfig.from_params(p), Path(work), quiet=args.quiet)
    print(import_official(Path(args.src), Path(args.releases), version, resplit=args.resplit, resplit_scores=scores))


def cmd_tasks(args) -> None:
    from benchmark.tasks import get_task, list_tasks

    names = [args.name] if args.name else list_tasks()
    for n in names:
        t = get_task(n)
        choices = t.answer_choices if isinstance(t.answer_choices, list) else "(answers of its items)"
        print(f"{t.name}\tv{t.version}\t{t.kind}\tchoices={choices}\t{t.description}")


def cmd_params(args) -> None:
    """The resolved settings (params.yaml + environment) and the registered tasks; with --out, written only on change
    (the Makefile's stages depend on that file, so a setting changed through the environment reruns them)."""
    from benchmark.hashing import atomic_path
    from benchmark.tasks import get_task, list_tasks

    resolved = {"params": _all_params(args),
                "tasks": {n: get_task(n).model_dump(exclude={"path"}) for n in list_tasks()}}
    text = json.dumps(resolved, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    if not args.out:
        print(text, end="")
        return
    out = Path(args.out)
    if not out.exists() or out.read_text(encoding="utf-8") != text:
        with atomic_path(out) as tmp:
            tmp.write_text(text, encoding="utf-8")


def cmd_train(args) -> None:
    from models.train import TrainConfig, train

    p = _params(args, "train", preset=args.preset, mode=args.mode, epochs=args.epochs, lm=args.lm, device=args.device,
                seed=args.seed, detector_dir=args.detector_dir, index_dir=args.index)
    print(train(args.release, TrainConfig.from_params(p), Path(args.out), quiet=args.quiet))


def cmd_eval(args) -> None:
    from models.eval import evaluate

    p = _params(args, "eval", device=args.device, max_items=args.max_items)
    evaluate(args.release, args.models, Path(args.out), splits=tuple(p["splits"]), metrics=tuple(p["metrics"]),
             device=p["device"], seed=int(p["seed"]), max_items=int(p["max_items"]), index_dir=args.index,
             ablation=tuple(args.ablation or ()), quiet=args.quiet)
    if not args.quiet:
        print((Path(args.out) / "results.md").read_text(encoding="utf-8"))


def cmd_demo(args) -> None:
    """The whole chain on the embedded demo corpus, as `make demo` does."""
    import subprocess

    cmd = ["make", "demo", f"LLM={args.llm}"] + (["QUIET=1"] if args.quiet else [])
    raise SystemExit(subprocess.call(cmd))


# ---- parser ---------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="auditorybench", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn, help: str, corpus: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=fn)
        p.add_argument("--params", default=None, help="params.yaml to use (default: the repository's, or $AUDITORYBENCH_PARAMS)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--build-root", default=os.environ.get("AUDITORYBENCH_BUILD", "build"), help="where stage outputs live (default: build)")
        if corpus:
            p.add_argument("--corpus", default=os.environ.get("CORPUS", str(DEMO_CORPUS)), help="corpus folder or glob of tar shards (default: the demo corpus)")
            p.add_argument("--corpus-id", default=None, help="name of the corpus's build folder (default: demo, or the corpus folder's name)")
        return p

    p = add("corpus", cmd_corpus, "build the embedded demo corpus (LAION-Audio-630K format) from its seed", corpus=False)
    p.add_argument("--out", default=str(DEMO_ROOT))
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--n-clips", type=int, default=None)
    p = add("read", cmd_read, "read tar shards (or an extracted folder) + meta CSV into the clip table")
    p.add_argument("--meta", default=os.environ.get("META") or None, help="the *_meta.csv with licences (default: found beside the corpus)")
    for name, fn, help in (("extract", cmd_extract, "categorise clips and write animal items (rules or LLM backend)"),
                           ("write", cmd_write, "write comparison sentences for the pairs (rules or LLM backend)")):
        p = add(name, fn, help)
        p.add_argument("--backend", default=os.environ.get("LLM") or None, choices=["rules", "openai"])
        p.add_argument("--model", default=None, help="LLM model name (else $AUDITORYBENCH_LLM_MODEL, else params.yaml)")
        p.add_argument("--offline", action="store_true", help="use the LLM cache only; fail naming the first missing entry")
    p = add("measure", cmd_measure, "measure f0, brightness, loudness and duration of every clip")
    p.add_argument("--estimator", default=None, help="pyin | crepe-tiny | crepe-full | ... (see params.yaml)")
    p.add_argument("--cross-check", action="store_true", default=None, help="run a second estimator and flag disagreements")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"])
    p.add_argument("--workers", type=int, default=None)
    p = add("split", cmd_split, "assign clips to train/dev/test by hashing audio-content groups")
    p.add_argument("--seed", type=int, default=None)
    add("pairs", cmd_pairs, "make comparison pairs inside each split for every comparison task")
    add("filter", cmd_filter, "keep or reject items (agreement, repeats, balance, rare answers, review)")
    p = add("wiki", cmd_wiki, "build the test-only wiki sets from the Wikipedia snapshot (or refresh the snapshot online)", corpus=False)
    p.add_argument("action", nargs="?", default="build", choices=["build", "refresh"])
    p = add("index", cmd_index, "build the audio index (retrieval + injection embeddings) over the corpus clips; "
            "`index CORPUS --out DIR` builds a standalone one from any corpus, for train/eval --index DIR")
    p.add_argument("source", nargs="?", default=None, help="corpus folder or glob of tar shards (with --out)")
    p.add_argument("--out", default=None, help="write a standalone index folder here (read + index of CORPUS)")
    p.add_argument("--meta", default=None, help="the *_meta.csv with licences (with --out; default: found beside the corpus)")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"])
    p = add("release", cmd_release, "write the versioned release with its data card, and validate it")
    p.add_argument("--releases", default=os.environ.get("AUDITORYBENCH_RELEASES", "releases"))
    p.add_argument("--name", default=None, help="release name (default: the corpus id)")
    p.add_argument("--version", default=None)
    p.add_argument("--exclude-nc", action="store_true", help="leave out items that use non-commercial clips")
    p = add("validate", cmd_validate, "check a release for overlaps, duplicates, balance and schema; non-zero exit on a violation", corpus=False)
    p.add_argument("release")
    p = add("import-official", cmd_import_official, "convert the official AuditoryBench CSVs into the release format", corpus=False)
    p.add_argument("src", help="the dataset/ folder of the AudioBERT repository")
    p.add_argument("--releases", default=os.environ.get("AUDITORYBENCH_RELEASES", "releases"))
    p.add_argument("--version", default=None)
    p.add_argument("--resplit", action="store_true", help="also write official-resplit: no item id, sentence or source pair in two splits")
    p.add_argument("--score", action="store_true", help="with --resplit: train text-only (and AudioBERT with --index) on both, card shows the scores")
    p.add_argument("--index", default=None, help="audio index for AudioBERT in --score (`auditorybench index CORPUS --out DIR`)")
    p.add_argument("--preset", default=None, choices=["published", "demo"], help="training settings for --score")
    p.add_argument("--lm", default=None, help="masked LM for --score (hub id, local path or 'minilm')")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"])
    p = add("tasks", cmd_tasks, "list the registered tasks", corpus=False)
    p.add_argument("name", nargs="?", default=None)
    p = add("params", cmd_params, "print the resolved settings and registered tasks (--out: write them only when changed)", corpus=False)
    p.add_argument("--out", default=None)
    p = add("train", cmd_train, "train the span detector and AudioBERT (or its text-only twin) on a release", corpus=False)
    p.add_argument("release", help="a release folder or name (e.g. demo, official)")
    p.add_argument("--out", required=True, help="checkpoint folder (training resumes from its last state)")
    p.add_argument("--preset", default=None, choices=["published", "demo"], help="published settings (default) or the small demo config")
    p.add_argument("--mode", default=None, choices=["audiobert", "text"], help="text: the same model and gate with no audio")
    p.add_argument("--detector-dir", default=None, help="reuse a trained span detector")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lm", default=None, help="hub id or local path of the masked LM ('minilm': the packaged MiniLM)")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"])
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--index", default=None, help="audio index folder (`auditorybench index CORPUS --out DIR`); default: the release's audio_index/")
    p = add("eval", cmd_eval, "evaluate checkpoints and text-only LMs on a release; writes results.md and results.json", corpus=False)
    p.add_argument("release")
    p.add_argument("--models", nargs="+", required=True,
                   help="checkpoint folders, mlm:<hub id or path>, causal:<hub id or path> (causal:smollm2 = the packaged SmolLM2)")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None, choices=["cpu", "cuda"])
    p.add_argument("--max-items", type=int, default=None, help="per task and split, a fixed hash-chosen subset (0 = all)")
    p.add_argument("--index", default=None, help="audio index AudioBERT checkpoints retrieve from (default: the release's, else their own)")
    p.add_argument("--ablation", nargs="+", default=None, metavar="SPLIT",
                   help="also score AudioBERT with oracle (own clips) and shuffled audio on these splits: the ablation table")
    p = add("demo", cmd_demo, "run the whole pipeline on the embedded demo corpus (same as `make demo`)", corpus=False)
    p.add_argument("--llm", default="rules", choices=["rules", "openai"])
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
