"""`make bench`: run every bench/bench_*.py in turn; each prints one JSON object of figures (ratios against a
baseline measured in the same run). The collected figures go to bench_out/bench.json."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEPARATE = {"scale"}  # an hour on two cores: `make bench-scale` (or `bench/run_all.py scale`)
REPO = HERE.parent


def last_json_object(stdout: str) -> dict | None:
    """The last JSON object a bench printed (one line, or indented over several)."""
    lines = stdout.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("{"):
            for end in range(len(lines), i, -1):
                try:
                    obj = json.loads("\n".join(lines[i:end]))
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    return obj
    return None


def main() -> None:
    out_dir = REPO / "bench_out"
    out_dir.mkdir(exist_ok=True)
    only = set(sys.argv[1:])
    results = {}
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if only and name not in only or not only and name in SEPARATE:
            continue
        print(f"== bench {name}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True)
        sys.stderr.write(proc.stderr[-4000:])
        figures = last_json_object(proc.stdout)
        if proc.returncode != 0 or figures is None:
            results[name] = {"error": f"exit {proc.returncode}", "stdout_tail": proc.stdout[-2000:]}
        else:
            results[name] = figures
        results[name]["bench_wall_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(results[name], indent=2), flush=True)
    (out_dir / "bench.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    failed = [n for n, r in results.items() if "error" in r]
    if failed:
        raise SystemExit(f"bench failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
