"""A real-recording pitch test set: single notes of sampled instruments, and real unpitched sounds.

The notes are rendered from TimGM6mb.sf2, the General MIDI soundfont (real instrument samples, Tim Brechbill,
GPL-2.0) that the `pretty-midi` wheel ships, with `tinysoundfont` (a self-contained sf2 synthesiser). Nothing here
is made by the pitch code: the truth of a note is its MIDI key (the preset's tuning as the soundfont gives it), and
the noise clips are filtered noise bursts, rain-like crackle, a hum of inharmonic partials and the soundfont's own GM
drum-kit hits. Rendering is deterministic (fixed seeds; the synthesiser has no random state), so tests and
`bench/bench_pitch.py` render the set at run time and nothing audio is committed. Test and bench code only: the
project does not import this at run time.

    clips = real_note_set()            # every clip (178 notes of 36 instruments, 30 unpitched clips)
    clips = real_note_set(every=3)     # every 3rd note of each instrument, all noises (the test subset)
    clip.audio: float32[samples, 2] at clip.sr Hz (stereo, as a recording); clip.f0_hz: Hz, NaN = unpitched
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfilt

__all__ = ["RealClip", "INSTRUMENTS", "SOUNDING_OFFSET", "EXCLUDED", "DRUM_KEYS", "soundfont_path", "real_note_set", "flac_bytes", "midi_hz"]


@dataclass(frozen=True)
class RealClip:
    """One clip: name, audio float32[samples, 2] at sr Hz, f0_hz (the key's pitch plus SOUNDING_OFFSET; NaN =
    unpitched), family."""

    name: str
    audio: np.ndarray
    sr: int
    f0_hz: float
    family: str


# (name, GM program 0-based, family, MIDI keys): keys span each instrument's usual range, within the soundfont's
# samples (see EXCLUDED for what was left out and why).
INSTRUMENTS: list[tuple[str, int, str, tuple[int, ...]]] = [
    ("piano", 0, "keyboard", (28, 40, 52, 64, 76, 88, 100)),
    ("harpsichord", 6, "keyboard", (41, 53, 65, 77, 89)),
    ("celesta", 8, "pitched percussion", (60, 72, 84, 96)),
    ("vibraphone", 11, "pitched percussion", (53, 62, 71, 80, 89)),
    ("marimba", 12, "pitched percussion", (45, 57, 69, 81, 93)),
    ("xylophone", 13, "pitched percussion", (65, 77, 89, 101)),
    ("drawbar organ", 16, "organ", (36, 48, 60, 72, 84, 96)),
    ("reed organ", 20, "organ", (41, 53, 65, 77)),
    ("accordion", 21, "reed", (53, 60, 67)),
    ("harmonica", 22, "reed", (60, 67, 74, 81)),
    ("nylon guitar", 24, "plucked", (40, 47, 55, 64, 71, 79)),
    ("steel guitar", 25, "plucked", (40, 52, 64, 76)),
    ("acoustic bass", 32, "low bass", (28, 33, 40, 45, 52)),
    ("finger bass", 33, "low bass", (28, 35, 43, 50, 57)),
    ("violin", 40, "strings", (55, 64, 72, 81, 93)),
    ("viola", 41, "strings", (48, 55, 64, 72, 81)),
    ("cello", 42, "strings", (36, 43, 50, 57, 64, 72)),
    ("contrabass", 43, "low bass", (28, 33, 38, 43, 50)),
    ("harp", 46, "plucked", (36, 48, 60, 72, 84)),
    ("string ensemble", 48, "strings", (43, 55, 67, 79)),
    ("choir aahs", 52, "voice-like", (48, 55, 62, 69, 76)),
    ("voice oohs", 53, "voice-like", (48, 57, 66, 75)),
    ("trumpet", 56, "brass", (55, 62, 69, 76, 82)),
    ("trombone", 57, "brass", (40, 47, 54, 61, 68)),
    ("tuba", 58, "brass", (29, 34, 41, 48, 55)),
    ("french horn", 60, "brass", (41, 48, 55, 62, 69, 75)),
    ("soprano sax", 64, "reed", (57, 64, 71, 78, 85)),
    ("tenor sax", 66, "reed", (45, 52, 59, 66, 73)),
    ("baritone sax", 67, "reed", (37, 44, 51, 58, 65)),
    ("oboe", 68, "reed", (59, 66, 73, 80, 87)),
    ("bassoon", 70, "reed", (35, 42, 49, 56, 63, 70)),
    ("clarinet", 71, "reed", (51, 58, 65, 72, 79, 86)),
    ("flute", 73, "flute", (60, 67, 74, 81, 88, 95)),
    ("ocarina", 79, "flute", (65, 72, 79, 86)),
    ("voice lead", 85, "voice-like", (55, 62, 69, 76)),
    ("choir pad", 91, "voice-like", (48, 55, 62, 69, 76)),
]

# The preset's sounding pitch, where it is not the key's: semitones from the key to the waveform's f0. TimGM6mb's
# drawbar organ sample carries a 16' stop, so its period is an octave below the key; YIN and pYIN agree on every key
# to under a cent (checked when the set was built), and a listener hears the 16' fundamental.
SOUNDING_OFFSET: dict[str, int] = {"drawbar organ": -12}

# Left out, honestly: instruments whose notes have no single pitch a listener agrees on, or keys whose samples are
# stretched beyond their range. Each entry: (GM program or "name", reason).
EXCLUDED: list[tuple[str, str]] = [
    ("tubular bells (14), tinkle bell (112), steel drums (114)", "inharmonic partials: the perceived strike tone is not the MIDI key's f0"),
    ("timpani (47), taiko (116), melodic tom (117)", "pitched drums whose sampled pitch barely follows the key"),
    ("church organ (19)", "its sample zones sound an octave above the key (low zones) or one to two below (high zones), "
     "with sub-octave stops mixed in: YIN and pYIN each find a clean period, not the same one, and no single key truth"),
    ("accordion keys 74 and 81", "that sample zone sounds 29 and 66 cents flat of the key (YIN and pYIN agree to 0.1 "
     "cent), a detuning the preset does not correct"),
]

# GM drum-kit keys (bank 128, preset 0) used as real unpitched hits; toms (41-50) and the cowbell/agogo/triangle family
# are left out, since a listener hears a pitch in them.
DRUM_KEYS: dict[int, str] = {
    35: "acoustic bass drum", 36: "bass drum", 37: "side stick", 38: "snare", 39: "hand clap", 40: "electric snare",
    42: "closed hi-hat", 44: "pedal hi-hat", 46: "open hi-hat", 49: "crash cymbal", 51: "ride cymbal", 52: "china cymbal",
    54: "tambourine", 55: "splash cymbal", 57: "crash cymbal 2", 69: "cabasa", 70: "maracas", 82: "shaker",
}


def midi_hz(key: float) -> float:
    """Equal-tempered frequency of MIDI key (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((key - 69) / 12.0)


def soundfont_path() -> str:
    """Path of TimGM6mb.sf2 inside the installed pretty-midi package."""
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: TimGM6mb.sf2 missing from the pretty-midi package (pip install pretty-midi)")
    return path


def _render(program: int, key: int, hold_s: float, sr: int, drums: bool = False, velocity: int = 100) -> np.ndarray:
    """float32[samples, 2]: one note held hold_s seconds then 0.4 s of release, peak normalised to 0.5."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sr)
    sfid = synth.sfload(soundfont_path())
    chan = 9 if drums else 0
    synth.program_select(chan, sfid, 128 if drums else 0, program, is_drums=drums)
    synth.noteon(chan, key, velocity)
    held = np.frombuffer(synth.generate(int(hold_s * sr)), dtype=np.float32)
    synth.noteoff(chan, key)
    tail = np.frombuffer(synth.generate(int(0.4 * sr)), dtype=np.float32)
    y = np.concatenate([held, tail]).reshape(-1, 2)
    return (0.5 * y / max(float(np.abs(y).max()), 1e-9)).astype(np.float32)


def _noises(sr: int) -> list[tuple[str, np.ndarray]]:
    """(name, float32[samples]) unpitched sounds made without the pitch code: band-filtered noise bursts,
    rain-like crackle, and a hum of inharmonic partials (a machine room), each 1.5-3 s, peak 0.5."""
    rng = np.random.default_rng(14)
    out = []
    for lo, hi, dur in ((80, 400, 2.0), (300, 1200, 1.5), (1000, 4000, 2.5), (2500, 9000, 1.5), (150, 3000, 3.0), (600, 900, 2.0)):
        sos = butter(4, [lo, hi], btype="band", fs=sr, output="sos")
        n = int(dur * sr)
        env = np.minimum(1.0, np.arange(n) / (0.02 * sr)) * np.exp(-np.arange(n) / (0.6 * dur * sr))
        out.append((f"noise burst {lo}-{hi} Hz", sosfilt(sos, rng.standard_normal(n)) * env))
    for density, dur in ((40, 2.5), (300, 2.0), (1500, 3.0)):  # drops per second: sparse patter to downpour
        n = int(dur * sr)
        y = np.zeros(n)
        at = rng.integers(0, n - 400, int(density * dur))
        decay = np.exp(-np.arange(400) / rng.uniform(20, 120))
        for i in at:
            y[i : i + 400] += rng.uniform(0.2, 1.0) * decay * rng.standard_normal(400)
        y = sosfilt(butter(2, 400, btype="high", fs=sr, output="sos"), y)
        out.append((f"rain {density}/s", y + 0.05 * np.std(y) * rng.standard_normal(n)))
    for base, dur in ((57.0, 2.5), (143.0, 2.0), (311.0, 2.0)):  # a machine room: partials that drift apart, plus hiss
        n = int(dur * sr)
        ratios = (1.0, 1.594, 2.136, 2.296, 2.653, 2.918, 3.156, 3.501)  # a circular membrane's modes
        y = np.zeros(n)
        for k, r in enumerate(ratios):
            drift = np.cumsum(rng.standard_normal(n)) / np.sqrt(sr)  # each partial wanders on its own (a few %)
            inst = base * r * (1.0 + 0.02 * drift / max(np.abs(drift).max(), 1e-9))
            y += np.sin(2 * np.pi * np.cumsum(inst) / sr + rng.uniform(0, 2 * np.pi)) / (1 + k)
        out.append((f"inharmonic hum {base:g} Hz", y + 0.3 * rng.standard_normal(n)))
    return [(name, (0.5 * y / np.abs(y).max()).astype(np.float32)) for name, y in out]


@lru_cache(maxsize=4)
def real_note_set(every: int = 1) -> tuple[RealClip, ...]:
    """The set: every `every`-th key of each instrument in INSTRUMENTS (notes held 1-4 s, 44.1 or 48 kHz), then
    the unpitched clips (DRUM_KEYS hits and _noises). Deterministic; memoised per process."""
    clips = []
    k = 0
    for name, program, family, keys in INSTRUMENTS:
        for j, key in enumerate(keys):
            if j % every:
                continue
            sr = 44100 if k % 2 == 0 else 48000
            hold = 1.0 + (k * 7 % 13) / 4.0  # 1.0 .. 4.0 s
            truth = midi_hz(key + SOUNDING_OFFSET.get(name, 0))
            clips.append(RealClip(f"{name} {key}", _render(program, key, hold, sr), sr, truth, family))
            k += 1
    for key, name in DRUM_KEYS.items():
        sr = 44100 if key % 2 else 48000
        clips.append(RealClip(f"drum {name}", _render(0, key, 1.0, sr, drums=True), sr, math.nan, "drum kit"))
    for name, y in _noises(48000):
        clips.append(RealClip(name, np.stack([y, y], axis=1), 48000, math.nan, "noise"))
    return tuple(clips)


def flac_bytes(clip: RealClip) -> bytes:
    """The clip as a 16-bit stereo FLAC file's bytes (the corpus's format)."""
    buf = io.BytesIO()
    sf.write(buf, clip.audio, clip.sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()
