"""Sound synthesis for the demo corpus: instrument-like tones, object sounds, animal-like calls and environments.

Each source has a `SourceSpec` (category, realistic f0 range, typical loudness and duration, synthesis recipe).
`render_source(spec, rng, sr)` draws one clip's f0 and duration and returns the audio with its ground truth.
Everything is deterministic given the `numpy.random.Generator` passed in.

Audio at every boundary: float32[samples] (mono) at `sr` Hz, full scale = 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

from benchmark.errors import UnknownNameError

__all__ = [
    "SourceSpec",
    "RenderedClip",
    "SOURCES",
    "source_spec",
    "render_source",
    "draw_f0_hz",
    "draw_duration_s",
    "set_level",
    "measure_level_dbfs",
    "measure_centroid_hz",
    "note_name",
    "GLIDE_SPREAD_CENTS",
    "PITCH_KINDS",
]

GLIDE_SPREAD_CENTS = 150.0  # an f0 contour whose middle half spans more than this (cents) is a glide
PITCH_KINDS = ("steady", "vibrato", "glide", "none")
_MAX_HARMONICS = 24
_TABLE_SIZE = 4096  # samples per period in the harmonic wavetable
_FLOOR_DBFS = -72.0  # room-tone floor added to every clip (real recordings are never digital zero)


@dataclass(frozen=True)
class SourceSpec:
    """One kind of sound. f0_range_hz is the realistic range of the fundamental (None when unpitched)."""

    name: str
    category: str  # music | object | animal | environment
    pitched: bool
    f0_range_hz: tuple[float, float] | None
    level_dbfs: float  # typical RMS level over the whole clip, dBFS
    duration_s: float  # typical clip length, s
    recipe: str  # key into the synthesis recipes
    opts: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class RenderedClip:
    """One synthesised clip before levelling.

    pitch_kind says what pitch the clip has: steady | vibrato (one f0, with or without a periodic swing) | glide
    (the f0 moves: its contour's IQR over the sounding part exceeds GLIDE_SPREAD_CENTS, so no single f0 is defined)
    | none (unpitched source). f0_hz is the single f0 (NaN for glide and none); f0_median_hz the median of the f0
    contour where the sound is on (NaN for none); f0_spread_cents that contour's inter-quartile range in cents.
    """

    audio: np.ndarray  # float32[samples] at sr Hz
    sr: int
    f0_hz: float
    duration_s: float
    vibrato: bool = False
    weak_fundamental: bool = False
    note: str = ""
    pitch_kind: str = "none"
    f0_median_hz: float = math.nan
    f0_spread_cents: float = math.nan


def _instrument(name, lo, hi, level, dur, env, bright, *, odd=1.0, vib=0.2, noise=0.01, inharm=0.0, weak=0.0):
    return SourceSpec(name, "music", True, (lo, hi), level, dur, "instrument",
                      dict(env=env, bright=bright, odd=odd, vib=vib, noise=noise, inharm=inharm, weak=weak))


# Ranges are the instruments' playable fundamentals (trimmed at the extremes where a synthetic tone sounds wrong).
SOURCES: tuple[SourceSpec, ...] = (
    _instrument("violin", 196, 1760, -20, 2.6, "bow", 0.9, vib=0.6, noise=0.02),
    _instrument("cello", 65, 660, -20, 2.8, "bow", 0.9, vib=0.6, noise=0.015),
    _instrument("double bass", 41, 250, -21, 2.6, "bow", 1.0, vib=0.3, noise=0.015, weak=0.35),
    _instrument("flute", 262, 2093, -22, 2.4, "wind", 2.2, vib=0.5, noise=0.04),
    _instrument("piccolo", 587, 3520, -21, 2.0, "wind", 2.6, vib=0.3, noise=0.03),
    _instrument("clarinet", 147, 1568, -21, 2.4, "wind", 1.2, odd=0.12, vib=0.1),
    _instrument("oboe", 233, 1397, -21, 2.3, "wind", 0.8, vib=0.4, noise=0.015, weak=0.3),
    _instrument("bassoon", 58, 587, -21, 2.4, "wind", 0.9, vib=0.2, weak=0.4),
    _instrument("saxophone", 104, 880, -19, 2.5, "wind", 0.8, vib=0.5, noise=0.02),
    _instrument("trumpet", 165, 988, -17, 2.3, "brass", 0.7, vib=0.2),
    _instrument("trombone", 82, 523, -18, 2.5, "brass", 0.8, vib=0.2),
    _instrument("tuba", 44, 350, -19, 2.6, "brass", 1.1, vib=0.1),
    _instrument("french horn", 87, 698, -20, 2.6, "brass", 1.2, vib=0.15),
    _instrument("guitar", 82, 880, -22, 2.4, "pluck", 1.1, vib=0.05, inharm=0.00005),
    _instrument("piano", 55, 2093, -21, 3.0, "pluck", 1.2, vib=0.0, inharm=0.0003),
    _instrument("harp", 65, 1568, -23, 2.6, "pluck", 1.5, vib=0.0, inharm=0.00005),
    # pitched objects
    SourceSpec("whistle", "object", True, (900, 3000), -18, 2.0, "whistle"),
    SourceSpec("bell", "object", True, (220, 1400), -20, 3.2, "bell"),
    SourceSpec("kettle", "object", True, (1200, 3000), -22, 4.0, "kettle"),
    SourceSpec("alarm", "object", True, (1800, 4000), -16, 3.2, "beeper", dict(beep_s=(0.08, 0.25), duty=0.5)),
    SourceSpec("microwave", "object", True, (900, 2500), -24, 2.0, "beeper", dict(beep_s=(0.2, 0.45), duty=0.55, n_max=5)),
    SourceSpec("engine", "object", True, (30, 120), -20, 4.2, "engine"),
    SourceSpec("siren", "object", True, (550, 1500), -13, 4.6, "siren"),
    SourceSpec("foghorn", "object", True, (70, 200), -15, 4.4, "foghorn"),
    SourceSpec("tuning fork", "object", True, (256, 880), -26, 3.6, "tuning_fork"),
    # object events: a door slam's thump and a knock ring at one damped resonance (f0 = that resonance);
    # claps and footsteps are noise bursts
    SourceSpec("door", "object", True, (55, 110), -22, 1.8, "door_slam"),
    SourceSpec("clapping", "object", False, None, -26, 1.7, "clap"),
    SourceSpec("knock", "object", True, (150, 380), -28, 1.6, "knock"),
    SourceSpec("footsteps", "object", False, None, -27, 3.2, "footsteps"),
    # animals
    SourceSpec("dog", "animal", False, None, -21, 2.0, "bark"),
    SourceSpec("cat", "animal", True, (420, 800), -23, 1.9, "meow"),
    SourceSpec("bird", "animal", True, (2200, 5500), -24, 2.6, "chirp"),
    SourceSpec("cow", "animal", True, (90, 180), -19, 3.2, "moo"),
    SourceSpec("rooster", "animal", True, (450, 900), -17, 3.6, "crow_call"),
    SourceSpec("owl", "animal", True, (280, 500), -25, 2.8, "hoot"),
    SourceSpec("frog", "animal", True, (30, 70), -24, 2.6, "croak"),  # f0 = the croak's pulse rate
    SourceSpec("duck", "animal", True, (220, 420), -21, 2.1, "quack"),
    SourceSpec("sheep", "animal", True, (200, 420), -21, 2.1, "bleat"),
    SourceSpec("crow", "animal", False, None, -20, 2.3, "caw"),
    SourceSpec("horse", "animal", True, (380, 900), -18, 3.0, "neigh"),
    SourceSpec("lion", "animal", False, None, -17, 3.6, "roar"),
    SourceSpec("cricket", "animal", True, (3500, 5200), -27, 3.0, "cricket"),
    # environments (unpitched, coloured noise with different spectral centroids)
    SourceSpec("rain", "environment", False, None, -30, 4.6, "rain"),
    SourceSpec("wind", "environment", False, None, -26, 4.6, "wind"),
    SourceSpec("crowd", "environment", False, None, -27, 4.2, "crowd"),
    SourceSpec("stream", "environment", False, None, -29, 4.5, "stream"),
    SourceSpec("fire", "environment", False, None, -30, 4.2, "fire"),
    SourceSpec("traffic", "environment", False, None, -23, 4.6, "traffic"),
    # ---- more sources, from the recipes above with their own ranges, levels and lengths: more distinct source pairs
    # (the comparison tasks hold one item per source pair and split) and more sound words for the animal task
    _instrument("viola", 131, 1047, -21, 2.6, "bow", 0.95, vib=0.6, noise=0.02),
    _instrument("bass guitar", 41, 196, -19, 2.2, "pluck", 1.3, vib=0.0, inharm=0.00002),
    _instrument("ukulele", 262, 880, -24, 1.8, "pluck", 1.0, vib=0.0, inharm=0.00005),
    _instrument("banjo", 147, 1047, -20, 1.7, "pluck", 0.6, vib=0.0, inharm=0.0001),
    _instrument("mandolin", 196, 1397, -22, 1.7, "pluck", 0.7, vib=0.0, inharm=0.00005),
    _instrument("sitar", 110, 660, -22, 2.4, "pluck", 0.5, vib=0.0, inharm=0.0004),
    _instrument("harpsichord", 87, 1397, -23, 2.0, "pluck", 0.5, vib=0.0, inharm=0.00002),
    _instrument("organ", 65, 523, -18, 3.6, "wind", 1.0, vib=0.0, noise=0.0),
    _instrument("accordion", 175, 880, -20, 2.8, "wind", 0.6, odd=0.7, vib=0.3, noise=0.01),
    _instrument("harmonica", 262, 1397, -21, 2.3, "wind", 0.7, odd=0.5, vib=0.5, noise=0.02),
    _instrument("bagpipe", 392, 932, -15, 3.8, "wind", 0.5, odd=0.8, vib=0.0, noise=0.02),
    _instrument("didgeridoo", 55, 98, -20, 4.2, "wind", 0.8, vib=0.0, noise=0.03),
    _instrument("synthesizer", 110, 880, -19, 2.8, "brass", 0.4, vib=0.2),
    _instrument("kalimba", 262, 1568, -25, 1.8, "pluck", 2.4, vib=0.0, inharm=0.0006),
    _instrument("marimba", 131, 1047, -22, 1.6, "pluck", 2.8, vib=0.0, inharm=0.0008),
    _instrument("xylophone", 523, 2093, -20, 1.5, "pluck", 2.2, vib=0.0, inharm=0.0008),
    _instrument("glockenspiel", 1047, 4186, -22, 2.2, "pluck", 3.0, vib=0.0, inharm=0.001),
    _instrument("music box", 880, 2637, -30, 2.0, "pluck", 2.6, vib=0.0, inharm=0.0005),
    _instrument("timpani", 73, 196, -17, 2.8, "pluck", 1.8, vib=0.0, inharm=0.0002),
    SourceSpec("doorbell", "object", True, (600, 1300), -19, 2.4, "bell"),
    SourceSpec("phone", "object", True, (1000, 2200), -20, 3.0, "beeper", dict(beep_s=(0.3, 0.6), duty=0.6, n_max=4)),
    SourceSpec("car horn", "object", True, (300, 520), -12, 2.2, "foghorn"),
    SourceSpec("glass", "object", True, (1800, 3600), -25, 2.4, "bell"),
    SourceSpec("coin", "object", True, (3200, 5600), -27, 1.6, "bell"),
    SourceSpec("bottle", "object", True, (500, 1300), -24, 2.2, "whistle"),
    SourceSpec("drill", "object", True, (500, 1100), -16, 3.0, "engine"),
    SourceSpec("chainsaw", "object", True, (200, 420), -13, 3.8, "engine"),
    SourceSpec("vacuum cleaner", "object", True, (320, 700), -19, 4.2, "engine"),
    SourceSpec("blender", "object", True, (260, 560), -16, 3.4, "engine"),
    SourceSpec("hair dryer", "object", True, (400, 850), -18, 4.0, "engine"),
    SourceSpec("fan", "object", True, (80, 170), -30, 4.4, "engine"),
    SourceSpec("truck", "object", True, (40, 95), -15, 4.4, "engine"),
    SourceSpec("motorcycle", "object", True, (100, 210), -14, 3.6, "engine"),
    SourceSpec("hammer", "object", True, (700, 1500), -18, 1.6, "knock"),
    SourceSpec("thunder", "environment", False, None, -17, 4.8, "wind"),
    SourceSpec("waves", "environment", False, None, -24, 4.6, "stream"),
    SourceSpec("waterfall", "environment", False, None, -19, 4.8, "rain"),
    SourceSpec("goat", "animal", True, (450, 800), -21, 2.0, "bleat"),
    SourceSpec("pig", "animal", True, (180, 330), -20, 1.9, "quack"),
    SourceSpec("donkey", "animal", True, (300, 600), -14, 3.4, "neigh"),
    SourceSpec("goose", "animal", True, (380, 600), -18, 2.0, "quack"),
    SourceSpec("pigeon", "animal", True, (300, 420), -28, 2.8, "hoot"),
    SourceSpec("seagull", "animal", True, (900, 1800), -19, 3.0, "crow_call"),
    SourceSpec("parrot", "animal", True, (1500, 2800), -17, 2.2, "chirp"),
    SourceSpec("wolf", "animal", True, (350, 650), -16, 3.8, "meow"),
    SourceSpec("tiger", "animal", False, None, -15, 3.2, "roar"),
    SourceSpec("monkey", "animal", True, (700, 1200), -17, 2.4, "meow"),
    SourceSpec("mosquito", "animal", True, (500, 750), -33, 2.8, "cricket"),
    SourceSpec("whale", "animal", True, (120, 260), -20, 4.6, "moo"),
)

_BY_NAME = {s.name: s for s in SOURCES}


def source_spec(name: str) -> SourceSpec:
    """The spec of a source by name; an unknown name raises UnknownNameError with the closest names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(_BY_NAME), n=3)
        raise UnknownNameError(f"unknown demo source {name!r}; did you mean {', '.join(close) or 'one of ' + ', '.join(_BY_NAME)}?") from None


