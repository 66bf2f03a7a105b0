"""Measure-stage speed and accuracy: the default path against a naive librosa.pyin baseline, in the same run.

Clips: the demo corpus (ground_truth.csv gives f0) when demo_corpus/ exists, else a synthesised set (>= 60 s).
Speed is a realtime factor: seconds of audio (each clip's whole duration) per second of wall time, decoding
included (the pool's worker start-up is not: a stage pays it once). The baseline is `librosa.pyin(y, sr=22050, fmin=C2, fmax=C7)` over the whole clip, in one process.
Prints a one-line summary on stderr and one JSON object on stdout.

    python bench/bench_measure.py [--estimator yin] [--device cpu|cuda] [--workers N] [--max-clips N] [--no-baseline]
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

from pipeline.measure.audio import AudioRejected, load_audio_bytes, resample, to_mono  # noqa: E402
from pipeline.measure.measurement import measure_audio_bytes  # noqa: E402
from pipeline.measure.pitch import cents_between  # noqa: E402
from pipeline.measure.synth import add_noise, harmonic_tone, noise, tone, vibrato_tone  # noqa: E402
from pipeline.params import stage_params  # noqa: E402

DEMO = REPO / "demo_corpus"


def _flac(y: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="FLAC")
    return buf.getvalue()


def synth_clips(sr: int = 48000) -> list[tuple[str, bytes, float, float]]:
    """(name, FLAC bytes, duration_s, true f0 Hz or NaN) for 14 clips of 3-10 s, ~90 s in all, lead-in silence on some."""
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
        clips.append((f"{kind}_{f0:g}_{i}", _flac(np.concatenate([lead, y]), sr), dur, f0))
    return clips


def demo_clips(max_clips: int) -> list[tuple[str, bytes, float, float]]:
    """The demo corpus's good clips (ground_truth.csv) with their true f0 (NaN = unpitched)."""
    import pandas as pd

    truth = pd.read_csv(DEMO / "ground_truth.csv", keep_default_na=False, na_values=[""])
    truth = truth[truth["bad"].fillna("").astype(str) == ""].head(max_clips)
    root = DEMO  # ground_truth.csv shard paths start at the corpus root
    out = []
    for row in truth.itertuples(index=False):
        with tarfile.open(root / row.shard) as tf:
            data = tf.extractfile(row.member).read()
        f0 = float(row.f0_hz) if str(row.pitched).lower() in ("true", "1") else math.nan
        out.append((str(row.clip_id), data, sf.info(io.BytesIO(data)).duration, f0))
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


def errors(results: list[tuple[float, float]]) -> dict:
    """Error figures from (true f0 or NaN, measured f0 or NaN) pairs."""
    pitched = [(t, m) for t, m in results if not math.isnan(t)]
    unpitched = [m for t, m in results if math.isnan(t)]
    err = np.array([abs(cents_between(m, t)) if not math.isnan(m) else math.inf for t, m in pitched])
    return {
        "pitched_clips": len(pitched),
        "median_error_cents": round(float(np.median(err)), 2) if len(err) else None,
        "within_50_cents": round(float(np.mean(err <= 50)), 3) if len(err) else None,
        "noise_clips": len(unpitched),
        "noise_unpitched": round(float(np.mean([math.isnan(m) for m in unpitched])), 3) if unpitched else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--estimator", default=None, help="yin | pyin | crepe-tiny | crepe-full (default: params.yaml)")
    ap.add_argument("--device", default=None, help="cpu | cuda (CREPE)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-clips", type=int, default=30)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--synthetic", action="store_true", help="use the synthesised set even when demo_corpus/ exists")
    args = ap.parse_args()
    params = stage_params("measure", {"estimator": args.estimator, "device": args.device})

    use_demo = (DEMO / "ground_truth.csv").exists() and not args.synthetic
    clips = demo_clips(args.max_clips) if use_demo else synth_clips()
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
        "source": "demo_corpus" if use_demo else "synthetic",
        "audio_s": round(total_s, 1),
        "analysed_s": round(analysed_s, 1),
        "estimator": params["estimator"],
        "device": params.get("device", "cpu"),
        "default_wall_s_1proc": round(wall_1, 2),
        "default_rtf_1proc": round(total_s / wall_1, 1),
        "default_wall_s_pool": round(wall_pool, 2),
        "default_rtf_pool": round(total_s / wall_pool, 1),
        "workers": args.workers,
        "default_errors": errors([(c[3], m["f0_hz"] if m else math.nan) for c, m in zip(clips, got)]),
    }
    if not args.no_baseline:
        naive_pyin(_flac(tone(440.0, 0.5, 22050), 22050))  # warm-up (numba)
        t0 = time.perf_counter()
        base = [naive_pyin(c[1]) for c in clips]
        wall_b = time.perf_counter() - t0
        out.update({
            "baseline_wall_s": round(wall_b, 2),
            "baseline_rtf": round(total_s / wall_b, 2),
            "speedup_1proc": round(wall_b / wall_1, 1),
            "speedup_pool": round(wall_b / wall_pool, 1),
            "baseline_errors": errors(list(zip([c[3] for c in clips], base))),
        })
    e = out["default_errors"]
    print(
        f"measure[{out['estimator']}]: {out['audio_s']} s audio ({out['analysed_s']} s analysed) at "
        f"{out['default_rtf_1proc']}x realtime (1 proc), {out['default_rtf_pool']}x ({args.workers} procs)"
        + (f"; naive pyin {out['baseline_rtf']}x -> speedup {out['speedup_1proc']}x" if "baseline_rtf" in out else "")
        + f"; median err {e['median_error_cents']} c, within 50 c {e['within_50_cents']}, noise unpitched {e['noise_unpitched']}",
        file=sys.stderr,
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
