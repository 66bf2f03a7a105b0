"""Real-recording pitch test sets: single notes of sampled instruments, and real unpitched sounds, from two
independent General MIDI soundfonts.

- `timgm6mb`: TimGM6mb.sf2 (Tim Brechbill, GPL-2.0), shipped inside the `pretty-midi` wheel (the `dev` extra).
- `csound`: sf_GMbank.sf2, the GM bank of Csound (LGPL-2.1+), from Debian's `csound-soundfont` package
  (`apt-get install csound-soundfont`; .ci/run installs it). Its own instruments and samples, and notes the first set
  lacks: plucked low notes E1-A2 of basses and guitars, high woodwinds to C7, and notes with vibrato.

Both are rendered with `tinysoundfont` (a self-contained sf2 synthesiser). Nothing here is made by the pitch code: the
truth of a note is its MIDI key (the preset's tuning as the soundfont gives it); a vibrato note is the same sample
played with the synthesiser's pitch wheel swung sinusoidally (extent +-20..60 cents, 4-7 Hz), whose truth is the
key (the centre of a modulation symmetric in cents). The unpitched clips are the bank's own GM drum-kit hits, and
filtered noise bursts, rain-like crackle and a hum of inharmonic partials (seeded per bank). Rendering is
deterministic (fixed seeds; the synthesiser has no random state), so tests and `bench/bench_pitch.py` render the
sets at run time and nothing audio is committed. Test and bench code only: the project does not import this at run
time.

    clips = real_note_set()                     # TimGM6mb, every clip (178 notes of 36 instruments, 30 unpitched)
    clips = real_note_set(every=3)              # every 3rd note of each instrument, all unpitched (the test slice)
    clips = real_note_set(every=3, bank="csound")
    clip.audio: float32[samples, 2] at clip.sr Hz (stereo, as a recording); clip.f0_hz: Hz, NaN = unpitched
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfilt

__all__ = ["RealClip", "Bank", "BANKS", "real_note_set", "flac_bytes", "midi_hz"]


@dataclass(frozen=True)
class RealClip:
    """One clip: name, audio float32[samples, 2] at sr Hz, f0_hz (the key's pitch plus the bank's sounding offset;
    NaN = unpitched), family; vibrato (extent in cents, rate in Hz) of the pitch wheel, None when held still."""

    name: str
    audio: np.ndarray
    sr: int
    f0_hz: float
    family: str
    vibrato: tuple[float, float] | None = None


def midi_hz(key: float) -> float:
    """Equal-tempered frequency of MIDI key (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((key - 69) / 12.0)


def _timgm6mb_path() -> str:
    """Path of TimGM6mb.sf2 inside the installed pretty-midi package."""
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: TimGM6mb.sf2 missing from the pretty-midi package (pip install pretty-midi)")
    return path


CSOUND_SF2 = "/usr/share/sounds/sf2/sf_GMbank.sf2"


def _csound_path() -> str:
    """Path of Debian's csound-soundfont bank ($AUDITORYBENCH_CSOUND_SF2 overrides it)."""
    path = os.environ.get("AUDITORYBENCH_CSOUND_SF2", CSOUND_SF2)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: the csound GM soundfont is missing (apt-get install csound-soundfont, "
                                "as .ci/run does; or set AUDITORYBENCH_CSOUND_SF2)")
    return path


@dataclass(frozen=True)
class Bank:
    """One soundfont's test set. instruments: (name, GM program 0-based, family, MIDI keys); sounding_offset:
    semitones from the key to the waveform's f0, by instrument name or (name, key), where the preset does not sound
    its key; excluded: (what, why) left out; drum_keys: GM drum-kit key -> name (real unpitched hits); vibrato:
    (name, GM program, family, key, extent cents, rate Hz) notes played with the pitch wheel swung; noise_seed: the
    seed of the bank's synthetic unpitched clips."""

    name: str
    path: Callable[[], str]
    instruments: list[tuple[str, int, str, tuple[int, ...]]]
    sounding_offset: dict
    excluded: list[tuple[str, str]]
    drum_keys: dict[int, str]
    vibrato: list[tuple[str, int, str, int, float, float]] = field(default_factory=list)
    noise_seed: int = 14

# GM drum-kit keys (bank 128, preset 0) used as real unpitched hits; toms (41-50) and the cowbell/agogo/triangle family
# are left out, since a listener hears a pitch in them.
DRUM_KEYS: dict[int, str] = {
    35: "acoustic bass drum", 36: "bass drum", 37: "side stick", 38: "snare", 39: "hand clap", 40: "electric snare",
    42: "closed hi-hat", 44: "pedal hi-hat", 46: "open hi-hat", 49: "crash cymbal", 51: "ride cymbal", 52: "china cymbal",
    54: "tambourine", 55: "splash cymbal", 57: "crash cymbal 2", 69: "cabasa", 70: "maracas", 82: "shaker",
}

# (name, GM program 0-based, family, MIDI keys): keys span each instrument's usual range, within the soundfont's
# samples (see EXCLUDED for what was left out and why).
_TIMGM6MB_INSTRUMENTS: list[tuple[str, int, str, tuple[int, ...]]] = [
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
_TIMGM6MB_SOUNDING_OFFSET: dict = {"drawbar organ": -12}

# Left out, honestly: instruments whose notes have no single pitch a listener agrees on, or keys whose samples are
# stretched beyond their range. Each entry: (GM program or "name", reason).
_TIMGM6MB_EXCLUDED: list[tuple[str, str]] = [
    ("tubular bells (14), tinkle bell (112), steel drums (114)", "inharmonic partials: the perceived strike tone is not the MIDI key's f0"),
    ("timpani (47), taiko (116), melodic tom (117)", "pitched drums whose sampled pitch barely follows the key"),
    ("church organ (19)", "its sample zones sound an octave above the key (low zones) or one to two below (high zones), "
     "with sub-octave stops mixed in: YIN and pYIN each find a clean period, not the same one, and no single key truth"),
    ("accordion keys 74 and 81", "that sample zone sounds 29 and 66 cents flat of the key (YIN and pYIN agree to 0.1 "
     "cent), a detuning the preset does not correct"),
]


# (name, GM program, family, MIDI keys) of Csound's GM bank: its own samples, over each instrument's range; the
# plucked low notes E1-A2 (28-45) of four basses and three guitars, high woodwinds to C7 (96), and the oboe E5, G#5
# and E6 and contrabass G1 that a frame-level octave decision dropped or doubled (issue 28).
_CSOUND_INSTRUMENTS: list[tuple[str, int, str, tuple[int, ...]]] = [
    ("piano", 0, "keyboard", (28, 45, 60, 76, 93)),
    ("harpsichord", 6, "keyboard", (41, 57, 72, 88)),
    ("vibraphone", 11, "pitched percussion", (53, 65, 77, 89)),
    ("marimba", 12, "pitched percussion", (45, 60, 72, 84)),
    ("organ 1", 16, "organ", (36, 48, 60, 72, 84)),
    ("accordion", 21, "reed", (53, 60, 67, 74)),
    ("harmonica", 22, "reed", (60, 67, 74, 81)),
    ("nylon guitar", 24, "plucked", (40, 43, 45, 52, 64, 76)),
    ("steel guitar", 25, "plucked", (40, 45, 55, 67, 79)),
    ("jazz guitar", 26, "plucked", (40, 45, 57, 69)),
    ("acoustic bass", 32, "low bass", (28, 31, 33, 36, 40, 45)),
    ("fingered bass", 33, "low bass", (28, 30, 33, 38, 43)),
    ("picked bass", 34, "low bass", (28, 33, 40, 45)),
    ("fretless bass", 35, "low bass", (28, 31, 35, 40)),
    ("violin", 40, "strings", (55, 64, 72, 81, 88, 93)),
    ("viola", 41, "strings", (48, 57, 65, 74)),
    ("cello", 42, "strings", (36, 43, 50, 57, 65)),
    ("contrabass", 43, "low bass", (28, 31, 33, 38, 43)),
    ("pizzicato strings", 45, "plucked", (36, 48, 60, 72)),
    ("harp", 46, "plucked", (36, 48, 60, 72, 84)),
    ("strings", 48, "strings", (43, 55, 67, 79)),
    ("choir aahs", 52, "voice-like", (48, 55, 62, 69, 76)),
    ("trumpet", 56, "brass", (55, 62, 69, 76, 82)),
    ("trombone", 57, "brass", (40, 47, 54, 61, 68)),
    ("tuba", 58, "brass", (29, 34, 41, 48)),
    ("french horns", 60, "brass", (41, 48, 55, 62, 69)),
    ("alto sax", 65, "reed", (49, 56, 63, 70, 77)),
    ("baritone sax", 67, "reed", (36, 43, 50, 57)),
    ("oboe", 68, "reed", (58, 64, 70, 76, 80, 84, 88, 91)),
    ("english horn", 69, "reed", (52, 59, 66, 73, 79)),
    ("bassoon", 70, "reed", (34, 41, 48, 55, 62, 69)),
    ("clarinet", 71, "reed", (50, 57, 64, 71, 78, 85, 91)),
    ("piccolo", 72, "flute", (74, 81, 86, 91, 96)),
    ("flute", 73, "flute", (60, 67, 74, 81, 88, 93, 96)),
    ("recorder", 74, "flute", (72, 79, 86, 93, 96)),
]

# Organ 1's sample carries a 16' stop, as TimGM6mb's drawbar organ does: its waveform repeats an octave below the key
# (the normalised difference at the key's period is 0.82: no period there), and a listener hears the 16' fundamental.
_CSOUND_SOUNDING_OFFSET: dict = {"organ 1": -12}

_CSOUND_EXCLUDED: list[tuple[str, str]] = [
    ("church organ (19)", "octave-doubled ranks: its waveform repeats at the 16' period (an octave below the key) while "
     "the 8' and 4' ranks hold 90 % or more of the energy (normalised difference 0.11 at the key's period, 0.18 an "
     "octave above), so the octave a listener names is not the one the period gives; left out rather than given a "
     "truth by hand (the measure stage reports the waveform's period, as for the organs kept)"),
    ("tubular bells (14), tinkle bell (112), steel drum (114)", "inharmonic partials: the strike tone is not the key's f0"),
    ("timpani (47), taiko (116), melodic tom (117)", "pitched drums whose sampled pitch barely follows the key"),
]

# (name, GM program, family, key, extent cents, rate Hz): sustained notes played with vibrato on the pitch wheel.
_CSOUND_VIBRATO: list[tuple[str, int, str, int, float, float]] = [
    ("violin", 40, "strings", 69, 40, 5.5),
    ("cello", 42, "strings", 48, 30, 5.0),
    ("flute", 73, "flute", 79, 25, 5.0),
    ("oboe", 68, "reed", 76, 20, 6.0),
    ("choir aahs", 52, "voice-like", 60, 60, 5.0),
    ("trumpet", 56, "brass", 67, 20, 6.5),
    ("clarinet", 71, "reed", 67, 30, 4.0),
    ("alto sax", 65, "reed", 61, 50, 6.0),
    ("viola", 41, "strings", 62, 60, 7.0),
    ("french horns", 60, "brass", 55, 20, 4.5),
    ("contrabass", 43, "low bass", 38, 40, 5.0),
    ("english horn", 69, "reed", 64, 35, 6.5),
    ("strings", 48, "strings", 67, 50, 4.0),
    ("bassoon", 70, "reed", 50, 30, 5.5),
    ("oboe", 68, "reed", 88, 45, 6.0),
    ("flute", 73, "flute", 91, 60, 7.0),
]

BANKS: dict[str, Bank] = {
    "timgm6mb": Bank("timgm6mb", _timgm6mb_path, _TIMGM6MB_INSTRUMENTS, _TIMGM6MB_SOUNDING_OFFSET, _TIMGM6MB_EXCLUDED,
                     DRUM_KEYS, [], 14),
    "csound": Bank("csound", _csound_path, _CSOUND_INSTRUMENTS, _CSOUND_SOUNDING_OFFSET, _CSOUND_EXCLUDED, DRUM_KEYS,
                   _CSOUND_VIBRATO, 28),
}


def _render(path: str, program: int, key: int, hold_s: float, sr: int, drums: bool = False, velocity: int = 100,
            vibrato: tuple[float, float] | None = None) -> np.ndarray:
    """float32[samples, 2]: one note of the soundfont at path held hold_s seconds then 0.4 s of release, peak
    normalised to 0.5. vibrato (extent cents, rate Hz): the pitch wheel swings extent * sin(2 pi rate t) from the
    note-on, updated every millisecond (the wheel's range set to one semitone: steps of 0.012 cents)."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sr)
    sfid = synth.sfload(path)
    chan = 9 if drums else 0
    synth.program_select(chan, sfid, 128 if drums else 0, program, is_drums=drums)
    n_held = int(hold_s * sr)
    if vibrato is None:
        synth.noteon(chan, key, velocity)
        held = np.frombuffer(synth.generate(n_held), dtype=np.float32)
    else:
        extent, rate = vibrato
        synth.pitchbend_range(chan, 1.0)
        step = max(1, sr // 1000)
        blocks = []
        synth.noteon(chan, key, velocity)
        for at in range(0, n_held, step):
            cents = extent * math.sin(2 * math.pi * rate * (at + step / 2) / sr)
            synth.pitchbend(chan, int(round(8192 + cents / 100.0 * 8192)))
            blocks.append(np.frombuffer(synth.generate(min(step, n_held - at)), dtype=np.float32))
        held = np.concatenate(blocks)
    synth.noteoff(chan, key)
    tail = np.frombuffer(synth.generate(int(0.4 * sr)), dtype=np.float32)
    y = np.concatenate([held, tail]).reshape(-1, 2)
    return (0.5 * y / max(float(np.abs(y).max()), 1e-9)).astype(np.float32)


def _noises(sr: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """(name, float32[samples]) unpitched sounds made without the pitch code: band-filtered noise bursts,
    rain-like crackle, and a hum of inharmonic partials (a machine room), each 1.5-3 s, peak 0.5."""
    rng = np.random.default_rng(seed)
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
def real_note_set(every: int = 1, bank: str = "timgm6mb") -> tuple[RealClip, ...]:
    """The bank's set: every `every`-th key of each of its instruments (notes held 1-4 s, 44.1 or 48 kHz), then
    every `every`-th of its vibrato notes (held 2-4 s), then the unpitched clips (its drum-kit hits and _noises).
    Deterministic; memoised per process. Raises FileNotFoundError when the bank's soundfont is not installed."""
    if bank not in BANKS:
        raise KeyError(f"unknown soundfont bank {bank!r} (known: {', '.join(BANKS)})")
    b = BANKS[bank]
    path = b.path()
    clips = []
    k = 0
    for name, program, family, keys in b.instruments:
        for j, key in enumerate(keys):
            if j % every:
                continue
            sr = 44100 if k % 2 == 0 else 48000
            hold = 1.0 + (k * 7 % 13) / 4.0  # 1.0 .. 4.0 s
            offset = b.sounding_offset.get((name, key), b.sounding_offset.get(name, 0))
            clips.append(RealClip(f"{name} {key}", _render(path, program, key, hold, sr), sr, midi_hz(key + offset), family))
            k += 1
    for j, (name, program, family, key, extent, rate) in enumerate(b.vibrato):
        if j % every:
            continue
        sr = 44100 if j % 2 == 0 else 48000
        hold = 2.0 + (j * 5 % 9) / 4.0  # 2.0 .. 4.0 s
        offset = b.sounding_offset.get((name, key), b.sounding_offset.get(name, 0))
        audio = _render(path, program, key, hold, sr, vibrato=(extent, rate))
        clips.append(RealClip(f"{name} {key} vibrato +-{extent:g} c {rate:g} Hz", audio, sr, midi_hz(key + offset),
                              family, (extent, rate)))
    for key, name in b.drum_keys.items():
        sr = 44100 if key % 2 else 48000
        clips.append(RealClip(f"drum {name}", _render(path, 0, key, 1.0, sr, drums=True), sr, math.nan, "drum kit"))
    for name, y in _noises(48000, b.noise_seed):
        clips.append(RealClip(name, np.stack([y, y], axis=1), 48000, math.nan, "noise"))
    return tuple(clips)


def flac_bytes(clip: RealClip) -> bytes:
    """The clip as a 16-bit stereo FLAC file's bytes (the corpus's format)."""
    buf = io.BytesIO()
    sf.write(buf, clip.audio, clip.sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()