_NOTES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(f0_hz: float) -> str:
    """Nearest equal-tempered note name, e.g. 440.0 -> "A4"."""
    midi = int(round(69 + 12 * math.log2(f0_hz / 440.0)))
    return f"{_NOTES[midi % 12]}{midi // 12 - 1}"


# ---------------------------------------------------------------- building blocks


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _harmonics(f_track: np.ndarray, sr: int, amps: np.ndarray, rng: np.random.Generator, inharm: float = 0.0,
               decay_per_k: np.ndarray | None = None, t: np.ndarray | None = None) -> np.ndarray:
    """Sum of partials k*f(t) (stretched by inharmonicity) with amplitudes amps[k-1]; partials above 0.45*sr are dropped.
    decay_per_k: optional extra exponential decay rate (1/s) per partial, for plucked strings.
    Strictly harmonic, undamped partials are read from a one-period wavetable (fast, cost independent of the count)."""
    fmax = float(np.max(f_track))
    ks, ratios, coefs, phases = [], [], [], []
    for k, a in enumerate(amps, start=1):
        ratio = k * math.sqrt(1.0 + inharm * k * k)
        if ratio * fmax >= 0.45 * sr:
            break
        ph = rng.uniform(0, 2 * np.pi)
        if a != 0.0:
            ks.append(k)
            ratios.append(ratio)
            coefs.append(float(a))
            phases.append(ph)
    cycles = np.cumsum(f_track) / sr
    if inharm == 0.0 and decay_per_k is None:
        size = _TABLE_SIZE
        grid = np.arange(size + 1) / size * 2 * np.pi
        table = np.zeros(size + 1)
        for k, a, ph in zip(ks, coefs, phases):
            table += a * np.sin(k * grid + ph)
        pos = (cycles % 1.0) * size
        i0 = pos.astype(np.int64)
        w = pos - i0
        return table[i0] * (1.0 - w) + table[i0 + 1] * w
    # inharmonic or damped partials: one sine each, in float32 on a wrapped phase (exact enough, twice as fast)
    out = np.zeros(len(f_track), dtype=np.float32)
    t32 = t.astype(np.float32) if t is not None else None
    for k, ratio, a, ph in zip(ks, ratios, coefs, phases):
        stop = len(f_track)
        if decay_per_k is not None and t is not None:  # stop where the partial has decayed by 80 dB
            stop = int(np.searchsorted(t, 9.3 / max(decay_per_k[k - 1], 1e-9)))
        frac = ((ratio * cycles[:stop]) % 1.0).astype(np.float32)
        part = np.sin(np.float32(2 * np.pi) * frac + np.float32(ph))
        if decay_per_k is not None and t32 is not None:
            part *= np.exp(np.float32(-decay_per_k[k - 1]) * t32[:stop])
        out[:stop] += np.float32(a) * part
    return out.astype(np.float64)


