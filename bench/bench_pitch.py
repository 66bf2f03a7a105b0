"""The pitch estimators side by side on two real sets of sampled-instrument notes and unpitched sounds
(tests/real_notes.py: TimGM6mb, and Csound's GM bank with its vibrato notes).

Each estimator runs through the measure stage's own path (`measure_audio_bytes` on 16-bit stereo FLAC at 44.1/48 kHz,
with params.yaml's `measure` section and only `estimator` changed), in this process, on one core (torch and BLAS
limited to one thread). Per estimator and set: on the tonal notes the median |error| in cents, the share within 50
cents and the count an octave or more off (misses called unpitched count as outside 50 cents); the vibrato notes'
recall (within 50 cents); within-note octave jumps (successive voiced voting frames of the track that gave the pitch
600 cents or more apart: the notes with any, and their sum); on the unpitched clips the share called unpitched; and
the realtime factor (seconds of audio per second of wall time, decoding included) with its ratio to pyin's, measured
in the same run. The bars of the default (issue 28): on both sets >= 97 % within 50 cents, median <= 5 cents, >= 95 %
of the unpitched called unpitched, and >= 50x pyin's speed; `bars_met` says whether they hold. Prints the table on
stderr and one JSON object on stdout.

    python bench/bench_pitch.py [--estimators yin,pyin,crepe-tiny,crepe-full] [--every N | name=N,...]
                                [--banks timgm6mb,csound] [--params measure.yaml-overrides as JSON]
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
from tests.real_notes import BANKS, flac_bytes, real_note_set  # noqa: E402

BARS = {"within_50_cents": 0.97, "median_error_cents": 5.0, "noise_called_unpitched": 0.95, "speed_vs_pyin": 50.0}


def count_octave_jumps(tracks: dict, estimator: str, f0_pass: str) -> int:
    """Successive voiced voting frames 600 cents or more apart in the track that gave the clip's pitch (the high pass's
    when f0_pass is "high"); tracks as measure_audio fills them."""
    track, act = tracks[("yin", "high")] if f0_pass == "high" else tracks[(estimator, "base")]
    n = min(len(track.f0_hz), len(act))
    f0 = track.f0_hz[:n][track.voiced[:n] & act[:n] & np.isfinite(track.f0_hz[:n])]
    return int(np.sum(np.abs(np.diff(1200.0 * np.log2(f0))) >= 600.0)) if len(f0) > 1 else 0


def score(truths: list[float], measured: list[float], jumps: list[int] | None = None,
          vibrato: list[bool] | None = None) -> dict:
    """Figures from each clip's true f0 (NaN = unpitched), measured f0 (NaN = called unpitched), and optionally its
    within-note octave jumps and whether it is a vibrato note."""
    tonal = [i for i, t in enumerate(truths) if not math.isnan(t)]
    err = np.array([abs(float(cents_between(measured[i], truths[i]))) if not math.isnan(measured[i]) else math.inf
                    for i in tonal])
    noise = [math.isnan(m) for t, m in zip(truths, measured) if math.isnan(t)]
    out = {
        "tonal_notes": len(err),
        "median_error_cents": round(float(np.median(err)), 2),
        "within_50_cents": round(float(np.mean(err <= 50)), 3),
        "octave_errors": int(np.sum(np.isfinite(err) & (err >= 600))),
        "called_unpitched": int(np.sum(~np.isfinite(err))),
        "unpitched_clips": len(noise),
        "noise_called_unpitched": round(float(np.mean(noise)), 3),
    }
    if jumps is not None:
        out["notes_with_octave_jumps"] = int(sum(jumps[i] > 0 for i in tonal))
        out["octave_jumps"] = int(sum(jumps[i] for i in tonal))
    if vibrato is not None and any(vibrato):
        vib = [k for k, i in enumerate(tonal) if vibrato[i]]
        out["vibrato_notes"] = len(vib)
        out["vibrato_within_50_cents"] = round(float(np.mean(err[vib] <= 50)), 3)
    return out


# The slow estimators run on a thinner slice of the set so that `make bench` ends on a CPU (crepe-full measured 0.08x
# realtime on one busy core); every slice keeps every instrument and all the unpitched clips.
DEFAULT_EVERY = "yin=1,pyin=6,crepe-tiny=4,crepe-full=24"


def parse_every(text: str, names: list[str]) -> dict[str, int]:
    """`N` (every estimator) or `name=N,...` (unnamed estimators: 1) -> {estimator: every N-th key}."""
    if "=" not in text:
        return {n: int(text) for n in names}
    given = {k.strip(): int(v) for k, v in (part.split("=", 1) for part in text.split(",") if part.strip())}
    return {n: given.get(n, 1) for n in names}


def run_estimator(name: str, bank: str, every: int, overrides: dict) -> dict:
    """One estimator on one set through the measure stage's path: its figures (score) and realtime factor."""
    clips = real_note_set(every, bank)
    files = [flac_bytes(c) for c in clips]
    audio_s = sum(len(c.audio) / c.sr for c in clips)
    params = stage_params("measure", {**overrides, "estimator": name})
    try:
        measure_audio_bytes(files[0], params)  # warm-up: imports, model weights, numba
    except AudioRejected:
        pass
    measured, jumps = [], []
    t0 = time.perf_counter()
    for data in files:
        tracks: dict = {}
        try:
            m = measure_audio_bytes(data, params, tracks)
        except AudioRejected:
            measured.append(math.nan)
            jumps.append(0)
            continue
        measured.append(m["f0_hz"])
        jumps.append(count_octave_jumps(tracks, name, m["f0_pass"]))
    wall = time.perf_counter() - t0
    figures = score([c.f0_hz for c in clips], measured, jumps, [c.vibrato is not None for c in clips])
    return {"every": every, "clips": len(clips), "audio_s": round(audio_s, 1), **figures, "rtf_1core": round(audio_s / wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--estimators", default="yin,pyin,crepe-tiny,crepe-full")
    ap.add_argument("--every", default=DEFAULT_EVERY,
                    help=f"every N-th key of each instrument: N for all, or name=N,... (default {DEFAULT_EVERY})")
    ap.add_argument("--banks", default=",".join(BANKS), help="the real sets (tests/real_notes.py BANKS)")
    ap.add_argument("--params", default="{}", help='measure-section overrides as JSON, e.g. \'{"yin": {...}}\'')
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    names = args.estimators.split(",")
    banks = args.banks.split(",")
    every = parse_every(args.every, names)
    overrides = json.loads(args.params)
    default = str(stage_params("measure")["estimator"])
    rows: dict[str, dict[str, dict]] = {bank: {} for bank in banks}
    for bank in banks:
        for name in names:
            t0 = time.perf_counter()
            rows[bank][name] = run_estimator(name, bank, every[name], overrides)
            print(f"{bank} {name}: {time.perf_counter() - t0:.0f} s, {json.dumps(rows[bank][name])}", file=sys.stderr,
                  flush=True)  # progress: crepe-full is slow
        if "pyin" in rows[bank]:
            for r in rows[bank].values():
                r["speed_vs_pyin"] = round(r["rtf_1core"] / rows[bank]["pyin"]["rtf_1core"], 2)
    out = {"default": default, "banks": rows}
    if default in names:
        met = {}
        for bank in banks:
            r = rows[bank][default]
            met[bank] = (r["within_50_cents"] >= BARS["within_50_cents"] and r["median_error_cents"] <= BARS["median_error_cents"]
                         and r["noise_called_unpitched"] >= BARS["noise_called_unpitched"]
                         and r.get("speed_vs_pyin", math.inf) >= BARS["speed_vs_pyin"])
        out["bars_met"] = met
    head = ("| set | estimator | clips (every N-th key) | median error (cents) | within 50 c | octave errors | called unpitched "
            "| vibrato within 50 c | notes with octave jumps (jumps) | noise unpitched | realtime x (1 core) | x pyin |")
    lines = [head, "|" + "---|" * 12]
    for bank in banks:
        for name, r in rows[bank].items():
            vib = f"{r['vibrato_notes'] and round(100 * r['vibrato_within_50_cents'], 1)} % of {r['vibrato_notes']}" if "vibrato_notes" in r else "–"
            lines.append(f"| {bank} | `{name}`{' (default)' if name == default else ''} | {r['clips']} ({r['every']}) | "
                         f"{r['median_error_cents']} | {100 * r['within_50_cents']:.1f} % | {r['octave_errors']} | "
                         f"{r['called_unpitched']} | {vib} | {r['notes_with_octave_jumps']} ({r['octave_jumps']}) | "
                         f"{100 * r['noise_called_unpitched']:.1f} % | {r['rtf_1core']} | {r.get('speed_vs_pyin', '–')} |")
    print("pitch estimators on real sampled-instrument notes and unpitched clips:\n" + "\n".join(lines), file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
