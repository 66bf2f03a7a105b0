"""Reader peak memory on 10 shards against 1 shard (each ≥ 50 MB, generated for the bench): it should stay flat."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import json, resource, sys, time
from pipeline.stages.read import read_stage
t0 = time.perf_counter()
m = read_stage(sys.argv[1], sys.argv[2], {}, quiet=True)
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "wall_s": time.perf_counter() - t0, "clips": m["counts"]["kept"]}))
"""


def read_in_child(corpus: Path, build: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(corpus), str(build)], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from pipeline.demo.corpus import build_bench_shards

    work = Path(tempfile.mkdtemp(prefix="bench_reader_"))
    try:
        corpus = build_bench_shards(work / "corpus", n_shards=10, mb_per_shard=50, seed=0)
        shards = sorted(corpus.rglob("*.tar"))
        sizes_mb = [s.stat().st_size / 2**20 for s in shards]
        one = work / "one" / corpus.name
        one.mkdir(parents=True)
        (one / shards[0].name).symlink_to(shards[0])
        r1 = read_in_child(one, work / "build1")
        r10 = read_in_child(corpus, work / "build10")
        print(json.dumps({
            "shards": len(shards), "min_shard_mb": round(min(sizes_mb), 1),
            "peak_rss_mb_1_shard": round(r1["peak_rss_mb"], 1), "peak_rss_mb_10_shards": round(r10["peak_rss_mb"], 1),
            "peak_rss_ratio_10_vs_1": round(r10["peak_rss_mb"] / r1["peak_rss_mb"], 3),
            "clips_1": r1["clips"], "clips_10": r10["clips"],
            "read_mb_per_s_10": round(sum(sizes_mb) / r10["wall_s"], 1),
        }))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