def _add_at(x: np.ndarray, start: int, seg: np.ndarray) -> None:
    """x[start:start+len(seg)] += seg, clipped to x's bounds."""
    if start >= len(x):
        return
    m = min(len(seg), len(x) - start)
    x[start:start + m] += seg[:m]


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n)


def _coloured(rng: np.random.Generator, n: int, sr: int, slope_db_oct: float, lo_hz: float = 20.0, hi_hz: float | None = None) -> np.ndarray:
    """Noise with a spectral slope (dB per octave; -3 pink, -6 brown) band-limited to [lo_hz, hi_hz], unit RMS."""
    m = sp_fft.next_fast_len(n, real=True)  # a prime length would make the FFT slow
    spec = np.fft.rfft(rng.standard_normal(m))
    f = np.fft.rfftfreq(m, 1.0 / sr)
    shape = np.power(np.maximum(f, lo_hz) / 1000.0, slope_db_oct / (20 * math.log10(2)))
    shape[f < lo_hz] *= (f[f < lo_hz] / lo_hz) ** 2
    if hi_hz is not None:
        shape /= 1.0 + (f / hi_hz) ** 4
    x = np.fft.irfft(spec * shape, m)[:n]
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def _band(x: np.ndarray, sr: int, lo_hz: float | None, hi_hz: float | None, order: int = 2) -> np.ndarray:
    if lo_hz and hi_hz:
        sos = signal.butter(order, [lo_hz, min(hi_hz, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
    elif lo_hz:
        sos = signal.butter(order, lo_hz, btype="highpass", fs=sr, output="sos")
    else:
        sos = signal.butter(order, min(hi_hz, 0.45 * sr), btype="lowpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _ar_env(n: int, sr: int, attack_s: float, release_s: float, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Linear attack, flat, raised-cosine release, zero outside [start, stop)."""
    stop = n if stop is None else min(stop, n)
    env = np.zeros(n)
    m = max(stop - start, 1)
    seg = np.ones(m)
    a = min(max(int(attack_s * sr), 1), m)
    r = min(max(int(release_s * sr), 1), m - a) if m > a else 0
    seg[:a] = np.linspace(0, 1, a, endpoint=False)
    if r > 0:
        seg[m - r:] = 0.5 * (1 + np.cos(np.linspace(0, np.pi, r)))
    env[start:start + m] = seg[: n - start]
    return env


def _burst_env(n: int, sr: int, start: int, attack_s: float, tau_s: float) -> np.ndarray:
    """A fast attack followed by an exponential decay with time constant tau_s, starting at sample `start`."""
    env = np.zeros(n)
    if start >= n:
        return env
    m = n - start
    tt = np.arange(m) / sr
    a = max(attack_s, 1e-4)
    env[start:] = np.minimum(tt / a, 1.0) * np.exp(-np.maximum(tt - a, 0) / tau_s)
    return env


def _vibrato(n: int, sr: int, rng: np.random.Generator, depth_cents: float, rate_hz: float, onset_s: float = 0.25) -> np.ndarray:
    """Multiplicative f0 factor with a sinusoidal vibrato that fades in after onset_s."""
    t = _t(n, sr)
    fade = np.clip((t - onset_s) / 0.3, 0, 1)
    cents = depth_cents * fade * np.sin(2 * np.pi * rate_hz * t + rng.uniform(0, 2 * np.pi))
    return np.power(2.0, cents / 1200.0)


def _contour(n: int, points: list[tuple[float, float]]) -> np.ndarray:
    """Piecewise-linear contour through (position 0..1, value) points, smoothed in log space."""
    xs = np.array([p[0] for p in points]) * (n - 1)
    ys = np.log(np.array([p[1] for p in points]))
    return np.exp(np.interp(np.arange(n), xs, ys))


def _median_voiced(f_track: np.ndarray, env: np.ndarray) -> float:
    """Median f0 over samples where the envelope is above a quarter of its peak."""
    mask = env > 0.25 * float(np.max(env))
    return float(np.median(f_track[mask])) if mask.any() else float(np.median(f_track))


def _contour_spread_cents(f_track: np.ndarray, env: np.ndarray) -> float:
    """Inter-quartile range, in cents, of the f0 contour over samples where the envelope is above a quarter of its
    peak (the samples _median_voiced counts)."""
    mask = env > 0.25 * float(np.max(env))
    f = f_track[mask] if mask.any() else f_track
    q75, q25 = np.percentile(1200.0 * np.log2(f / np.median(f)), [75, 25])
    return float(q75 - q25)


# ---------------------------------------------------------------- recipes
# Each recipe: (spec, rng, n, sr, f0_hz) -> (audio float64[n], f0_hz actually heard (NaN when unpitched), info dict)

Recipe = Callable[[SourceSpec, np.random.Generator, int, int, float], tuple[np.ndarray, float, dict]]


def _instrument_tone(spec, rng, n, sr, f0):
    o = spec.opts
    t = _t(n, sr)
    onset = int(rng.uniform(0.02, 0.12) * sr)
    vibrato = o["vib"] > 0 and rng.uniform() < o["vib"]
    f_track = np.full(n, f0)
    if vibrato:
        f_track = f_track * _vibrato(n, sr, rng, rng.uniform(15, 40), rng.uniform(4.5, 6.5))
    k = np.arange(1, _MAX_HARMONICS + 1, dtype=np.float64)
    amps = 1.0 / np.power(k, o["bright"])
    amps[1::2] *= o["odd"]  # even harmonics (k = 2, 4, ...) scaled: clarinet-like when small
    weak = o["weak"] > 0 and rng.uniform() < o["weak"]
    if weak:
        amps[0] *= 0.08  # a weak fundamental: the pitch is heard at f0, the strongest partial is 2*f0 or 3*f0
    amps *= np.exp(rng.normal(0, 0.15, amps.shape))  # a little timbre jitter per clip
    env_kind = o["env"]
    tail = max(int(rng.uniform(0.05, 0.25) * sr), 1)
    if env_kind == "pluck":
        tau = rng.uniform(0.5, 1.4) * (220.0 / f0) ** 0.3
        env = _burst_env(n, sr, onset, 0.004, tau) * _ar_env(n, sr, 0.0, 0.05, 0, n - tail // 4)
        decay = 0.6 * k / tau
        x = _harmonics(f_track, sr, amps, rng, inharm=o["inharm"], decay_per_k=decay, t=np.maximum(t - onset / sr, 0))
    else:
        attack = {"bow": rng.uniform(0.08, 0.2), "wind": rng.uniform(0.04, 0.1), "brass": rng.uniform(0.03, 0.07)}[env_kind]
        env = _ar_env(n, sr, attack, rng.uniform(0.08, 0.25), onset, n - tail)
        if env_kind == "brass":  # brighter as it swells: add upper partials with a slower envelope
            x = _harmonics(f_track, sr, amps, rng) + 0.5 * _ar_env(n, sr, attack * 3, 0.2, onset, n - tail) * _harmonics(
                f_track, sr, amps * (k / 4.0) ** 0.7, rng)
        else:
            x = _harmonics(f_track, sr, amps, rng, inharm=o["inharm"])
    x = x / (np.sqrt(np.mean(x * x)) + 1e-12)
    if o["noise"] > 0:
        x = x + o["noise"] * 4 * _band(_noise(rng, n), sr, 1000, 8000)
    info = dict(vibrato=vibrato, weak_fundamental=weak, contour=(f_track, env))
    return x * env, f0, info


def _whistle(spec, rng, n, sr, f0):
    vib = rng.uniform() < 0.5
    f = np.full(n, f0)
    if vib:
        f = f * _vibrato(n, sr, rng, rng.uniform(20, 60), rng.uniform(5, 9), onset_s=0.1)
    x = np.sin(2 * np.pi * np.cumsum(f) / sr) + 0.05 * np.sin(4 * np.pi * np.cumsum(f) / sr)
    env = _ar_env(n, sr, 0.03, 0.1, int(0.05 * sr), n - int(rng.uniform(0.1, 0.4) * sr))
    x = x + 0.03 * _band(_noise(rng, n), sr, 2000, 9000)
    return x * env, f0, dict(vibrato=vib, contour=(f, env))


def _bell(spec, rng, n, sr, f0):
    t = _t(n, sr)
    ratios = np.array([1.0, 2.0, 2.76, 4.07, 5.40])
    amps = np.array([1.0, 0.3, 0.45, 0.2, 0.12]) * np.exp(rng.normal(0, 0.1, 5))
    taus = rng.uniform(0.9, 1.8) / np.sqrt(ratios)
    start = int(rng.uniform(0.02, 0.1) * sr)
    x = np.zeros(n)
    for r, a, tau in zip(ratios, amps, taus):
        if r * f0 < 0.45 * sr:
            x += a * np.sin(2 * np.pi * r * f0 * t + rng.uniform(0, 2 * np.pi)) * _burst_env(n, sr, start, 0.002, tau)
    x += 0.2 * _band(_noise(rng, n), sr, 2000, 10000) * _burst_env(n, sr, start, 0.0005, 0.01)
    return x, f0, {}


def _kettle(spec, rng, n, sr, f0):
    # the whistle sets in and grows; the pitch glides up ~3 % while the water boils
    glide = _contour(n, [(0, 0.985), (1, 1.015)])
    f = f0 * glide
    x = np.sin(2 * np.pi * np.cumsum(f) / sr) + 0.1 * np.sin(4 * np.pi * np.cumsum(f) / sr)
    env = np.clip(_t(n, sr) / (0.35 * n / sr), 0, 1) ** 1.5 * _ar_env(n, sr, 0.0, 0.15, 0, n)
    hiss = _band(_noise(rng, n), sr, 1500, 7000)
    boil = _coloured(rng, n, sr, -3, 100, 2000) * 0.25
    return x * env + 0.08 * hiss * env + boil * 0.3, _median_voiced(f, env), dict(contour=(f, env))


def _beeper(spec, rng, n, sr, f0):
    beep_s = rng.uniform(*spec.opts["beep_s"])
    period = beep_s / spec.opts["duty"]
    n_beeps = int((n / sr - 0.1) / period)
    n_beeps = max(1, min(n_beeps, spec.opts.get("n_max", 99)))
    k = np.arange(1, 8)
    amps = np.where(k % 2 == 1, 1.0 / k, 0.0)  # square-ish: odd harmonics
    tone = _harmonics(np.full(n, f0), sr, amps, rng)
    env = np.zeros(n)
    start0 = int(0.05 * sr)
    for i in range(n_beeps):
        s = start0 + int(i * period * sr)
        env += _ar_env(n, sr, 0.003, 0.005, s, s + int(beep_s * sr))
    return tone * np.minimum(env, 1), f0, {}


def _engine(spec, rng, n, sr, f0):
    f = f0 * (1 + 0.002 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * _t(n, sr)))  # a drone steady within ~3 cents
    k = np.arange(1, _MAX_HARMONICS + 1)
    amps = 1.0 / k ** 0.8
    x = _harmonics(f, sr, amps, rng)
    x = x / (np.sqrt(np.mean(x * x)) + 1e-12) + 0.5 * _coloured(rng, n, sr, -6, 30, 3000)
    env = _ar_env(n, sr, 0.3, 0.3)
    return x * env, f0, dict(contour=(f, env))


def _siren(spec, rng, n, sr, f0):
    # wail: slow sweep of +-25 % around f0 (in log), so the median heard pitch is f0
    rate = rng.uniform(0.3, 0.9)
    f = f0 * np.power(1.25, np.sin(2 * np.pi * rate * _t(n, sr) + rng.uniform(0, 2 * np.pi)))
    x = _harmonics(f, sr, 1.0 / np.arange(1, 9) ** 1.2, rng)
    env = _ar_env(n, sr, 0.15, 0.2)
    return x * env, float(np.median(f)), dict(vibrato=True, contour=(f, env))


def _foghorn(spec, rng, n, sr, f0):
    k = np.arange(1, _MAX_HARMONICS + 1)
    x = _harmonics(np.full(n, f0), sr, 1.0 / k ** 0.9, rng)
    tail = int(rng.uniform(0.3, 0.8) * sr)
    env = _ar_env(n, sr, 0.35, 0.4, int(0.1 * sr), n - tail)
    x = x / (np.sqrt(np.mean(x * x)) + 1e-12) + 0.05 * _coloured(rng, n, sr, -3, 50, 3000)
    return x * env, f0, {}


def _tuning_fork(spec, rng, n, sr, f0):
    start = int(rng.uniform(0.05, 0.2) * sr)
    t = np.maximum(_t(n, sr) - start / sr, 0)
    x = np.sin(2 * np.pi * f0 * t) * _burst_env(n, sr, start, 0.005, rng.uniform(1.5, 3.0))
    x += 0.3 * np.sin(2 * np.pi * 6.2 * f0 * t) * _burst_env(n, sr, start, 0.001, 0.05) if 6.2 * f0 < 0.45 * sr else 0
    return x, f0, {}


def _bark(spec, rng, n, sr, f0):
    x = np.zeros(n)
    n_barks = int(rng.integers(2, 6))
    pos = 0.05
    for _ in range(n_barks):
        d = rng.uniform(0.12, 0.25)
        s = int(pos * sr)
        if s + int(d * sr) >= n:
            break
        m = int(d * sr)
        base = rng.uniform(320, 650)
        f = _contour(m, [(0, base * 1.25), (0.3, base), (1, base * 0.75)])
        tone = _harmonics(f, sr, 1.0 / np.arange(1, 16) ** 0.7, rng)
        ns = _band(_noise(rng, m), sr, 400, 3500)
        seg = (0.5 * tone / (np.abs(tone).max() + 1e-9) + 0.7 * ns / (np.abs(ns).max() + 1e-9))
        seg *= _burst_env(m, sr, 0, 0.01, d / 3)
        x[s:s + m] += seg
        pos += d + rng.uniform(0.15, 0.45)
    return x, math.nan, {}


def _meow(spec, rng, n, sr, f0):
    x = np.zeros(n)
    env_all = np.zeros(n)
    f_all = np.full(n, f0)
    n_calls = 1 if n / sr < 2.2 else int(rng.integers(1, 3))
    seg_n = int((n - int(0.2 * sr)) / n_calls)
    for i in range(n_calls):
        d = min(rng.uniform(0.6, 1.1), seg_n / sr - 0.1)
        m = int(d * sr)
        s = int(0.08 * sr) + i * seg_n
        f = f0 * _contour(m, [(0, 0.8), (0.35, 1.15), (1, 0.85)])
        form = _contour(m, [(0, 900), (0.4, 2200), (1, 1000)])  # "mi-aow": the formant opens and closes
        k = np.arange(1, 13)
        phase = 2 * np.pi * np.cumsum(f) / sr
        seg = np.zeros(m)
        for kk in k:
            seg += np.exp(-((kk * f - form) / 900.0) ** 2) * np.sin(kk * phase) / kk ** 0.3
        e = _ar_env(m, sr, 0.05, 0.2)
        x[s:s + m] += seg * e
        env_all[s:s + m] += e
        f_all[s:s + m] = f
    return x + 0.01 * _band(_noise(rng, n), sr, 2000, 8000), _median_voiced(f_all, env_all), dict(contour=(f_all, env_all))


def _chirp(spec, rng, n, sr, f0):
    x = np.zeros(n)
    env_all = np.zeros(n)
    f_all = np.full(n, f0)
    pos = rng.uniform(0.03, 0.2)
    while True:
        d = rng.uniform(0.04, 0.12)
        s, m = int(pos * sr), int(d * sr)
        if s + m >= n - int(0.05 * sr):
            break
        up = rng.uniform() < 0.5
        f = f0 * _contour(m, [(0, 0.8 if up else 1.25), (1, 1.25 if up else 0.8)])
        e = np.sin(np.linspace(0, np.pi, m)) ** 2
        ph = 2 * np.pi * np.cumsum(f) / sr
        x[s:s + m] += (np.sin(ph) + 0.15 * np.sin(2 * ph)) * e
        env_all[s:s + m] += e
        f_all[s:s + m] = f
        pos += d + (rng.uniform(0.03, 0.08) if rng.uniform() < 0.7 else rng.uniform(0.2, 0.5))
    return x, _median_voiced(f_all, env_all), dict(contour=(f_all, env_all))


def _moo(spec, rng, n, sr, f0):
    s = int(rng.uniform(0.05, 0.2) * sr)
    m = n - s - int(rng.uniform(0.1, 0.4) * sr)
    f = f0 * _contour(m, [(0, 0.9), (0.25, 1.05), (0.8, 1.0), (1, 0.85)])
    k = np.arange(1, _MAX_HARMONICS + 1)
    seg = _harmonics(f, sr, 1.0 / k ** 1.0, rng)
    seg = _band(seg, sr, 80, 1500)
    e = _ar_env(m, sr, 0.2, 0.35)
    x = np.zeros(n)
    x[s:s + m] = seg / (np.abs(seg).max() + 1e-9) * e
    x[s:s + m] += 0.03 * _band(_noise(rng, m), sr, 200, 2000) * e
    f_all = np.full(n, f0)
    f_all[s:s + m] = f
    env_all = np.zeros(n)
    env_all[s:s + m] = e
    return x, _median_voiced(f_all, env_all), dict(contour=(f_all, env_all))


def _crow_call(spec, rng, n, sr, f0):
    # cock-a-doodle-doo: three short notes and a long one, harsh (amplitude roughness)
    durs = np.array([0.25, 0.2, 0.3, 1.0]) * rng.uniform(0.8, 1.2)
    total = durs.sum() + 0.3
    durs *= min(1.0, (n / sr - 0.3) / total)
    steps = [1.0, 1.12, 1.2, 1.05]
    x, env_all, f_all = np.zeros(n), np.zeros(n), np.full(n, f0)
    pos = int(0.1 * sr)
    for d, st in zip(durs, steps):
        m = int(d * sr)
        if pos + m >= n:
            break
        f = f0 * st * _contour(m, [(0, 0.95), (0.3, 1.0), (1, 0.93)])
        seg = _harmonics(f, sr, 1.0 / np.arange(1, 14) ** 0.6, rng)
        rough = 1 + 0.4 * np.sin(2 * np.pi * rng.uniform(40, 70) * _t(m, sr))
        e = _ar_env(m, sr, 0.02, min(0.08, d / 3))
        x[pos:pos + m] += seg / (np.abs(seg).max() + 1e-9) * rough * e
        x[pos:pos + m] += 0.15 * _band(_noise(rng, m), sr, 1000, 5000) * e
        env_all[pos:pos + m] = e
        f_all[pos:pos + m] = f
        pos += m + int(0.03 * sr)
    return x, _median_voiced(f_all, env_all), dict(contour=(f_all, env_all))


def _hoot(spec, rng, n, sr, f0):
    x, env_all, f_all = np.zeros(n), np.zeros(n), np.full(n, f0)
    pos = rng.uniform(0.05, 0.2)
    while True:
        d = rng.uniform(0.3, 0.6)
        s, m = int(pos * sr), int(d * sr)
        if s + m >= n:
            break
        f = f0 * _contour(m, [(0, 1.03), (1, 0.96)])
        ph = 2 * np.pi * np.cumsum(f) / sr
        e = np.sin(np.linspace(0, np.pi, m)) ** 1.5
        x[s:s + m] += (np.sin(ph) + 0.12 * np.sin(2 * ph)) * e
        env_all[s:s + m] = e
        f_all[s:s + m] = f
        pos += d + rng.uniform(0.2, 0.7)
    return x + 0.004 * _coloured(rng, n, sr, -6, 50, 2000), _median_voiced(f_all, env_all), dict(contour=(f_all, env_all))


def _croak(spec, rng, n, sr, f0):
    # a train of damped resonant pulses at f0 pulses per second: periodic, so the pulse rate is its pitch
    x = np.zeros(n)
    pos = rng.uniform(0.05, 0.2)
    res = rng.uniform(600, 1400)
    rate = f0
    while True:
        d = rng.uniform(0.2, 0.4)
        s, m = int(pos * sr), int(d * sr)
        if s + m >= n:
            break
        for j in range(int(d * rate)):  # a croak is a train of damped resonant pulses
            p = s + int(j / rate * sr)
            k = int(0.012 * sr)
            if p + k >= n:
                break
            tt = _t(k, sr)
            x[p:p + k] += np.sin(2 * np.pi * res * tt) * np.exp(-tt / 0.003) * (0.6 + 0.4 * rng.uniform())
        pos += d + rng.uniform(0.15, 0.5)
    return x, f0, {}


def _quack(spec, rng, n, sr, f0):
    x, env_all, f_all = np.zeros(n), np.zeros(n), np.full(n, f0)
    pos = rng.uniform(0.05, 0.15)
    for _ in range(int(rng.integers(2, 6))):
        d = rng.uniform(0.15, 0.26)
        s, m = int(pos * sr), int(d * sr)
        if s + m >= n:
            break
        f = f0 * _contour(m, [(0, 1.05), (0.5, 1.0), (1, 0.9)])
        seg = _harmonics(f, sr, np.ones(20) / np.arange(1, 21) ** 0.3, rng)
        seg = _band(seg, sr, 600, 2500)  # nasal
        e = _ar_env(m, sr, 0.01, 0.05)
        x[s:s + m] += seg / (np.abs(seg).max() + 1e-9) * e + 0.1 * _band(_noise(rng, m), sr, 800, 3000) * e
        env_all[s:s + m] = e
        f_all[s:s + m] = f
        pos += d + rng.uniform(0.1, 0.35)
    return x, _median_voiced(f_all, env_all), dict(contour=(f_all, env_all))


def _bleat(spec, rng, n, sr, f0):
    x, env_all, f_all = np.zeros(n), np.zeros(n), np.full(n, f0)
    n_calls = int(rng.integers(1, 3))
    seg_n = int((n - int(0.15 * sr)) / n_calls)
    for i in range(n_calls):
        d = min(rng.uniform(0.6, 1.1), seg_n / sr - 0.08)
        s, m = int(0.08 * sr) + i * seg_n, int(d * sr)
        f = f0 * _vibrato(m, sr, rng, 60, rng.uniform(6, 9), onset_s=0.05) * _contour(m, [(0, 0.95), (0.3, 1.02), (1, 0.97)])
        seg = _harmonics(f, sr, 1.0 / np.arange(1, 18) ** 0.7, rng)
        trem = 1 - 0.5 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(6, 9) * _t(m, sr)))
        e = _ar_env(m, sr, 0.04, 0.15)
        x[s:s + m] += seg / (np.abs(seg).max() + 1e-9) * trem * e
        env_all[s:s + m] = e
        f_all[s:s + m] = f
    return x + 0.01 * _band(_noise(rng, n), sr, 1000, 6000), _median_voiced(f_all, env_all), dict(vibrato=True, contour=(f_all, env_all))


def _caw(spec, rng, n, sr, f0):
    x = np.zeros(n)
    pos = rng.uniform(0.05, 0.2)
    for _ in range(int(rng.integers(2, 5))):
        d = rng.uniform(0.25, 0.4)
        s, m = int(pos * sr), int(d * sr)
        if s + m >= n:
            break
        base = rng.uniform(450, 700)
        f = _contour(m, [(0, base * 0.95), (0.3, base), (1, base * 0.85)])
        tone = _harmonics(f, sr, 1.0 / np.arange(1, 12) ** 0.4, rng)
        ns = _band(_noise(rng, m), sr, 800, 3500)
        e = _ar_env(m, sr, 0.02, 0.08)
        x[s:s + m] += (0.35 * tone / (np.abs(tone).max() + 1e-9) + ns / (np.abs(ns).max() + 1e-9)) * e
        pos += d + rng.uniform(0.15, 0.4)
    return x, math.nan, {}


def _neigh(spec, rng, n, sr, f0):
    s = int(rng.uniform(0.05, 0.2) * sr)
    m = min(int(rng.uniform(1.2, 2.2) * sr), n - s - int(0.1 * sr))
    f = f0 * _contour(m, [(0, 1.4), (0.3, 1.1), (1, 0.75)]) * _vibrato(m, sr, rng, 150, rng.uniform(9, 14), onset_s=0.05)
    seg = _harmonics(f, sr, 1.0 / np.arange(1, 14) ** 0.7, rng)
    e = _ar_env(m, sr, 0.05, 0.4)
    x = np.zeros(n)
    x[s:s + m] = seg / (np.abs(seg).max() + 1e-9) * e + 0.12 * _band(_noise(rng, m), sr, 500, 4000) * e
    f_all, env_all = np.full(n, f0), np.zeros(n)
    f_all[s:s + m], env_all[s:s + m] = f, e
    return x, _median_voiced(f_all, env_all), dict(vibrato=True, contour=(f_all, env_all))


def _roar(spec, rng, n, sr, f0):
    s = int(rng.uniform(0.05, 0.2) * sr)
    m = n - s - int(rng.uniform(0.2, 0.5) * sr)
    base = rng.uniform(110, 190)
    f = base * _contour(m, [(0, 0.8), (0.3, 1.1), (1, 0.7)])
    tone = _harmonics(f, sr, 1.0 / np.arange(1, 20) ** 0.5, rng)
    ns = _coloured(rng, m, sr, -4, 60, 2500)
    rough = 1 + 0.6 * np.sin(2 * np.pi * rng.uniform(25, 45) * _t(m, sr))
    e = _contour(m, [(0, 0.05), (0.25, 1.0), (0.7, 0.8), (1, 0.02)])
    x = np.zeros(n)
    x[s:s + m] = (0.4 * tone / (np.abs(tone).max() + 1e-9) + 0.5 * ns / (np.abs(ns).max() + 1e-9)) * rough * e
    return x, math.nan, {}


def _cricket(spec, rng, n, sr, f0):
    rate = rng.uniform(25, 45)  # pulses per second, in groups (chirps)
    t = _t(n, sr)
    pulse = (np.sin(np.pi * rate * t) ** 2) ** 4
    group_rate = rng.uniform(1.5, 3.0)
    groups = (np.sin(2 * np.pi * group_rate * t) > -0.2).astype(np.float64)
    groups = signal.lfilter([0.01], [1, -0.99], groups)
    x = np.sin(2 * np.pi * f0 * t) * pulse * groups
    return x * _ar_env(n, sr, 0.05, 0.1), f0, {}


def _rain(spec, rng, n, sr, f0):
    x = _coloured(rng, n, sr, -1.5, 400, 12000) * 0.6
    n_drops = int(rng.uniform(30, 80) * n / sr)
    for p in rng.integers(0, n - int(0.01 * sr), n_drops):
        k = int(0.008 * sr)
        tt = _t(k, sr)
        x[p:p + k] += rng.uniform(0.3, 1.5) * np.sin(2 * np.pi * rng.uniform(2500, 7000) * tt) * np.exp(-tt / 0.002)
    return x * _ar_env(n, sr, 0.2, 0.2), math.nan, {}


def _wind(spec, rng, n, sr, f0):
    x = _coloured(rng, n, sr, -6, 30, rng.uniform(300, 700))
    t = _t(n, sr)
    gust = 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(0.15, 0.4) * t + rng.uniform(0, 6.3)) * np.sin(
        2 * np.pi * rng.uniform(0.05, 0.15) * t + rng.uniform(0, 6.3))
    return x * gust * _ar_env(n, sr, 0.4, 0.4), math.nan, {}


def _crowd(spec, rng, n, sr, f0):
    x = np.zeros(n)
    t = _t(n, sr)
    for _ in range(int(rng.integers(6, 12))):  # voices: noise with syllabic modulation, then one speech-band filter
        syl = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5.5) * t + rng.uniform(0, 6.3)), 0, 1) ** 0.7
        x += _noise(rng, n) * syl * rng.uniform(0.3, 1.0)
    x = _band(x, sr, rng.uniform(250, 450), rng.uniform(2200, 3500))
    return x * _ar_env(n, sr, 0.3, 0.3), math.nan, {}


