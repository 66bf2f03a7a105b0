"""Measure-stage speed and accuracy: the default path against a naive librosa.pyin baseline, in the same run.

Clips: every good clip of the demo corpus (ground_truth.csv gives pitch_kind and f0) when demo_corpus/ exists,
else a synthesised set (>= 60 s). Speed is a realtime factor: seconds of audio (each clip's whole duration) per
second of wall time, decoding included (the pool's worker start-up is not: a stage pays it once); the seconds
actually analysed for pitch (the window on each clip's most active part) are reported too. The baseline is
`librosa.pyin(y, sr=22050, fmin=C2, fmax=C7)` over the whole clip, in one process (--baseline-max-clips N times it
on the first N clips only; its realtime factor stays comparable).

Agreement with the ground truth, for the default path and the baseline: on clips with one f0 (pitch_kind steady or
vibrato) the median |error| in cents, the share within 50 cents and the count an octave or more off; on unpitched
clips the share reported unpitched; glides (a moving pitch, no single f0) apart: the share reported unpitched,
and for those given a pitch, the median |cents| from the contour's median.
Prints a one-line summary on stderr and one JSON object on stdout.

    python bench/bench_measure.py [--estimator yin] [--device cpu|cuda] [--workers N] [--max-clips N]
                                  [--demo-root DIR] [--baseline-max-clips N] [--no-baseline] [--synthetic]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.demo.synth import add_noise, harmonic_tone, noise, tone, vibrato_tone  # noqa: E402
from pipeline.measure.audio import AudioRejected, resample, to_mono  # noqa: E402
from pipeline.measure.measurement import measure_audio_bytes  # noqa: E402
from pipeline.measure.pitch import cents_between  # noqa: E402
from pipeline.params import stage_params  # noqa: E402

DEMO = REPO / "demo_corpus"


def _flac(y: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="FLAC")
    return buf.getvalue()


def synth_clips(sr: int = 48000) -> list[tuple[str, bytes, float, dict]]:
    """(name, FLAC bytes, duration_s, truth) for 14 clips of 3-10 s, ~90 s in all, lead-in silence on some.
    truth: {"kind": steady | none, "f0_hz": Hz or NaN, "f0_median_hz": Hz or NaN}."""
    rng = np.random.default_rng(7)
    specs = [
        ("harmonic", 98.0, 8.0), ("vibrato", 196.0, 6.0), ("weakfund", 261.6, 5.0), ("noisy", 440.0, 7.0),
        ("pure", 880.0, 4.0), ("harmonic", 1318.5, 3.0), ("vibrato", 55.0, 10.0), ("noisy", 1661.2, 6.0),
        ("white", math.nan, 6.0), ("pink", math.nan, 8.0), ("brown", math.nan, 5.0), ("band", math.nan, 7.0),
        ("harmonic", 155.6, 9.0), ("band", math.nan, 6.0),
    ]
    clips = []
    for i, (kind, f0, dur) in enumerate(specs):
        body = dur - 1.0
        if kind == "harmonic":
            y = harmonic_tone(f0, body, sr, seed=i)
        elif kind == "vibrato":
            y = vibrato_tone(f0, body, sr)
        elif kind == "weakfund":
            y = harmonic_tone(f0, body, sr, fundamental_gain=0.03, seed=i)
        elif kind == "noisy":
            y = add_noise(harmonic_tone(f0, body, sr, seed=i), 15.0, seed=i)
        elif kind == "pure":
            y = tone(f0, body, sr)
        else:
            band = (300.0 * (1 + i % 3), 600.0 * (1 + i % 3))
            y = noise(kind, body, sr, seed=i, band_hz=band)
        lead = (rng.standard_normal(sr) * 1e-4).astype(np.float32)  # 1 s of near-silence before the sound
        truth = {"kind": "none" if math.isnan(f0) else "steady", "f0_hz": f0, "f0_median_hz": f0}
        clips.append((f"{kind}_{f0:g}_{i}", _flac(np.concatenate([lead, y]), sr), dur, truth))
    return clips


def demo_clips(demo_root: Path, max_clips: int = 0) -> list[tuple[str, bytes, float, dict]]:
    """The demo corpus's good clips (ground_truth.csv), all or the first max_clips, with their truth:
    {"kind": steady | vibrato | glide | none, "f0_hz": the single f0 or NaN, "f0_median_hz": contour median or NaN}."""
    import pandas as pd

    truth = pd.read_csv(demo_root / "ground_truth.csv", keep_default_na=False,
                        na_values={c: ["nan", ""] for c in ("f0_hz", "f0_median_hz")})
    truth = truth[truth["bad"].fillna("").astype(str) == ""]
    if max_clips:
        truth = truth.head(max_clips)
    out = []
    for row in truth.to_dict("records"):
        with tarfile.open(demo_root / row["shard"]) as tf:  # ground_truth.csv shard paths start at the corpus root
            data = tf.extractfile(row["member"]).read()
        pitched = str(row["pitched"]).lower() in ("true", "1")
        kind = row.get("pitch_kind") or ("steady" if pitched else "none")  # older corpora lack pitch_kind
        f0 = float(row["f0_hz"]) if pitched else math.nan
        median = float(row.get("f0_median_hz", f0)) if kind != "none" else math.nan
        out.append((str(row["clip_id"]), data, sf.info(io.BytesIO(data)).duration, {"kind": kind, "f0_hz": f0, "f0_median_hz": median}))
    return out


def naive_pyin(data: bytes) -> float:
    """The baseline: decode, mono, resample to 22050 Hz, librosa.pyin C2..C7 over the whole clip; median voiced f0."""
    import librosa

    y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    y = resample(to_mono(y.T), sr, 22050)
    f0, voiced, _ = librosa.pyin(y, sr=22050, fmin=librosa.note_to_hz("C2"), fmax=librosa.note_to_hz("C7"))
    return float(np.nanmedian(f0[voiced])) if voiced.mean() >= 0.5 else math.nan


def _measure_or_none(data: bytes, params: dict) -> dict | None:
    try:
        return measure_audio_bytes(data, params)
    except AudioRejected:
        return None


def agreement(truths: list[dict], measured_hz: list[float]) -> dict:
    """Agreement figures from each clip's truth (see demo_clips) and measured f0 (NaN = reported unpitched)."""
    one = [(t["f0_hz"], m) for t, m in zip(truths, measured_hz) if t["kind"] in ("steady", "vibrato")]
    none = [m for t, m in zip(truths, measured_hz) if t["kind"] == "none"]
    glides = [(t["f0_median_hz"], m) for t, m in zip(truths, measured_hz) if t["kind"] == "glide"]
    err = np.array([abs(cents_between(m, t)) if not math.isnan(m) else math.inf for t, m in one])
    given = [abs(float(cents_between(m, t))) for t, m in glides if not math.isnan(m)]
    return {
        "single_f0_clips": len(one),
        "median_error_cents": round(float(np.median(err)), 2) if len(err) else None,
        "within_50_cents": round(float(np.mean(err <= 50)), 3) if len(err) else None,
        "octave_errors": int(np.sum(np.isfinite(err) & (err >= 600))),
        "unpitched_clips": len(none),
        "unpitched_correct": round(float(np.mean([math.isnan(m) for m in none])), 3) if none else None,
        "glide_clips": len(glides),
        "glides_unpitched": round(float(np.mean([math.isnan(m) for _, m in glides])), 3) if glides else None,
        "glides_pitched_median_cents_from_contour": round(float(np.median(given)), 1) if given else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--estimator", default=None, help="yin | pyin | crepe-tiny | crepe-full (default: params.yaml)")
    ap.add_argument("--device", default=None, help="cpu | cuda (CREPE)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-clips", type=int, default=0, help="first N good demo clips (default: all)")
    ap.add_argument("--demo-root", type=Path, default=DEMO, help="demo corpus folder (holds ground_truth.csv)")
    ap.add_argument("--baseline-max-clips", type=int, default=40, help="time the baseline on the first N clips (default 40, over 60 s of audio; 0 = all)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--synthetic", action="store_true", help="use the synthesised set even when the demo corpus exists")
    args = ap.parse_args()
    params = stage_params("measure", {"estimator": args.estimator, "device": args.device})

    use_demo = (args.demo_root / "ground_truth.csv").exists() and not args.synthetic
    clips = demo_clips(args.demo_root, args.max_clips) if use_demo else synth_clips()
    truths = [c[3] for c in clips]
    total_s = sum(c[2] for c in clips)

    _measure_or_none(clips[0][1], params)  # warm-up: imports, model weights, caches
    t0 = time.perf_counter()
    got = [_measure_or_none(c[1], params) for c in clips]
    wall_1 = time.perf_counter() - t0
    analysed_s = sum(m["analysed_s"] for m in got if m)

    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(_measure_or_none, [clips[0][1]] * args.workers, [params] * args.workers))  # start + warm workers
        t0 = time.perf_counter()
        list(pool.map(_measure_or_none, [c[1] for c in clips], [params] * len(clips)))
        wall_pool = time.perf_counter() - t0

    out = {
        "clips": len(clips),
        "source": str(args.demo_root) if use_demo else "synthetic",
        "audio_s": round(total_s, 1),
        "analysed_s": round(analysed_s, 1),
        "estimator": params["estimator"],
        "device": params.get("device", "cpu"),
        "default_wall_s_1proc": round(wall_1, 2),
        "default_rtf_1proc": round(total_s / wall_1, 1),
        "default_wall_s_pool": round(wall_pool, 2),
        "default_rtf_pool": round(total_s / wall_pool, 1),
        "workers": args.workers,
        "f0_pass": {p: sum(1 for m in got if m and m.get("f0_pass") == p) for p in ("base", "high")},
        "default_agreement": agreement(truths, [m["f0_hz"] if m else math.nan for m in got]),
    }
    if not args.no_baseline:
        base_clips = clips[: args.baseline_max_clips] if args.baseline_max_clips else clips
        base_s = sum(c[2] for c in base_clips)
        naive_pyin(_flac(tone(440.0, 0.5, 22050), 22050))  # warm-up (numba)
        t0 = time.perf_counter()
        base = [naive_pyin(c[1]) for c in base_clips]
        wall_b = time.perf_counter() - t0
        rtf_b = base_s / wall_b
        out.update({
            "baseline_clips": len(base_clips),
            "baseline_audio_s": round(base_s, 1),
            "baseline_wall_s": round(wall_b, 2),
            "baseline_rtf": round(rtf_b, 2),
            "speedup_1proc": round(out["default_rtf_1proc"] / rtf_b, 1),
            "speedup_pool": round(out["default_rtf_pool"] / rtf_b, 1),
            "baseline_agreement": agreement([c[3] for c in base_clips], base),
        })
    e = out["default_agreement"]
    print(
        f"measure[{out['estimator']}]: {out['audio_s']} s audio ({out['analysed_s']} s analysed) at "
        f"{out['default_rtf_1proc']}x realtime (1 proc), {out['default_rtf_pool']}x ({args.workers} procs)"
        + (f"; naive pyin {out['baseline_rtf']}x -> speedup {out['speedup_1proc']}x" if "baseline_rtf" in out else "")
        + f"; one-f0 clips: median err {e['median_error_cents']} c, within 50 c {e['within_50_cents']},"
        f" octave errors {e['octave_errors']}; unpitched correct {e['unpitched_correct']};"
        f" glides {e['glide_clips']} ({e['glides_unpitched']} unpitched)",
        file=sys.stderr,
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
