"""Bench the LLM extract path against a loopback OpenAI-compatible server with 200 ms latency per request.

Prints JSON: items per second at concurrency 1 and 16 (expect a speed-up of at least 6x: the adaptive limit starts at
one request and about doubles per round trip, so 72 requests spend a few round trips ramping up), the request count of a
cached replay (expect 0), and the yield (items kept per clip) of the rules backend vs the loopback LLM on the same
clips. Run: PYTHONPATH=. python bench/bench_extract.py [--clips 64] [--latency-s 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.stages.extract import extract_stage  # noqa: E402

ANIMALS = ["dog", "cat", "bird", "cow", "duck", "owl", "frog", "sheep"]


def make_clips(n: int) -> pd.DataFrame:
    rows = []
    for i in range(n):
        a = ANIMALS[i % len(ANIMALS)]
        rows.append({"clip_id": f"bench/{i:05d}", "source": "bench", "shard": "", "member": f"{i}.flac", "offset": 0, "size": 1,
                     "captions": [f"a {a} recorded outdoors"], "tags": [a, "field-recording"], "title": f"{a}_take_{i}.wav",
                     "description": f"{a} close mic", "license": "", "license_kind": "cc0", "license_flag": False, "author": "",
                     "url": "", "duration_s": 1.0, "sample_rate": 48000, "channels": 1, "audio_sha256": f"{i:064x}"})
    return pd.DataFrame(rows)


def run_once(build_dir: Path, clips: pd.DataFrame, params: dict) -> tuple[dict, float]:
    (build_dir / "read").mkdir(parents=True, exist_ok=True)
    clips.to_parquet(build_dir / "read" / "clips.parquet", index=False)
    t0 = time.perf_counter()
    manifest = extract_stage(build_dir, params, quiet=True)
    return manifest, time.perf_counter() - t0


class ServerProcess:
    """tests/openai_server.py in its own process, so its CPU does not slow the client being measured."""

    def __init__(self, latency_s: float):
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.openai_server", str(latency_s)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=dict(os.environ, PYTHONPATH=str(ROOT)))
        self.base_url = self.proc.stdout.readline().strip()

    @property
    def count(self) -> int:
        with urllib.request.urlopen(self.base_url + "/stats", timeout=10) as r:
            return int(json.load(r)["requests"])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--latency-s", type=float, default=0.2)
    args = ap.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    clips = make_clips(args.clips)
    out: dict = {"clips": args.clips, "latency_s": args.latency_s, "server": "separate process"}
    srv = ServerProcess(args.latency_s)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = {"backend": "openai", "model": "loopback", "base_url": srv.base_url, "batch_size": 8, "max_reject_frac": 0.5}
            for c in (1, 16):
                before = srv.count
                manifest, wall_s = run_once(Path(tmp) / f"c{c}", clips, dict(base, concurrency=c))
                items = manifest["counts"]["kept"]
                out[f"concurrency_{c}"] = {"items": items, "requests": srv.count - before, "wall_s": round(wall_s, 3),
                                           "items_per_s": round(items / wall_s, 2)}
            out["speedup_16_vs_1"] = round(out["concurrency_16"]["items_per_s"] / out["concurrency_1"]["items_per_s"], 2)
            shutil.rmtree(Path(tmp) / "c16" / "extract")
            before = srv.count
            replay, wall_s = run_once(Path(tmp) / "c16", clips, dict(base, concurrency=16))
            out["cached_replay"] = {"requests": srv.count - before, "cache_hits": replay["llm_stats"]["cache_hits"],
                                    "items": replay["counts"]["kept"], "wall_s": round(wall_s, 3)}
            # yield on hand-written Freesound-style captions: rules vs the loopback LLM, same validation
            from tests.pipeline.test_extract_rules import CAPTIONS, clip_row

            hand = pd.DataFrame([clip_row(i, *c[:4]) for i, c in enumerate(CAPTIONS)])
            for name, params in (("rules", {"backend": "rules", "max_reject_frac": 1.0}),
                                 ("loopback_llm", dict(base, concurrency=16, max_reject_frac=1.0))):
                m, _ = run_once(Path(tmp) / f"yield_{name}", hand, params)
                cats = m["counts"]["categories"]
                out[f"yield_{name}"] = {"clips": len(hand), "categorised": len(hand) - cats.get("other", 0),
                                        "animal_items": m["counts"]["kept"], "rejected": m["counts"]["rejected"]}
    finally:
        srv.close()
    out["ok"] = out["speedup_16_vs_1"] >= 6 and out["cached_replay"]["requests"] == 0
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