def _stream(spec, rng, n, sr, f0):
    x = _band(_coloured(rng, n, sr, -2, 200, 8000), sr, 400, 5000)
    for p in rng.integers(0, n - int(0.03 * sr), int(rng.uniform(10, 30) * n / sr)):
        k = int(rng.uniform(0.01, 0.03) * sr)
        fb = rng.uniform(400, 1600)
        f = fb * _contour(k, [(0, 1.0), (1, 1.6)])  # bubbles ring with a rising pitch
        x[p:p + k] += 0.8 * np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-_t(k, sr) / 0.008)
    return x * _ar_env(n, sr, 0.3, 0.3), math.nan, {}


def _fire(spec, rng, n, sr, f0):
    x = _coloured(rng, n, sr, -6, 30, 300) * 0.5
    for p in rng.integers(0, n - int(0.005 * sr), int(rng.uniform(8, 25) * n / sr)):
        k = int(rng.uniform(0.001, 0.004) * sr)
        x[p:p + k] += rng.uniform(1, 4) * _band(_noise(rng, k + 32), sr, 1500, None)[32:] * np.exp(-_t(k, sr) / 0.0008)
    return x * _ar_env(n, sr, 0.3, 0.3), math.nan, {}


def _traffic(spec, rng, n, sr, f0):
    x = _coloured(rng, n, sr, -5, 30, 1200)
    t = _t(n, sr)
    for _ in range(int(rng.integers(1, 3))):  # cars passing by: an engine hum with a swell and a slight Doppler drop
        tc = rng.uniform(0.2, 0.8) * n / sr
        w = rng.uniform(0.5, 1.2)
        swell = 1 / (1 + ((t - tc) / w) ** 2)
        fe = rng.uniform(35, 70) * (1 + 0.04 * np.tanh(-(t - tc) / 0.4))
        hum = _harmonics(fe, sr, 1.0 / np.arange(1, 10), rng)
        tyre = _band(_noise(rng, n), sr, 300, 3000)
        x += (1.2 * hum + 0.8 * tyre) * swell
    return x * _ar_env(n, sr, 0.3, 0.3), math.nan, {}


