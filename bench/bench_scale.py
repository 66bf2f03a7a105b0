"""`make bench-scale`: how the build grows from 1k clips up, and what a second Ray worker buys.

For each N (default 1000 and 5000; --sizes 1000,5000,20000 for the full run) the demo generator writes a
LAION-format corpus of N clips (tar shards of 250 clips + meta CSV), and every stage from read to release runs on
it (rules LLM backend, local engine), each stage in its own process so that its peak RSS is its own (the process's
and its pool workers' maximum resident set). Reported, as ratios to the smallest N: wall seconds per clip and peak
RSS of each stage. Then, on the smallest N, measure and index on Ray with 1 and 2 workers (a local Ray started for
the run; result stores emptied, so every clip is computed), and the speed-up of 2 over 1. Then where the time of one
clip goes: decode, pitch (with the other measurements), embedding (aisfx), the demo retrieval model's text side, the
rules LLM (extract + write per clip), CPU time on one core in one process on the first 40 clips; and on the same clips
in the same run the aisfx embedding's old path (the published network as written) against the index's path (fp32,
and the bf16 option), on them and on a 10 s clip: the index's speed-up as a ratio.

Separately: --driver-sizes 20000,200000 (the index driver's peak RSS after the workers, on synthetic embeddings:
streamed through files as the stage does, against arrays in memory); --llm-requests (what extract and write with the
openai backend send per request kind, against the tests' loopback OpenAI-protocol server, on a kept build);
--ray-only measure,index (Ray 1 vs 2 workers again, on a kept build).

Goals (issue #12): per-clip time at the largest N <= 1.15x that at 1k; peak RSS <= 1.5x; Ray 2 workers >= 1.6x one.
On a shared machine the wall times are pessimistic, and the 2-vs-1 ratio most of all (a second worker only helps
when a second core is free). Prints a markdown table on stderr and one JSON object on stdout.

    python bench/bench_scale.py [--sizes 1000,5000] [--out bench_out/scale] [--no-ray] [--keep]
    python bench/bench_scale.py --driver-sizes 20000,200000 | --llm-requests | --ray-only measure,index [--sizes 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STAGES = ["read", "extract", "measure", "split", "pairs", "write", "filter", "wiki", "index", "release"]
CLIPS_PER_SHARD = 250


def run_one(build_root: str, corpus: str, stage: str, engine: str, workers: int | None, fresh: bool) -> dict:
    """In a child process: run one stage and report its wall time and peak RSS (self and pool workers), in MiB."""
    from pipeline.contract import Context, run_stage

    ctx = Context(corpus=corpus, corpus_id="scale", build_root=Path(build_root), releases=Path(build_root) / "releases",
                  quiet=True, options={"engine": engine, "workers": workers},
                  overrides={"release": {"cards_dir": str(Path(build_root) / "cards")}, "extract": {"backend": "rules"},
                             "write": {"backend": "rules"}})
    if fresh:  # compute every unit: no manifest, no result store
        shutil.rmtree(ctx.stage_dir(stage), ignore_errors=True)
    import importlib

    from pipeline.contract import get_stage

    importlib.import_module(get_stage(stage).module)  # imports (torch, ...) are a per-process cost, not per clip
    if engine == "ray":  # Ray's start-up is paid once per cluster, not per stage: outside the timing
        from pipeline.engines import init_ray

        init_ray(workers)
    t0 = time.perf_counter()
    run_stage(stage, ctx)
    wall = time.perf_counter() - t0
    # VmHWM: this process's own peak (ru_maxrss is inherited from the parent across fork + exec on Linux, so it
    # would report the bench's own size); the pool workers' maxrss is at most max(theirs, ours at their spawn)
    own = int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_s": wall, "rss_mib": max(own, kids), "rss_self_mib": own, "rss_workers_mib": kids}


def stage_in_child(build_root: Path, corpus: Path, stage: str, engine: str = "local", workers: int | None = None,
                   fresh: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--one", json.dumps([str(build_root), str(corpus), stage, engine, workers, fresh])]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_corpus(root: Path, n: int) -> Path:
    from pipeline.demo.corpus import build_demo_corpus
    from pipeline.params import load_params

    p = load_params(None)["demo_corpus"]
    return build_demo_corpus(root, seed=int(p["seed"]), n_clips=n, n_shards=max(2, n // CLIPS_PER_SHARD), quiet=True)


def where_time_goes(build_root: Path, corpus_root: Path, n_clips: int = 40) -> dict:
    """CPU seconds per clip on one core (one torch thread and one BLAS thread, as every engine worker runs: a
    multi-threaded BLAS would spin and bill its idle threads) of decode (at 16 kHz for measure and 44.1 kHz for the
    index), pitch (+ the other measurements), aisfx embedding (10 s max) on the index's path and, on the same clips
    in the same run, on the old one (the published network as written, fp32) and in bf16; the demo retrieval
    model's text side (MiniLM on the clip's captions, as the workers run it); plus the mean clip duration, to scale
    the figures to other clip lengths."""
    import numpy as np
    import pandas as pd
    import torch
    from threadpoolctl import threadpool_limits

    from models.audio_encoders import AisfxEncoder
    from models.loading import load_encoder, load_tokenizer
    from models.retrieval import IndexConfig, caption_texts, encode_sentences
    from pipeline.measure.audio import AudioRejected, load_audio_bytes
    from pipeline.measure.measurement import measure_audio
    from pipeline.params import load_params
    from pipeline.reader import read_clip_bytes
    from pipeline.stages.index import clip_texts

    torch.set_num_threads(1)
    params = load_params(None)["measure"]
    clips = pd.read_parquet(build_root / "scale" / "read" / "clips.parquet").head(n_clips)
    encoders = {"embedding": AisfxEncoder.from_checkpoint(), "embedding_old": AisfxEncoder.from_checkpoint(reference=True),
                "embedding_bf16": AisfxEncoder.from_checkpoint(precision="bf16")}
    text_side = (load_tokenizer(IndexConfig.text_encoder), load_encoder(IndexConfig.text_encoder))
    t = {"decode": 0.0, "pitch": 0.0, "embedding": 0.0, "text_side": 0.0, "embedding_old": 0.0, "embedding_bf16": 0.0}
    n = 0
    with threadpool_limits(1):
        for enc in encoders.values():  # a worker's first call builds its kernels (~1 s): once per worker, not per clip
            enc.encode([np.zeros(3 * 44100, np.float32)], 44100)
        encode_sentences(["warm up"], *text_side)
        for row in clips.to_dict("records"):
            data = read_clip_bytes(corpus_root, row["shard"], row["member"], int(row["offset"]), int(row["size"]))
            t0 = time.process_time()
            try:
                audio, sr, _ = load_audio_bytes(data, int(params["analysis_sr"]), max_duration_s=params.get("max_duration_s"),
                                                min_sample_rate_hz=int(params["min_sample_rate_hz"]))
                a44, _, _ = load_audio_bytes(data, 44100, max_duration_s=None)
            except AudioRejected:
                continue
            t1 = time.process_time()
            try:
                measure_audio(audio, int(params["analysis_sr"]), params)
            except AudioRejected:  # silent, too short, ...: the time still counts
                pass
            t["decode"] += t1 - t0
            t["pitch"] += time.process_time() - t1
            for name, enc in encoders.items():
                t0 = time.process_time()
                enc.encode([a44[: 10 * 44100]], 44100)
                t[name] += time.process_time() - t0
            t0 = time.process_time()
            texts = caption_texts(clip_texts(row))
            encode_sentences(texts, *text_side, batch=len(texts))
            t["text_side"] += time.process_time() - t0
            n += 1
    out = {k: v / max(n, 1) for k, v in t.items()}
    out["mean_clip_s"] = float(clips["duration_s"].mean())
    with threadpool_limits(1):  # a clip of max_audio_s (10 s: 7 blocks of 2.3 s), what LAION's longer clips cost
        ten = np.random.default_rng(0).standard_normal(10 * 44100).astype(np.float32) * 0.1
        for name, enc in encoders.items():
            t0 = time.process_time()
            for _ in range(3):
                enc.encode([ten], 44100)
            out[f"{name}_10s"] = (time.process_time() - t0) / 3
    return out


def llm_requests(build: Path) -> dict:
    """What the LLM stages send, per request kind, on a build's clips and pairs (extract + write with the openai
    backend against the loopback OpenAI-protocol server of the tests, tests/openai_server.py; the prompts of
    params.yaml): requests per clip, mean characters of the prompt itself (the messages without the data block),
    of the data block, and of the response_format schema. Tokens ≈ characters / 4."""
    import statistics

    import pandas as pd

    from benchmark.tasks import writer_specs
    from pipeline.params import load_params
    from pipeline.stages.extract import extract_stage
    from pipeline.stages.write import write_stage
    from tests.openai_server import FakeModel, OpenAIServer, Reply, request_data

    work = build.parent / "llm_requests"
    shutil.rmtree(work, ignore_errors=True)
    for stage in ("read", "pairs"):
        shutil.copytree(build / stage, work / stage)
    params, model = load_params(None), FakeModel()
    os.environ.setdefault("OPENAI_API_KEY", "loopback")
    with OpenAIServer(lambda body, i: Reply(content=model.answer(body))) as srv:
        llm = {"backend": "openai", "model": "loopback", "base_url": srv.base_url, "max_reject_frac": 1.0}
        extract_stage(work, params["extract"] | llm, quiet=True)
        write_stage(work, params["write"] | llm, writer_specs(params), quiet=True)
        bodies = list(srv.requests)
    n_clips = len(pd.read_parquet(build / "read" / "clips.parquet", columns=["clip_id"]))
    sizes: dict = {}
    for body in bodies:
        kind, data = request_data(body)
        total = sum(len(m["content"]) for m in body["messages"])
        data_chars = len(json.dumps(data, ensure_ascii=False, indent=1))
        sizes.setdefault(kind, []).append((total - data_chars, data_chars, len(json.dumps(body.get("response_format", {})))))
    shutil.rmtree(work, ignore_errors=True)
    names = {"clips": "categorise", "clip": "animal_item", "pair": "comparison_sentence"}
    return {names[k]: {"requests_per_clip": len(v) / n_clips, "prompt_chars": statistics.mean(x[0] for x in v),
                       "data_chars": statistics.mean(x[1] for x in v), "schema_chars": statistics.mean(x[2] for x in v)}
            for k, v in sizes.items()}


def driver_memory(n: int, streamed: bool, root: Path) -> dict:
    """In a child process: the index's driver work after the workers (demo projection training, recall, writing the
    embeddings) on n synthetic clips, each one 512-d audio row (aisfx) and two 384-d text rows (MiniLM). streamed:
    from scratch RowFiles into the index folder a block at a time (the index stage's path); else from arrays in
    memory (how the driver held them before). Peak RSS (VmHWM) and its growth over the process's RSS before."""
    import numpy as np

    from models._io import RowFile
    from models.retrieval import IndexConfig, finish_index, plan_index

    def status(field: str) -> float:
        return int(Path("/proc/self/status").read_text().split(f"{field}:")[1].split()[0]) / 1024

    config = IndexConfig(retrieval="demo", inject="aisfx", epochs=20)  # a step's memory does not depend on how many
    plan = plan_index(config)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {"audio": RowFile.create(root / "audio.npy", n, 512), "text": RowFile.create(root / "text.npy", 2 * n, 384)}
    for s in range(0, n, 8192):
        m = min(8192, n - s)
        files["audio"][s:s + m] = rng.standard_normal((m, 512), dtype=np.float32)
        files["text"][2 * s:2 * (s + m)] = rng.standard_normal((2 * m, 384), dtype=np.float32)
    base = status("VmRSS")
    ids, captions = [f"c{i}" for i in range(n)], [f"clip {i}\nsound {i}" for i in range(n)]
    audio, text = (files["audio"], files["text"]) if streamed else (files["audio"][0:n], files["text"][0:2 * n])
    t0 = time.perf_counter()
    index = finish_index(ids, captions, {"aisfx": audio}, plan, config, text, out_dir=root / "index" if streamed else None)
    index.save(root / "index")
    wall = time.perf_counter() - t0
    assert np.load(root / "index" / "retrieval_embeddings.npy", mmap_mode="r").shape == (n, config.proj_dim)
    for f in files.values():
        f.discard()
    shutil.rmtree(root, ignore_errors=True)
    peak = status("VmHWM")
    return {"n": n, "streamed": streamed, "peak_mib": peak, "growth_mib": peak - base, "wall_s": wall}


def driver_memory_runs(sizes: list[int], out: Path) -> dict:
    res = {}
    for streamed in (True, False):
        for n in sizes:
            cmd = [sys.executable, __file__, "--driver-memory", json.dumps([n, streamed, str(out / f"driver_{n}")])]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            if proc.returncode != 0:
                raise RuntimeError(f"driver memory at n={n} failed:\n{proc.stderr[-2000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            res[f"{'streamed' if streamed else 'in_memory'}:{n}"] = r
            print(f"[bench-scale] driver n={n} streamed={streamed}: peak {r['peak_mib']:.0f} MiB (+{r['growth_mib']:.0f})",
                  file=sys.stderr, flush=True)
    return res


def ray_runs(build_root: Path, corpus: Path, n: int, stages: list[str]) -> dict:
    """Each stage on Ray with 1, then 2 workers, every unit computed (no manifest, no result store)."""
    out = {}
    for stage in stages:
        for workers in (1, 2):
            r = stage_in_child(build_root, corpus, stage, engine="ray", workers=workers, fresh=True)
            out[f"{stage}:{workers}"] = r
            print(f"[bench-scale] N={n} ray {stage} x{workers}: {r['wall_s']:.1f}s", file=sys.stderr, flush=True)
        out[f"{stage}:speedup"] = out[f"{stage}:1"]["wall_s"] / out[f"{stage}:2"]["wall_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,5000")
    ap.add_argument("--out", default=str(REPO / "bench_out" / "scale"))
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the corpora and builds")
    ap.add_argument("--resume", action="store_true", help="reuse the stage timings of an interrupted run (same --out)")
    ap.add_argument("--ray-only", default="", help="stages (e.g. measure,index): only Ray 1 vs 2 workers, on the build "
                                                   "of the smallest size that a previous run left in --out (with --keep)")
    ap.add_argument("--driver-sizes", default="", help="only the index driver's memory on synthetic embeddings, e.g. "
                                                       "20000,200000: streamed (RowFiles) vs arrays in memory")
    ap.add_argument("--llm-requests", action="store_true", help="only what the LLM stages would send, per request kind, "
                                                                 "on the smallest size's build a previous run left (--keep)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--driver-memory", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(*json.loads(args.one))))
        return
    if args.driver_memory:
        n, streamed, root = json.loads(args.driver_memory)
        print(json.dumps(driver_memory(n, streamed, Path(root))))
        return
    if args.llm_requests:
        sizes = sorted(int(x) for x in args.sizes.split(","))
        res = llm_requests(Path(args.out) / f"n{sizes[0]}" / "build" / "scale")
        print("| LLM request | per clip | prompt chars | data chars | schema chars |\n|---|---|---|---|---|\n" + "\n".join(
            f"| {k} | {v['requests_per_clip']:.3f} | {v['prompt_chars']:.0f} | {v['data_chars']:.0f} | {v['schema_chars']:.0f} |"
            for k, v in res.items()), file=sys.stderr)
        print(json.dumps(res, indent=1, sort_keys=True))
        return
    if args.driver_sizes:
        sizes = [int(x) for x in args.driver_sizes.split(",")]
        res = driver_memory_runs(sizes, Path(args.out))
        lines = ["| index driver, synthetic clips | " + " | ".join(f"peak MiB @{n}" for n in sizes) + f" | ×{sizes[-1]}/{sizes[0]} |",
                 "|---|" + "---|" * len(sizes) + "---|"]
        for mode in ("streamed", "in_memory"):
            peaks = [res[f"{mode}:{n}"]["peak_mib"] for n in sizes]
            lines.append(f"| {mode} | " + " | ".join(f"{p:.0f}" for p in peaks) + f" | {peaks[-1] / peaks[0]:.2f} |")
        print("\n".join(lines), file=sys.stderr)
        print(json.dumps(res, indent=1, sort_keys=True))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    out = Path(args.out)
    if args.ray_only:
        root = out / f"n{sizes[0]}"
        runs = ray_runs(root / "build", root / "corpus" / "freesound", sizes[0], args.ray_only.split(","))
        print(json.dumps({"ray": runs, "n": sizes[0], "load_avg_end": os.getloadavg()[0]}, indent=1, sort_keys=True))
        return
    partial = out / "partial.json"  # --resume: stages already timed in an interrupted run are not run again
    done = json.loads(partial.read_text()) if args.resume and partial.exists() else {}
    results: dict = {"sizes": sizes, "cores": os.cpu_count(), "load_avg_start": os.getloadavg()[0], "stages": {}}
    for n in sizes:
        root = out / f"n{n}"
        if not args.resume:
            shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        corpus = make_corpus(root / "corpus", n)
        print(f"[bench-scale] N={n}: corpus in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
        for stage in STAGES:
            r = done.get(str(n), {}).get(stage) or stage_in_child(root / "build", corpus, stage)
            done.setdefault(str(n), {})[stage] = r
            out.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(done))
            results["stages"].setdefault(stage, {})[n] = r
            print(f"[bench-scale] N={n} {stage}: {r['wall_s']:.1f}s, {r['rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
        build = root / "build" / "scale"
        results.setdefault("disk_bytes_per_clip", {})[n] = {
            s: sum(f.stat().st_size for f in (build / s).rglob("*") if f.is_file()) / n for s in STAGES if (build / s).is_dir()}
        if n == sizes[0]:
            results["where_time_goes_s_per_clip"] = where_time_goes(root / "build", corpus)
            results["llm_rules_s_per_clip"] = (results["stages"]["extract"][n]["wall_s"] + results["stages"]["write"][n]["wall_s"]) / n
            if not args.no_ray:
                results["ray"] = ray_runs(root / "build", corpus, n, ["measure", "index"])
        if not args.keep and n != sizes[-1]:
            shutil.rmtree(root / "corpus", ignore_errors=True)
    results["load_avg_end"] = os.getloadavg()[0]
    print(render(results), file=sys.stderr)
    print(json.dumps(results, indent=1, sort_keys=True))


def render(r: dict) -> str:
    sizes = r["sizes"]
    base = sizes[0]
    head = "| stage | " + " | ".join(f"s/clip @{n}" for n in sizes) + " | " + " | ".join(f"time/clip ×{n}/{base}" for n in sizes[1:]) \
        + " | " + " | ".join(f"MiB @{n}" for n in sizes) + " | " + " | ".join(f"RSS ×{n}/{base}" for n in sizes[1:]) + " |"
    lines = [head, "|" + "---|" * (1 + 4 * len(sizes) - 2)]
    for stage, by_n in r["stages"].items():
        per = {n: by_n[n]["wall_s"] / n for n in sizes}
        rss = {n: by_n[n]["rss_mib"] for n in sizes}
        lines.append(f"| {stage} | " + " | ".join(f"{per[n]:.4f}" for n in sizes) + " | "
                     + " | ".join(f"{per[n] / per[base]:.2f}" for n in sizes[1:]) + " | "
                     + " | ".join(f"{rss[n]:.0f}" for n in sizes) + " | " + " | ".join(f"{rss[n] / rss[base]:.2f}" for n in sizes[1:]) + " |")
    tot = {n: sum(v[n]["wall_s"] for v in r["stages"].values()) / n for n in sizes}
    lines.append("| **all** | " + " | ".join(f"{tot[n]:.4f}" for n in sizes) + " | " + " | ".join(f"{tot[n] / tot[base]:.2f}" for n in sizes[1:])
                 + " | | | |")
    if "ray" in r:
        lines.append("")
        lines.append(f"| Ray @{base} | 1 worker s | 2 workers s | speed-up |")
        lines.append("|---|---|---|---|")
        for stage in ("measure", "index"):
            if f"{stage}:1" not in r["ray"]:
                continue
            one, two = r["ray"][f"{stage}:1"]["wall_s"], r["ray"][f"{stage}:2"]["wall_s"]
            lines.append(f"| {stage} | {one:.1f} | {two:.1f} | {one / two:.2f}x |")
    if "where_time_goes_s_per_clip" in r:
        wt = r["where_time_goes_s_per_clip"]
        w = {k: wt[k] for k in ("decode", "pitch", "embedding", "text_side")} | {"llm_rules (wall)": r["llm_rules_s_per_clip"]}
        total = sum(w.values())
        lines += ["", "| where one clip's time goes (CPU s, one core) | s/clip | share |", "|---|---|---|"]
        lines += [f"| {k} | {v:.4f} | {100 * v / total:.0f} % |" for k, v in w.items()]
        lines += ["", "| aisfx embedding, same clips, same run | s/clip | speed-up over the old path |", "|---|---|---|"]
        lines += [f"| {k} | {wt[k]:.4f} | {wt['embedding_old'] / wt[k]:.2f}x |" for k in ("embedding_old", "embedding", "embedding_bf16")]
        if "embedding_10s" in wt:
            lines += [f"| {k} (a 10 s clip) | {wt[k + '_10s']:.4f} | {wt['embedding_old_10s'] / wt[k + '_10s']:.2f}x |"
                      for k in ("embedding_old", "embedding", "embedding_bf16")]
    lines.append(f"\nload average {r['load_avg_start']:.1f} → {r['load_avg_end']:.1f} on {r['cores']} cores (shared: timings pessimistic)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
