"""Coverage of the 95 % interval for A − B on simulated demo-like data (benchmark.coverage): the multiway bootstrap
over sources (what every table uses), the connected-component grouping used before issue #23, and items alone.

    .venv/bin/python bench/coverage.py [--datasets 300] [--boot 500]
"""

from __future__ import annotations

import argparse
import time

from benchmark.coverage import Design, coverage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=300)
    ap.add_argument("--boot", type=int, default=500)
    args = ap.parse_args()
    designs = [("demo-like: 30 sources, 150 pairs, a clip per item side", Design()),
               ("30 sources, 150 pairs, 4 clips per source (clips shared)", Design(clips_per_source=4)),
               ("10 sources, 40 pairs", Design(n_sources=10, n_items=40)),
               ("6 sources, 15 pairs", Design(n_sources=6, n_items=15))]
    print(f"| design | truth | multiway (width) | group, before #23 (width) | items alone (width) |  ({args.datasets} datasets, {args.boot} resamples)")
    print("|---|---:|---:|---:|---:|")
    for name, d in designs:
        t = time.time()
        r = coverage(d, n_datasets=args.datasets, n_boot=args.boot)
        w = r["width"]
        print(f"| {name} | {r['truth']:+.3f} | {r['multiway']:.3f} ({w['multiway']:.3f}) | {r['group']:.3f} ({w['group']:.3f}) "
              f"| {r['items']:.3f} ({w['items']:.3f}) |  [{time.time() - t:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