def _door_slam(spec, rng, n, sr, f0):
    s = int(rng.uniform(0.1, 0.35) * sr)
    tt = np.maximum(_t(n, sr) - s / sr, 0)
    # the thump (the door's lowest panel mode, at f0) rings on after the broadband body noise has died away,
    # as a low mode does: a decaying low tone under a short crash
    thump = np.sin(2 * np.pi * f0 * tt) * _burst_env(n, sr, s, 0.002, rng.uniform(0.08, 0.16))
    body = _band(_noise(rng, n), sr, 80, 1200) * _burst_env(n, sr, s, 0.001, rng.uniform(0.03, 0.07))
    rattle = _band(_noise(rng, n), sr, 1500, 6000) * _burst_env(n, sr, s + int(0.01 * sr), 0.001, 0.03) * 0.4
    return 1.5 * thump + body + rattle, f0, {}


def _clap(spec, rng, n, sr, f0):
    x = np.zeros(n)
    period = rng.uniform(0.25, 0.5)
    pos = rng.uniform(0.05, 0.2)
    m = int(0.12 * sr)
    for _ in range(int(rng.integers(1, 7))):
        s = int(pos * sr)
        if s + int(0.1 * sr) >= n:
            break
        seg = _band(_noise(rng, m), sr, rng.uniform(700, 1100), rng.uniform(2200, 3500))
        _add_at(x, s, seg * _burst_env(m, sr, 0, 0.0008, rng.uniform(0.008, 0.02)))
        pos += period * rng.uniform(0.9, 1.1)
    return x, math.nan, {}


