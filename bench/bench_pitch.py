"""The pitch estimators side by side on real sampled-instrument notes and real unpitched sounds (tests/real_notes.py).

Each estimator runs through the measure stage's own path (`measure_audio_bytes` on 16-bit stereo FLAC at 44.1/48 kHz,
with params.yaml's `measure` section and only `estimator` changed), in this process, on one core (torch and BLAS
limited to one thread). Per estimator: on the tonal notes the median |error| in cents, the share within 50 cents and
the count an octave or more off (misses called unpitched count as outside 50 cents); on the unpitched clips the share
called unpitched; and the realtime factor (seconds of audio per second of wall time, decoding included) with its
ratio to pyin's, measured in the same run. Prints the table on stderr and one JSON object on stdout.

    python bench/bench_pitch.py [--estimators yin,pyin,crepe-tiny,crepe-full] [--every N | name=N,...]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, before numpy loads
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.measure.audio import AudioRejected  # noqa: E402
from pipeline.measure.measurement import measure_audio_bytes  # noqa: E402
from pipeline.measure.pitch import cents_between  # noqa: E402
from pipeline.params import stage_params  # noqa: E402
from tests.real_notes import flac_bytes, real_note_set  # noqa: E402


def score(truths: list[float], measured: list[float]) -> dict:
    """Figures from each clip's true f0 (NaN = unpitched) and measured f0 (NaN = called unpitched)."""
    err = np.array([abs(float(cents_between(m, t))) if not math.isnan(m) else math.inf
                    for t, m in zip(truths, measured) if not math.isnan(t)])
    noise = [math.isnan(m) for t, m in zip(truths, measured) if math.isnan(t)]
    return {
        "tonal_notes": len(err),
        "median_error_cents": round(float(np.median(err)), 2),
        "within_50_cents": round(float(np.mean(err <= 50)), 3),
        "octave_errors": int(np.sum(np.isfinite(err) & (err >= 600))),
        "called_unpitched": int(np.sum(~np.isfinite(err))),
        "unpitched_clips": len(noise),
        "noise_called_unpitched": round(float(np.mean(noise)), 3),
    }


# The slow estimators run on a thinner slice of the set so that `make bench` ends on a CPU (crepe-full measured 0.08x
# realtime on one busy core); every slice keeps every instrument and all the unpitched clips.
DEFAULT_EVERY = "yin=1,pyin=6,crepe-tiny=4,crepe-full=24"


def parse_every(text: str, names: list[str]) -> dict[str, int]:
    """`N` (every estimator) or `name=N,...` (unnamed estimators: 1) -> {estimator: every N-th key}."""
    if "=" not in text:
        return {n: int(text) for n in names}
    given = {k.strip(): int(v) for k, v in (part.split("=", 1) for part in text.split(",") if part.strip())}
    return {n: given.get(n, 1) for n in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--estimators", default="yin,pyin,crepe-tiny,crepe-full")
    ap.add_argument("--every", default=DEFAULT_EVERY,
                    help=f"every N-th key of each instrument: N for all, or name=N,... (default {DEFAULT_EVERY})")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    names = args.estimators.split(",")
    every = parse_every(args.every, names)
    default = str(stage_params("measure")["estimator"])
    rows = {}
    for name in names:
        clips = real_note_set(every[name])
        files = [flac_bytes(c) for c in clips]
        truths = [c.f0_hz for c in clips]
        audio_s = sum(len(c.audio) / c.sr for c in clips)
        params = stage_params("measure", {"estimator": name})
        try:
            measure_audio_bytes(files[0], params)  # warm-up: imports, model weights, numba
        except AudioRejected:
            pass
        t0 = time.perf_counter()
        measured = []
        for data in files:
            try:
                measured.append(measure_audio_bytes(data, params)["f0_hz"])
            except AudioRejected:
                measured.append(math.nan)
        wall = time.perf_counter() - t0
        rows[name] = {"every": every[name], "clips": len(clips), "audio_s": round(audio_s, 1),
                      **score(truths, measured), "rtf_1core": round(audio_s / wall, 2)}
        print(f"{name}: {wall:.0f} s, {json.dumps(rows[name])}", file=sys.stderr, flush=True)  # progress: crepe-full is slow
    if "pyin" in rows:
        for r in rows.values():
            r["speed_vs_pyin"] = round(r["rtf_1core"] / rows["pyin"]["rtf_1core"], 2)
    out = {"default": default, "estimators": rows}
    head = ("| estimator | clips (every N-th key) | median error (cents) | within 50 c | octave errors | called unpitched "
            "| noise unpitched | realtime x (1 core) |")
    lines = [head, "|" + "---|" * 8]
    for name, r in rows.items():
        lines.append(f"| `{name}`{' (default)' if name == default else ''} | {r['clips']} ({r['every']}) | "
                     f"{r['median_error_cents']} | "
                     f"{100 * r['within_50_cents']:.1f} % | {r['octave_errors']} | {r['called_unpitched']} | "
                     f"{100 * r['noise_called_unpitched']:.1f} % | {r['rtf_1core']} |")
    print("pitch estimators on real sampled-instrument notes and unpitched clips:\n" + "\n".join(lines), file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
