"""A second `make demo` against the first, in a scratch build folder: the second should do no stage work."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_demo(build: Path, releases: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(["make", "demo", f"BUILD_ROOT={build}", f"RELEASES={releases}", "QUIET=1"], cwd=REPO,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"make demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0, proc.stdout + proc.stderr


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench_demo_"))
    try:
        first_s, first_log = make_demo(work / "build", work / "releases")
        second_s, second_log = make_demo(work / "build", work / "releases")
        stages_first = len(re.findall(r"^\[\w+\] done", first_log, flags=re.M))
        stages_second = len(re.findall(r"^\[\w+\] done", second_log, flags=re.M))
        print(json.dumps({"first_make_demo_s": round(first_s, 1), "second_make_demo_s": round(second_s, 2),
                          "second_vs_first": round(second_s / first_s, 4),
                          "stages_run_first": stages_first, "stages_run_second": stages_second}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