def _knock(spec, rng, n, sr, f0):
    # each knock rings the panel's resonance at f0 (a damped sine, tau 20 ms) under a short click
    x = np.zeros(n)
    res = f0
    pos = rng.uniform(0.05, 0.25)
    m = int(0.15 * sr)
    tt = _t(m, sr)
    for _ in range(int(rng.integers(2, 5))):
        s = int(pos * sr)
        if s + int(0.1 * sr) >= n:
            break
        seg = np.sin(2 * np.pi * res * tt) * _burst_env(m, sr, 0, 0.0005, 0.02)
        seg += 0.5 * _band(_noise(rng, m), sr, 1000, 5000) * _burst_env(m, sr, 0, 0.0003, 0.004)
        _add_at(x, s, seg)
        pos += rng.uniform(0.14, 0.3)
    return x, f0, {}


def _footsteps(spec, rng, n, sr, f0):
    x = np.zeros(n)
    step = rng.uniform(0.45, 0.62)
    pos = rng.uniform(0.05, 0.3)
    gravel = rng.uniform() < 0.5
    m = int(0.3 * sr)
    tt = _t(m, sr)
    hi = (2000, 8000) if gravel else (300, 2500)
    while True:
        s = int(pos * sr)
        if s + int(0.12 * sr) >= n:
            break
        seg = 0.8 * np.sin(2 * np.pi * rng.uniform(60, 100) * tt) * _burst_env(m, sr, 0, 0.002, 0.03)
        seg += _band(_noise(rng, m), sr, *hi) * _burst_env(m, sr, int(0.01 * sr), 0.005, 0.04 if gravel else 0.015)
        _add_at(x, s, seg)
        pos += step * rng.uniform(0.93, 1.07)
    return x, math.nan, {}


_RECIPES: dict[str, Recipe] = {
    "instrument": _instrument_tone, "whistle": _whistle, "bell": _bell, "kettle": _kettle, "beeper": _beeper,
    "engine": _engine, "siren": _siren, "foghorn": _foghorn, "tuning_fork": _tuning_fork,
    "bark": _bark, "meow": _meow, "chirp": _chirp, "moo": _moo, "crow_call": _crow_call, "hoot": _hoot,
    "croak": _croak, "quack": _quack, "bleat": _bleat, "caw": _caw, "neigh": _neigh, "roar": _roar, "cricket": _cricket,
    "rain": _rain, "wind": _wind, "crowd": _crowd, "stream": _stream, "fire": _fire, "traffic": _traffic,
    "door_slam": _door_slam, "clap": _clap, "knock": _knock, "footsteps": _footsteps,
}


# ---------------------------------------------------------------- public


def draw_f0_hz(spec: SourceSpec, rng: np.random.Generator) -> float:
    """A clip's nominal f0 (Hz): log-uniform in the source's range (5 % inside it for sources with contours);
    instruments snap to a note, detuned by up to +-8 cents."""
    if not spec.pitched or spec.f0_range_hz is None:
        return math.nan
    lo, hi = spec.f0_range_hz
    if spec.category != "music":  # contours and glides move the heard median by up to ~4 %: stay inside the range
        f0 = _loguniform(rng, lo * 1.05, hi / 1.05)
    else:
        f0 = _loguniform(rng, lo, hi)
    if spec.category == "music":
        midi = round(69 + 12 * math.log2(f0 / 440.0))
        f0 = 440.0 * 2 ** ((midi - 69) / 12) * 2 ** (rng.uniform(-8, 8) / 1200)
        f0 = min(max(f0, lo), hi)
    return float(f0)


def draw_duration_s(spec: SourceSpec, rng: np.random.Generator, lo_s: float = 1.5, hi_s: float = 5.0) -> float:
    """A clip's length (s): the source's typical duration with +-~15 % log-normal jitter, clamped to [lo_s, hi_s]."""
    return float(min(max(spec.duration_s * math.exp(rng.normal(0, 0.15)), lo_s), hi_s))


def render_source(spec: SourceSpec, rng: np.random.Generator, sr: int, duration_s: float | None = None,
                  f0_hz: float | None = None) -> RenderedClip:
    """Synthesise one clip of a source: float32[samples] mono at sr Hz, peak-normalised to 0.5 (levelled later).

    f0_hz in the result is what the clip sounds at (median of the f0 contour where the sound is on) when the clip has
    a single f0 (pitch_kind steady or vibrato); NaN for glides and unpitched sources (see RenderedClip).
    """
    if spec.recipe not in _RECIPES:
        raise UnknownNameError(f"demo source {spec.name!r}: unknown recipe {spec.recipe!r}")
    duration_s = draw_duration_s(spec, rng) if duration_s is None else float(duration_s)
    f0 = draw_f0_hz(spec, rng) if f0_hz is None else float(f0_hz)
    n = int(round(duration_s * sr))
    x, f0_heard, info = _RECIPES[spec.recipe](spec, rng, n, sr, f0)
    x = np.asarray(x, dtype=np.float64)
    peak = float(np.max(np.abs(x)))
    if peak > 0:
        x = 0.5 * x / peak
    if not spec.pitched:
        kind, f0_median, spread = "none", math.nan, math.nan
    else:
        f0_median = float(f0_heard)
        spread = _contour_spread_cents(*info["contour"]) if "contour" in info else 0.0
        kind = "glide" if spread > GLIDE_SPREAD_CENTS else ("vibrato" if info.get("vibrato") else "steady")
    f0_single = float(f0_heard) if kind in ("steady", "vibrato") else math.nan
    note = note_name(f0_single) if spec.category == "music" and not math.isnan(f0_single) else ""
    return RenderedClip(audio=x.astype(np.float32), sr=sr, f0_hz=f0_single, duration_s=n / sr,
                        vibrato=bool(info.get("vibrato", False)), weak_fundamental=bool(info.get("weak_fundamental", False)),
                        note=note, pitch_kind=kind, f0_median_hz=f0_median, f0_spread_cents=spread)


def measure_level_dbfs(audio: np.ndarray) -> float:
    """RMS level of float audio (any shape), dBFS; -inf for silence."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def measure_centroid_hz(audio: np.ndarray, sr: int) -> float:
    """Spectral centroid (Hz) of the whole clip's power spectrum (mono: channels averaged); NaN for silence."""
    x = audio.mean(axis=1) if audio.ndim == 2 else audio
    m = sp_fft.next_fast_len(len(x), real=True)
    p = np.abs(sp_fft.rfft(x.astype(np.float64), m)) ** 2
    if p.sum() <= 0:
        return math.nan
    f = np.fft.rfftfreq(m, 1.0 / sr)
    return float((f * p).sum() / p.sum())


def set_level(audio: np.ndarray, target_dbfs: float, rng: np.random.Generator | None = None,
              peak_max_dbfs: float = -1.0) -> np.ndarray:
    """Scale audio to an RMS of target_dbfs, then lower it if its peak would exceed peak_max_dbfs; add a room-tone
    floor at -72 dBFS when rng is given. Returns float32 of the same shape."""
    x = audio.astype(np.float64)
    level = measure_level_dbfs(x)
    if math.isfinite(level):
        x *= 10 ** ((target_dbfs - level) / 20)
        peak = float(np.max(np.abs(x)))
        limit = 10 ** (peak_max_dbfs / 20)
        if peak > limit:
            x *= limit / peak
    if rng is not None:
        x += 10 ** (_FLOOR_DBFS / 20) * rng.standard_normal(x.shape)
    return x.astype(np.float32)
