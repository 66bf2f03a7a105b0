"""An embedded demo corpus in the exact LAION-Audio-630K Freesound format, synthesised and deterministic from a seed.

Layout written under `root` (same seed and params → byte-identical files):

    root/freesound/train_0/0.tar, 1.tar, ...   webdataset shards: scratch/freesound_new/train/<id>.flac + <id>.json
    root/freesound/test/0.tar                  (member prefix scratch/freesound_new/test/)
    root/freesound/<folder>/sizes.json         {"0.tar": <clips in the shard>, ...}
    root/freesound_meta.csv                    audio_filename, caption1, caption2, freesound_id, username, freesound_url, license
    root/ground_truth.csv                      what each clip really is: source, category, pitch_kind, f0_hz, duration_s,
                                               gain_db, bad ... (pitched = one f0 is defined: pitch_kind steady or
                                               vibrato; glides keep their contour's median in f0_median_hz)
    root/manifest.json                         the stage manifest (a rerun with the same params does nothing)

Audio: FLAC, 16-bit, `sample_rate` Hz, mono (a few stereo), 1.5–5 s. Captions are written like real Freesound uploads
(file-name titles, tags, some Spanish/German/French, some empty descriptions, gear chatter) and name their source in
words of their own: this module shares no vocabulary with the extraction stage.

A few deliberately bad members exercise every error path downstream; ground_truth.csv names them in `bad`:
corrupt_flac, empty_caption, silent, empty_audio, duplicate_id, duplicate_audio, bad_json, missing_json.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from benchmark.errors import ConfigError
from pipeline.code_hash import code_hash
from pipeline.demo.sounds import (
    SOURCES,
    SourceSpec,
    measure_centroid_hz,
    measure_level_dbfs,
    render_source,
    set_level,
    source_spec,
)
from pipeline.stage import StageRun, atomic_path, log, write_json

__all__ = ["build_demo_corpus", "build_bench_shards", "encode_flac", "GROUND_TRUTH_COLUMNS", "META_COLUMNS", "LICENSE_MIX"]

META_COLUMNS = ("audio_filename", "caption1", "caption2", "freesound_id", "username", "freesound_url", "license")
GROUND_TRUTH_COLUMNS = (
    "clip_id", "freesound_id", "shard", "member", "category", "source_name", "pitched", "pitch_kind", "f0_hz",
    "f0_median_hz", "f0_spread_cents", "duration_s",
    "gain_db", "level_dbfs", "typical_level_dbfs", "typical_duration_s", "centroid_hz", "channels", "sample_rate",
    "vibrato", "weak_fundamental", "note", "lang", "license", "bad", "same_audio_as",
)

# The real Freesound mix in LAION-Audio-630K (≈ 50 % CC0, 36 % CC-BY, 11 % CC-BY-NC, 2 % Sampling+).
LICENSE_MIX = (
    ("http://creativecommons.org/publicdomain/zero/1.0/", 0.51),
    ("https://creativecommons.org/licenses/by/3.0/", 0.17),
    ("https://creativecommons.org/licenses/by/4.0/", 0.19),
    ("https://creativecommons.org/licenses/by-nc/3.0/", 0.05),
    ("https://creativecommons.org/licenses/by-nc/4.0/", 0.06),
    ("http://creativecommons.org/licenses/sampling+/1.0/", 0.02),
)
_NON_CC_LICENSES = ("https://www.gnu.org/licenses/gpl-3.0.html", "All rights reserved")
_BAD_KINDS = ("corrupt_flac", "empty_caption", "silent", "empty_audio", "duplicate_id", "duplicate_audio", "bad_json",
              "missing_json")
_MEMBER_PREFIX = "scratch/freesound_new"
_MIN_CLIPS = 12

# ---------------------------------------------------------------- caption words (this module's own, on purpose)
# source -> (English phrases, Spanish, German, French, tag words)
_WORDS: dict[str, tuple[tuple[str, ...], str, str, str, tuple[str, ...]]] = {
    "violin": (("violin", "solo violin", "fiddle"), "violín", "Geige", "violon", ("violin", "strings", "bowed")),
    "cello": (("cello", "violoncello", "cello note"), "violonchelo", "Cello", "violoncelle", ("cello", "strings")),
    "double bass": (("double bass", "upright bass", "contrabass"),
        "contrabajo", "Kontrabass", "contrebasse", ("double-bass", "bass", "strings")),
    "flute": (("flute", "concert flute", "flute note"), "flauta", "Querflöte", "flûte", ("flute", "woodwind")),
    "piccolo": (("piccolo", "piccolo flute"), "flautín", "Piccoloflöte", "piccolo", ("piccolo", "woodwind")),
    "clarinet": (("clarinet", "Bb clarinet", "clarinet tone"),
        "clarinete", "Klarinette", "clarinette", ("clarinet", "woodwind")),
    "oboe": (("oboe", "oboe note"), "oboe", "Oboe", "hautbois", ("oboe", "woodwind", "reed")),
    "bassoon": (("bassoon", "fagott bassoon"), "fagot", "Fagott", "basson", ("bassoon", "woodwind")),
    "saxophone": (("saxophone", "alto sax", "tenor sax"),
        "saxofón", "Saxophon", "saxophone", ("sax", "saxophone", "jazz")),
    "trumpet": (("trumpet", "trumpet blast", "Bb trumpet"), "trompeta", "Trompete", "trompette", ("trumpet", "brass")),
    "trombone": (("trombone", "tenor trombone"), "trombón", "Posaune", "trombone", ("trombone", "brass")),
    "tuba": (("tuba", "tuba note"), "tuba", "Tuba", "tuba", ("tuba", "brass", "low")),
    "french horn": (("french horn", "horn in F"),
        "trompa", "Waldhorn", "cor d'harmonie", ("horn", "french-horn", "brass")),
    "guitar": (("guitar", "acoustic guitar", "guitar pluck"),
        "guitarra", "Gitarre", "guitare", ("guitar", "acoustic", "plucked")),
    "piano": (("piano", "grand piano", "upright piano"), "piano", "Klavier", "piano", ("piano", "keys")),
    "harp": (("harp", "concert harp", "harp pluck"), "arpa", "Harfe", "harpe", ("harp", "plucked")),
    "whistle": (("whistle", "referee whistle", "tin whistle blow"),
        "silbato", "Pfeife", "sifflet", ("whistle", "blow")),
    "bell": (("bell", "small bell", "hand bell ding"), "campana", "Glocke", "cloche", ("bell", "ding", "ring")),
    "kettle": (("kettle whistle", "whistling kettle", "tea kettle boiling"),
        "tetera silbando", "Wasserkessel pfeift", "bouilloire qui siffle", ("kettle", "kitchen", "boiling")),
    "alarm": (("alarm beeping", "alarm clock", "beeper alarm"),
        "alarma", "Wecker Alarm", "alarme", ("alarm", "beep", "beeper")),
    "microwave": (("microwave beep", "microwave oven beeping"),
        "pitido del microondas", "Mikrowelle piept", "bip du micro-ondes", ("microwave", "beep", "kitchen")),
    "engine": (("engine idling", "engine hum", "diesel engine"),
        "motor en marcha", "Motor im Leerlauf", "moteur au ralenti", ("engine", "motor", "idle")),
    "siren": (("siren", "police siren", "ambulance siren"), "sirena", "Sirene", "sirène", ("siren", "emergency")),
    "foghorn": (("foghorn", "fog horn", "ship horn"),
        "sirena de niebla", "Nebelhorn", "corne de brume", ("foghorn", "ship", "harbour")),
    "tuning fork": (("tuning fork", "tuning fork struck"),
        "diapasón", "Stimmgabel", "diapason", ("tuning-fork", "tone")),
    "door": (("door slam", "door slamming shut", "heavy door closing"),
        "portazo", "Tür zuschlagen", "porte qui claque", ("door", "slam", "foley")),
    "clapping": (("hand clap", "hands clapping", "single clap"),
        "aplauso de manos", "Klatschen", "claquement de mains", ("clap", "hands", "clapping")),
    "knock": (("knock on door", "knocking", "door knock"),
        "golpes en la puerta", "Klopfen an der Tür", "on frappe à la porte", ("knock", "knocking", "wood")),
    "footsteps": (("footsteps", "footsteps on gravel", "walking steps"),
        "pasos", "Schritte", "bruits de pas", ("footsteps", "walking", "steps")),
    "dog": (("dog barking", "dog bark", "barking dog"),
        "perro ladrando", "Hund bellt", "chien qui aboie", ("dog", "bark", "animal")),
    "cat": (("cat meow", "cat meowing", "kitten meows"),
        "gato maullando", "Katze miaut", "chat qui miaule", ("cat", "meow", "animal")),
    "bird": (("bird chirping", "birds chirp", "songbird"),
        "pájaro cantando", "Vogelgezwitscher", "oiseau qui chante", ("bird", "birdsong", "chirp")),
    "cow": (("cow mooing", "cow moo", "cattle lowing"),
        "vaca mugiendo", "Kuh muht", "vache qui meugle", ("cow", "moo", "farm")),
    "rooster": (("rooster crowing", "rooster crow", "cockerel"),
        "gallo cantando", "Hahn kräht", "coq qui chante", ("rooster", "farm", "morning")),
    "owl": (("owl hooting", "owl hoot", "tawny owl"),
        "búho ululando", "Eule ruft", "hibou qui hulule", ("owl", "night", "hoot")),
    "frog": (("frog croaking", "frogs croak", "toad"),
        "rana croando", "Frosch quakt", "grenouille qui coasse", ("frog", "croak", "pond")),
    "duck": (("duck quacking", "duck quack", "mallard"),
        "pato graznando", "Ente quakt", "canard qui cancane", ("duck", "quack", "pond")),
    "sheep": (("sheep bleating", "sheep baa", "lamb bleat"),
        "oveja balando", "Schaf blökt", "mouton qui bêle", ("sheep", "baa", "farm")),
    "crow": (("crow cawing", "crow caw", "crows"),
        "cuervo graznando", "Krähe krächzt", "corbeau qui croasse", ("crow", "caw", "bird")),
    "horse": (("horse neighing", "horse neigh", "horse whinny"),
        "caballo relinchando", "Pferd wiehert", "cheval qui hennit", ("horse", "neigh", "farm")),
    "lion": (("lion roar", "lion roaring", "big cat roar"),
        "león rugiendo", "Löwe brüllt", "lion qui rugit", ("lion", "roar", "zoo")),
    "cricket": (("crickets chirping", "cricket", "crickets at night"),
        "grillos cantando", "Grillen zirpen", "grillons", ("cricket", "insect", "night")),
    "rain": (("rain", "rain on the roof", "light rain falling"),
        "lluvia", "Regen", "pluie", ("rain", "weather", "ambience")),
    "wind": (("wind", "strong wind", "wind howling"), "viento", "Wind", "vent", ("wind", "weather", "ambience")),
    "crowd": (("crowd murmur", "crowd talking", "people chatting in a hall"),
        "multitud hablando", "Menschenmenge Gemurmel", "foule qui parle", ("crowd", "people", "walla")),
    "stream": (("stream", "small creek", "water flowing"),
        "arroyo", "Bach plätschert", "ruisseau", ("stream", "water", "creek")),
    "fire": (("fire crackling", "campfire", "fireplace crackle"),
        "fuego crepitando", "Lagerfeuer knistert", "feu qui crépite", ("fire", "crackle", "campfire")),
    "traffic": (("traffic", "street traffic", "cars passing by"),
        "tráfico", "Straßenverkehr", "circulation", ("traffic", "street", "city")),
    # ---- the sources added for a demo big enough to measure (names as uploaders write them)
    "viola": (("viola", "viola note", "solo viola"), "viola", "Bratsche", "alto", ("viola", "strings", "bowed")),
    "bass guitar": (("bass guitar", "electric bass", "bass guitar note"),
        "bajo electrico", "E-Bass", "guitare basse", ("bass-guitar", "electric-bass")),
    "ukulele": (("ukulele", "uke strum", "ukulele pluck"), "ukelele", "Ukulele", "ukulélé", ("ukulele", "plucked")),
    "banjo": (("banjo", "banjo pluck", "banjo note"), "banjo", "Banjo", "banjo", ("banjo", "bluegrass")),
    "mandolin": (("mandolin", "mandolin note"), "mandolina", "Mandoline", "mandoline", ("mandolin", "plucked")),
    "sitar": (("sitar", "sitar note", "sitar pluck"), "sitar", "Sitar", "sitar", ("sitar", "indian")),
    "harpsichord": (("harpsichord", "harpsichord note"), "clavecín", "Cembalo", "clavecin", ("harpsichord", "baroque")),
    "organ": (("organ", "pipe organ", "church organ chord"), "órgano", "Orgel", "orgue", ("organ", "keys")),
    "accordion": (("accordion", "accordion note"), "acordeón", "Akkordeon", "accordéon", ("accordion", "folk")),
    "harmonica": (("harmonica", "blues harmonica"), "armónica", "Mundharmonika", "harmonica", ("harmonica", "blues")),
    "bagpipe": (("bagpipes", "bagpipe drone", "highland bagpipe"), "gaita", "Dudelsack", "cornemuse", ("bagpipe", "scottish")),
    "didgeridoo": (("didgeridoo", "didgeridoo drone"), "didgeridoo", "Didgeridoo", "didgeridoo", ("didgeridoo", "drone")),
    "synthesizer": (("synthesizer", "synth pad", "analog synth"), "sintetizador", "Synthesizer", "synthétiseur", ("synth", "electronic")),
    "kalimba": (("kalimba", "kalimba note", "kalimba pluck"), "kalimba", "Kalimba", "kalimba", ("kalimba", "mbira")),
    "marimba": (("marimba", "marimba note"), "marimba", "Marimba", "marimba", ("marimba", "mallets")),
    "xylophone": (("xylophone", "xylophone note"), "xilófono", "Xylophon", "xylophone", ("xylophone", "mallets")),
    "glockenspiel": (("glockenspiel", "glockenspiel note"), "glockenspiel", "Glockenspiel", "glockenspiel", ("glockenspiel", "mallets")),
    "music box": (("music box", "music box melody"), "caja de música", "Spieluhr", "boîte à musique", ("music-box", "musicbox")),
    "timpani": (("timpani", "timpani roll", "timpani hit"), "timbales", "Pauke", "timbales", ("timpani", "orchestral")),
    "doorbell": (("doorbell", "doorbell ring", "doorbell chime"), "timbre", "Türklingel", "sonnette", ("doorbell", "chime")),
    "phone": (("phone ringing", "telephone ring", "old phone ringtone"), "teléfono", "Telefon klingelt", "téléphone", ("phone", "ringtone")),
    "car horn": (("car horn", "car horn honking", "klaxon"), "bocina", "Hupe", "klaxon", ("car-horn", "klaxon")),
    "glass": (("wine glass ting", "glass clink", "glass ping"), "copa", "Glas", "verre", ("glass", "clink")),
    "coin": (("coin drop", "coin spinning", "coins"), "moneda", "Münze", "pièce de monnaie", ("coin", "money")),
    "bottle": (("bottle blow", "blowing across a bottle", "bottle tone"), "botella", "Flasche", "bouteille", ("bottle", "blow")),
    "drill": (("power drill", "drill running", "electric drill"), "taladro", "Bohrmaschine", "perceuse", ("drill", "tool")),
    "chainsaw": (("chainsaw", "chainsaw running"), "motosierra", "Kettensäge", "tronçonneuse", ("chainsaw", "tool")),
    "vacuum cleaner": (("vacuum cleaner", "vacuum cleaner running"), "aspiradora", "Staubsauger", "aspirateur", ("vacuum-cleaner", "household")),
    "blender": (("blender", "kitchen blender running"), "licuadora", "Mixer Blender", "mixeur", ("blender", "appliance")),
    "hair dryer": (("hair dryer", "hairdryer on"), "secador", "Föhn", "sèche-cheveux", ("hairdryer", "appliance")),
    "fan": (("ceiling fan", "fan hum", "desk fan running"), "ventilador", "Ventilator", "ventilateur", ("fan", "hum")),
    "truck": (("truck idling", "lorry idling", "truck passing"), "camión", "LKW", "camion", ("truck", "lorry")),
    "motorcycle": (("motorcycle", "motorbike revving"), "moto", "Motorrad", "moto", ("motorcycle", "motorbike")),
    "hammer": (("hammer", "hammering a nail", "hammer hits"), "martillo", "Hammer", "marteau", ("hammer", "tool")),
    "thunder": (("thunder", "thunder rumble", "distant thunderstorm"), "trueno", "Donner", "tonnerre", ("thunder", "storm")),
    "waves": (("ocean waves", "waves on the beach", "sea waves"), "olas", "Wellen", "vagues", ("waves", "ocean", "sea")),
    "waterfall": (("waterfall", "small waterfall"), "cascada", "Wasserfall", "cascade", ("waterfall", "water")),
    "goat": (("goat", "goat calling", "goats"), "cabra", "Ziege", "chèvre", ("goat", "farm")),
    "pig": (("pig", "pigs in the barn", "piglet"), "cerdo", "Schwein", "cochon", ("pig", "farm")),
    "donkey": (("donkey", "donkey calling"), "burro", "Esel", "âne", ("donkey", "farm")),
    "goose": (("goose", "goose by the lake"), "ganso", "Gans", "oie", ("goose", "bird")),
    "pigeon": (("pigeon", "pigeons on the roof"), "paloma", "Taube", "pigeon", ("pigeon", "city")),
    "seagull": (("seagull", "gulls at the harbour"), "gaviota", "Möwe", "mouette", ("seagull", "coast")),
    "parrot": (("parrot", "pet parrot"), "loro", "Papagei", "perroquet", ("parrot", "pet")),
    "wolf": (("wolf", "wolf at night"), "lobo", "Wolf", "loup", ("wolf", "wild")),
    "tiger": (("tiger", "tiger at the zoo"), "tigre", "Tiger", "tigre", ("tiger", "zoo")),
    "monkey": (("monkey", "monkeys in the trees"), "mono", "Affe", "singe", ("monkey", "jungle")),
    "mosquito": (("mosquito", "mosquito flying by"), "mosquito", "Mücke", "moustique", ("mosquito", "insect")),
    "whale": (("whale", "humpback whale"), "ballena", "Wal", "baleine", ("whale", "ocean")),
}

# an animal clip's caption names one of its animal's sound words, so the animal task has many distinct sentences
# (each word belongs to one demo animal only: a sentence never has two answers)
_ONOMATOPOEIA: dict[str, tuple[str, ...]] = {
    "dog": ("woof", "bark", "arf", "ruff", "yip", "yap", "whimper"), "cat": ("meow", "miaow", "mew", "purr", "yowl"),
    "bird": ("chirp", "tweet", "twitter", "cheep", "warble", "peep"), "rooster": ("cockadoodledoo", "cluck", "cackle"),
    "duck": ("quack",), "goose": ("honk",), "owl": ("hoot", "hoo"), "crow": ("caw",), "pigeon": ("coo",),
    "seagull": ("squawk",), "parrot": ("screech",), "cow": ("moo", "bellow"), "horse": ("neigh", "whinny", "nicker", "snort"),
    "donkey": ("heehaw", "bray"), "sheep": ("baa", "bleat"), "goat": ("maa",), "pig": ("oink", "grunt", "squeal"),
    "frog": ("ribbit", "croak"), "cricket": ("chirr", "trill"), "mosquito": ("whine", "buzz"), "lion": ("roar",),
    "tiger": ("chuff", "growl"), "wolf": ("howl",), "monkey": ("chatter",), "whale": ("moan", "song"),
}

_GEAR = ("zoom h4n", "Zoom H1", "tascam dr-40", "Sony PCM-D50", "a Rode NT1-A into a Focusrite Scarlett", "my iphone",
         "Sennheiser MKH416", "Roland R-05", "zoom h6 + rode ntg2")
_PLACES_EN = ("living room", "kitchen", "garden", "backyard", "studio", "garage", "bedroom", "basement")
_PLACES_OUT = ("park", "farm", "village", "river", "city centre", "forest")
# how an English caption describes an instrument's timbre (each phrase names one instrument only; no word of it is a
# lexicon cue or source name). The instrument_recognition task reads them: "A [MASK] makes a bright, reedy sound."
_TIMBRE: dict[str, tuple[str, str]] = {
    "violin": ("sweet, silvery", "silvery, sweet"), "cello": ("rich, warm", "warm, resonant"),
    "double bass": ("dark, resonant", "dark, woody"), "flute": ("airy, breathy", "pure, airy"),
    "piccolo": ("bright, glassy", "glassy, brilliant"), "clarinet": ("mellow, woody", "hollow, woody"),
    "oboe": ("bright, reedy", "nasal, reedy"), "bassoon": ("dark, reedy", "buzzy, reedy"),
    "saxophone": ("breathy, smoky", "smoky, reedy"), "trumpet": ("brassy, brilliant", "bright, brassy"),
    "trombone": ("round, brassy", "warm, brassy"), "tuba": ("dark, round", "round, velvety"),
    "french horn": ("mellow, round", "warm, velvety"), "guitar": ("warm, twangy", "bright, twangy"),
    "piano": ("rich, ringing", "bright, ringing"), "harp": ("glassy, shimmering", "shimmering, pure"),
}
_ADJ = ("short", "loud", "distant", "close", "nice", "clean", "raw", "little", "long")
_STYLES = ("arco", "pizz", "legato", "staccato", "mf", "ff", "pp", "sustain", "vib", "nonvib")
_WHEN = ("summer", "weekend", "night", "morning", "winter")
_USER_A = ("klank", "field", "sound", "audio", "foley", "rec", "echo", "noise", "tone", "wave", "studio", "Inspector",
           "Sample", "Luft", "ambi", "Onda", "Son", "Ton")
_USER_B = ("beeld", "man", "hunter", "_fx", "works", "lab", "er", "J", "Swift", "", "_rec", "maker", "ista", "klang")


@dataclass
class _Clip:
    """One planned member pair (or a bad member) and its ground truth."""

    index: int
    freesound_id: int
    spec: SourceSpec
    folder: str  # "train_0" | "test"
    shard_index: int
    username: str
    lang: str
    license: str
    stereo: bool = False
    bad: str = ""
    same_audio_as: str = ""
    flac: bytes = b""
    json_bytes: bytes | None = b""
    truth: dict = field(default_factory=dict)

    @property
    def shard(self) -> str:
        return f"freesound/{self.folder}/{self.shard_index}.tar"

    @property
    def stem(self) -> str:
        split = "test" if self.folder == "test" else "train"
        return f"{_MEMBER_PREFIX}/{split}/{self.freesound_id}"


def encode_flac(audio: np.ndarray, sr: int) -> bytes:
    """FLAC bytes (16-bit) of float audio: float32[samples] or float32[samples, channels] at sr Hz. Deterministic."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _flac_header_len(data: bytes) -> int:
    """Bytes of the 'fLaC' marker plus all metadata blocks (where the first audio frame starts)."""
    pos = 4
    while pos + 4 <= len(data):
        last, length = data[pos] & 0x80, int.from_bytes(data[pos + 1:pos + 4], "big")
        pos += 4 + length
        if last:
            break
    return pos


def _largest_remainder(weights: list[float], n: int, min_each: int = 0) -> list[int]:
    """Split n into integer counts proportional to weights (largest remainder), each at least min_each when n allows."""
    w = np.asarray(weights, dtype=np.float64) / sum(weights)
    base = np.full(len(w), min_each if n >= min_each * len(w) else 0)
    rest = n - int(base.sum())
    raw = w * rest
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: rest - counts.sum()]] += 1
    return [int(c) for c in base + counts]


# ---------------------------------------------------------------- captions


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _write_caption(c: _Clip, rng: np.random.Generator, note: str) -> tuple[str, str, list[str]]:
    """(title, description, tags) written the way Freesound uploaders do, naming the clip's source."""
    en, es, de, fr, tag_words = _WORDS[c.spec.name]
    phrase = {"en": _pick(rng, en), "es": es, "de": de, "fr": fr}[c.lang]
    music = c.spec.category == "music"
    gear = _pick(rng, _GEAR)
    style = _pick(rng, _STYLES)
    base = c.spec.name.replace(" ", "_")
    # title: file-name-like half the time
    r = rng.uniform()
    if music and note and r < 0.5:
        title = _pick(rng, (f"{base}_{note}_{style}.wav", f"{base.title()} {note} {style}", f"{c.username}_{base}{note}.aif",
                            f"{base}-{note}-{int(rng.integers(1, 30)):02d}.wav"))
    elif r < 0.45:
        sep = _pick(rng, ("_", "-", " "))
        title = _pick(rng, (f"{phrase.replace(' ', sep)}.wav", f"{phrase.replace(' ', sep)}_{int(rng.integers(1, 99)):02d}.wav",
                            f"{phrase.replace(' ', '_')}_{int(rng.integers(2010, 2024))}{int(rng.integers(1, 13)):02d}.mp3"))
    else:
        title = _pick(rng, (phrase.title(), phrase, phrase.upper() + "!!", f"{phrase.capitalize()} {int(rng.integers(1, 9))}",
                            f"{phrase.title()} ({_pick(rng, _PLACES_OUT)})"))
    # description: empty for about one in ten
    if rng.uniform() < 0.1:
        description = ""
    elif c.lang == "es":
        description = _pick(rng, (f"{phrase.capitalize()} grabado en el {_pick(rng, ('jardín', 'estudio', 'campo', 'pueblo'))}. Grabado con {gear}.",
                                  f"Sonido de {phrase}. Libre para usar.", f"{phrase} - grabación de campo, {gear}"))
    elif c.lang == "de":
        description = _pick(rng, (f"{phrase} aufgenommen im {_pick(rng, ('Garten', 'Studio', 'Wald', 'Dorf'))}. Aufnahme mit {gear}.",
                                  f"Geräusch: {phrase}. Viel Spaß damit!", f"{phrase}, Feldaufnahme mit {gear}"))
    elif c.lang == "fr":
        description = _pick(rng, (f"{phrase.capitalize()} enregistré dans le {_pick(rng, ('jardin', 'studio', 'village', 'parc'))}. Enregistré avec un {gear}.",
                                  f"Son de {phrase}. Libre de droits.", f"{phrase}, prise de son avec {gear}"))
    elif music:
        # the timbre phrase is chosen by the clip's id, not drawn from rng: the rest of the corpus stays as it was
        timbre = f", a {_TIMBRE[c.spec.name][c.freesound_id % 2]} sound" if c.spec.name in _TIMBRE else ""
        description = _pick(rng, (
            f"{phrase.capitalize()} playing {note or 'a note'}, {style}{timbre}. Recorded with {gear}.",
            f"single {phrase} note ({note}) from my sample library{timbre}. 24bit/48khz, normalized.",
            f"A {_pick(rng, _ADJ)} {phrase} tone, {style}{timbre}. part of a multisample pack",
            f"{phrase} {note} {style}{timbre} - recorded in my {_pick(rng, _PLACES_EN)} with {gear}. please credit if you use it :)",
        ))
    else:
        description = _pick(rng, (
            f"{phrase.capitalize()} recorded in my {_pick(rng, _PLACES_EN)}. Recorded with {gear}.",
            f"A {_pick(rng, _ADJ)} {phrase}. Recorded with {gear}, no processing.",
            f"field recording: {phrase} near the {_pick(rng, _PLACES_OUT)}. {_pick(rng, _WHEN)} {int(rng.integers(2010, 2024))}",
            f"Some {phrase} I recorded last {_pick(rng, _WHEN)}. Feel free to use it!",
            f"{phrase}, close mic. cut and normalized in audacity",
        ))
    if c.spec.name in _ONOMATOPOEIA:  # the sound word first, chosen by the clip's id (the rng draws stay as they were)
        words = _ONOMATOPOEIA[c.spec.name]
        ono = words[c.freesound_id % len(words)]
        title = f"{ono.capitalize()} {ono} - {title}"
    tags = list(tag_words[: int(rng.integers(1, len(tag_words) + 1))])
    extra = ["field-recording", "zoom", "h4n", "48khz", "sfx", "foley", "sound-effect", "recording", "mono", "stereo"]
    tags += [extra[i] for i in sorted(rng.choice(len(extra), size=int(rng.integers(0, 4)), replace=False))]
    if music and note:
        tags += [note.lower(), "note", "multisample"]
    if c.lang != "en":
        tags.append(phrase.split()[0].lower())
    return title, description, list(dict.fromkeys(tags))


def _caption_json(c: _Clip, title: str, description: str, tags: list[str]) -> dict:
    """The LAION Freesound JSON of one clip: text = [title + ".", first description sentence]."""
    text = [f"{title}."] if title else []
    first = description.replace("\n", " ").split(". ")[0].strip()
    if first:
        text.append(first if first.endswith(".") else first + ".")
    return {
        "text": text,
        "tag": tags,
        "original_data": {
            "tags": tags,
            "description": description,
            "username": c.username,
            "download_url": f"https://freesound.org/apiv2/sounds/{c.freesound_id}/download/",
            "title": title,
            "id": c.freesound_id,
        },
    }


# ---------------------------------------------------------------- planning


def _layout(n_clips: int, n_shards: int) -> list[tuple[str, int, int]]:
    """(folder, shard index, clips) per shard: train_0 first, then at least one test shard."""
    n_test = max(1, int(round(n_shards * 0.2)))
    folders = [("train_0", i) for i in range(n_shards - n_test)] + [("test", i) for i in range(n_test)]
    sizes = [len(a) for a in np.array_split(np.arange(n_clips), n_shards)]
    return [(f, i, s) for (f, i), s in zip(folders, sizes)]


def _plan(seed: int, n_clips: int, n_shards: int) -> list[_Clip]:
    rng = np.random.default_rng([seed, 0])
    n_new_ids = n_clips + len(_BAD_KINDS) - 1  # every bad member but the duplicate id gets its own id
    ids = (rng.choice(990_000, size=n_new_ids, replace=False) + 10_000).tolist()
    users = []
    for u in range(max(8, n_clips // 6)):  # uploaders write in their own language: one each of es, de, fr at least
        name = _pick(rng, _USER_A) + _pick(rng, _USER_B) + (str(int(rng.integers(1, 999))) if rng.uniform() < 0.4 else "")
        lang = ("es", "de", "fr")[u] if u < 3 else _pick(rng, ("en",) * 16 + ("es", "es", "de", "de", "fr"))
        users.append((name, lang))
    # sources: every source once per round (an animal once per sound word it has), shuffled each round
    pool = [spec for spec in SOURCES for _ in range(len(_ONOMATOPOEIA.get(spec.name, ("",))))]
    order: list[SourceSpec] = []
    while len(order) < n_clips:
        order += [pool[i] for i in rng.permutation(len(pool))]
    order = order[:n_clips]
    # licences: the real mix as exact quotas, shuffled; two non-CC and one empty planted among the good clips
    counts = _largest_remainder([w for _, w in LICENSE_MIX], n_clips - 3, min_each=1)
    licenses = [lic for (lic, _), k in zip(LICENSE_MIX, counts) for _ in range(k)] + list(_NON_CC_LICENSES) + [""]
    licenses = [licenses[i] for i in rng.permutation(len(licenses))]
    stereo = rng.uniform(size=n_clips) < 0.04
    clips: list[_Clip] = []
    i = 0
    for folder, shard_index, size in _layout(n_clips, n_shards):
        for _ in range(size):
            user, lang = users[int(rng.integers(len(users)))]
            clips.append(_Clip(i, ids[i], order[i], folder, shard_index, user, lang, licenses[i], stereo=bool(stereo[i])))
            i += 1
    # the bad members, each in a shard of its own turn (duplicate_id goes to a different shard than its original)
    layout = _layout(n_clips, n_shards)
    bad_sources = {"corrupt_flac": "violin", "empty_caption": "rain", "silent": "tuning fork", "empty_audio": "dog",
                   "bad_json": "bell", "missing_json": "owl"}
    next_id = n_clips
    for j, kind in enumerate(_BAD_KINDS):
        folder, shard_index, _ = layout[j % len(layout)]
        user, lang = users[int(rng.integers(len(users)))]
        if kind == "duplicate_id":
            orig = clips[int(rng.integers(0, layout[0][2]))]  # a clip of the first train shard
            folder, shard_index = layout[-1][0], layout[-1][1]
            clips.append(_Clip(len(clips), orig.freesound_id, orig.spec, folder, shard_index, orig.username, orig.lang,
                               orig.license, bad=kind, same_audio_as=f"freesound/{orig.freesound_id}"))
            continue
        if kind == "duplicate_audio":
            orig = clips[int(rng.integers(0, n_clips))]
            clips.append(_Clip(len(clips), ids[next_id], orig.spec, folder, shard_index, user, orig.lang,
                               LICENSE_MIX[0][0], bad=kind, same_audio_as=f"freesound/{orig.freesound_id}"))
        else:
            clips.append(_Clip(len(clips), ids[next_id], source_spec(bad_sources[kind]), folder, shard_index, user, lang,
                               LICENSE_MIX[0][0], bad=kind))
        next_id += 1
    return clips


# ---------------------------------------------------------------- rendering


def _render(c: _Clip, seed: int, sr: int, by_id: dict[str, _Clip]) -> None:
    """Fill c.flac, c.json_bytes and c.truth (deterministic from seed and the clip's index)."""
    rng = np.random.default_rng([seed, 1, c.index])
    spec = c.spec
    if c.bad in ("duplicate_id", "duplicate_audio"):
        orig = by_id[c.same_audio_as]
        c.flac = orig.flac
        c.truth = dict(orig.truth)
        if c.bad == "duplicate_id":
            c.json_bytes = orig.json_bytes
        else:
            title, description, tags = _write_caption(c, rng, orig.truth["note"])
            c.json_bytes = json.dumps(_caption_json(c, title, description, tags), ensure_ascii=False).encode("utf-8")
        return
    if c.bad == "silent":
        audio = np.zeros(int(2.0 * sr), dtype=np.float32)
        truth = dict(pitched=False, pitch_kind="none", f0_hz=math.nan, f0_median_hz=math.nan, f0_spread_cents=math.nan,
                     duration_s=2.0, gain_db=math.nan, level_dbfs=-math.inf,
                     centroid_hz=math.nan, channels=1, vibrato=False, weak_fundamental=False, note="")
    else:
        clip = render_source(spec, rng, sr)
        gain_db = float(rng.uniform(-6, 6))
        audio = set_level(clip.audio, spec.level_dbfs + gain_db, rng)
        if c.stereo:
            delay = int(0.0003 * sr)
            right = np.concatenate([np.zeros(delay, np.float32), audio[:-delay]]) * np.float32(0.8)
            audio = np.stack([audio, right], axis=1)
        level = measure_level_dbfs(audio)
        truth = dict(pitched=clip.pitch_kind in ("steady", "vibrato"), pitch_kind=clip.pitch_kind, f0_hz=clip.f0_hz,
                     f0_median_hz=clip.f0_median_hz, f0_spread_cents=clip.f0_spread_cents, duration_s=clip.duration_s,
                     gain_db=level - spec.level_dbfs, level_dbfs=level, centroid_hz=measure_centroid_hz(audio, sr),
                     channels=2 if c.stereo else 1, vibrato=clip.vibrato, weak_fundamental=clip.weak_fundamental,
                     note=clip.note)
    flac = encode_flac(audio, sr)
    if c.bad == "corrupt_flac":  # a valid header, then garbage where the frames should be
        head = _flac_header_len(flac)
        flac = flac[:head] + rng.integers(0, 256, size=max(len(flac) - head, 4096) // 2, dtype=np.uint8).tobytes()
    elif c.bad == "empty_audio":
        flac = b""
    c.flac = flac
    title, description, tags = _write_caption(c, rng, truth["note"])
    if c.bad == "empty_caption":
        title, description, tags = "", "", []
    obj = _caption_json(c, title, description, tags)
    if c.bad == "empty_caption":
        obj["text"] = []
    data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    if c.bad == "bad_json":
        data = data[: len(data) // 2]  # truncated mid-object
    c.json_bytes = None if c.bad == "missing_json" else data
    truth.update(category=spec.category, source_name=spec.name, typical_level_dbfs=spec.level_dbfs,
                 typical_duration_s=spec.duration_s, sample_rate=sr)
    c.truth = truth


# ---------------------------------------------------------------- writing


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = size, 0, 0o644, 0, 0, "", ""
    return ti


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    """A tar of (name, bytes) members in the given order: mtime 0, uid/gid 0, GNU format (byte-reproducible)."""
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
            for name, data in members:
                tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))


def _write_meta_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(META_COLUMNS), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)


def _meta_row(c: _Clip) -> dict:
    j = json.loads(c.json_bytes) if c.json_bytes and c.bad != "bad_json" else {"text": []}
    text = j.get("text", [])
    return {
        "audio_filename": f"{c.freesound_id}.flac",
        "caption1": text[0] if text else "",
        "caption2": text[1] if len(text) > 1 else "",
        "freesound_id": c.freesound_id,
        "username": c.username,
        "freesound_url": f"https://freesound.org/people/{c.username}/sounds/{c.freesound_id}/",
        "license": c.license,
    }


def _remove_stale(root: Path, keep: set[str]) -> None:
    """Delete shards and sizes.json left by an earlier build with other params (only files this module writes)."""
    corpus = root / "freesound"
    if not corpus.is_dir():
        return
    for p in sorted(corpus.glob("*/*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and (p.suffix == ".tar" or p.name == "sizes.json") and rel not in keep:
            p.unlink()


def build_demo_corpus(root: Path, seed: int, n_clips: int, n_shards: int, sample_rate: int = 48000,
                      quiet: bool = False) -> Path:
    """Synthesise the demo corpus under root (see the module docstring) and return root/"freesound".

    n_clips good clips are spread over n_shards shards (train_0/… then ≥ 1 test shard), plus 8 bad members.
    A second call with the same params and code finds the manifest fresh and does nothing.
    """
    root = Path(root)
    if n_shards < 2:
        raise ConfigError(f"demo_corpus.n_shards = {n_shards}: need at least 2 (one train and one test shard)")
    if n_clips < _MIN_CLIPS:
        raise ConfigError(f"demo_corpus.n_clips = {n_clips}: need at least {_MIN_CLIPS} to plant every bad member")
    if n_clips < n_shards:
        raise ConfigError(f"demo_corpus.n_clips = {n_clips} is fewer than n_shards = {n_shards}")
    if sample_rate < 16000:
        raise ConfigError(f"demo_corpus.sample_rate = {sample_rate}: need at least 16000 Hz")
    params = {"seed": int(seed), "n_clips": int(n_clips), "n_shards": int(n_shards), "sample_rate": int(sample_rate)}
    run = StageRun(name="corpus", out_dir=root, params=params,
                   code=code_hash("pipeline.demo.corpus"), quiet=quiet)
    corpus = root / "freesound"
    if run.fresh():
        return corpus

    clips = _plan(seed, n_clips, n_shards)
    by_id: dict[str, _Clip] = {}
    for c in tqdm(clips, desc="demo corpus", unit="clip", disable=quiet):
        _render(c, seed, sample_rate, by_id)
        if not c.bad:
            by_id[f"freesound/{c.freesound_id}"] = c

    # shards: members in plan order, bad members inserted at a seeded position within their shard
    rng = np.random.default_rng([seed, 2])
    shards: dict[str, list[_Clip]] = {}
    for c in clips:
        lst = shards.setdefault(c.shard, [])
        if c.bad:
            lst.insert(int(rng.integers(0, len(lst) + 1)), c)
        else:
            lst.append(c)
    sizes: dict[str, dict[str, int]] = {}
    written = set()
    for shard, members in shards.items():
        pairs: list[tuple[str, bytes]] = []
        for c in members:
            pairs.append((f"{c.stem}.flac", c.flac))
            if c.json_bytes is not None:
                pairs.append((f"{c.stem}.json", c.json_bytes))
        _write_tar(root / shard, pairs)
        run.record_output(shard)
        written.add(shard)
        folder, name = shard.rsplit("/", 1)
        sizes.setdefault(folder, {})[name] = len(members)
    for folder, s in sorted(sizes.items()):
        run.write_json(f"{folder}/sizes.json", s)
        written.add(f"{folder}/sizes.json")
    _remove_stale(root, written)

    meta = {c.freesound_id: _meta_row(c) for c in clips if c.bad != "duplicate_id"}
    _write_meta_csv(root / "freesound_meta.csv", [meta[k] for k in sorted(meta)])
    run.record_output("freesound_meta.csv")

    rows = []
    for c in clips:
        t = c.truth
        rows.append({
            "clip_id": f"freesound/{c.freesound_id}", "freesound_id": c.freesound_id, "shard": c.shard,
            "member": f"{c.stem}.flac", **{k: t.get(k) for k in GROUND_TRUTH_COLUMNS if k in t},
            "lang": c.lang, "license": c.license, "bad": c.bad, "same_audio_as": c.same_audio_as,
        })
    gt = pd.DataFrame(rows, columns=list(GROUND_TRUTH_COLUMNS))
    with atomic_path(root / "ground_truth.csv") as tmp:
        gt.to_csv(tmp, index=False, float_format="%.6g", na_rep="nan", lineterminator="\n")
    run.record_output("ground_truth.csv")

    bad_counts = {k: int(sum(c.bad == k for c in clips)) for k in _BAD_KINDS}
    run.finish({"kept": n_clips, "rejected": bad_counts},
               extra={"shards": {k: v for k, v in sorted(sizes.items())}, "n_members": len(clips)})
    if not quiet:
        log(f"[corpus] {len(clips)} clips in {len(shards)} shards under {corpus}")
    return corpus


def build_bench_shards(root: Path, n_shards: int, mb_per_shard: float, seed: int = 0) -> Path:
    """Shards of at least mb_per_shard MiB each in the demo format (+ freesound_meta.csv), for the reader's memory
    benchmark. A pool of 8 FLAC payloads is encoded once and reused under different ids. Returns root/"freesound"."""
    if n_shards < 1 or mb_per_shard <= 0:
        raise ConfigError(f"bench shards: n_shards = {n_shards} and mb_per_shard = {mb_per_shard} must be positive")
    root = Path(root)
    sr = 48000
    pool_names = ("rain", "crowd", "stream", "fire", "violin", "bird", "traffic", "dog")
    pool = []
    for k, name in enumerate(pool_names):
        spec = source_spec(name)
        rng = np.random.default_rng([seed, 3, k])
        clip = render_source(spec, rng, sr, duration_s=4.0)
        flac = encode_flac(set_level(clip.audio, spec.level_dbfs, rng), sr)
        pool.append((spec, flac))
    target = int(mb_per_shard * (1 << 20))
    id_rng = np.random.default_rng([seed, 4])
    next_id = 100_000 + int(id_rng.integers(0, 1000))
    meta_rows, sizes = [], {}
    for s in range(n_shards):
        pairs: list[tuple[str, bytes]] = []
        total, n = 1024, 0  # tar end-of-archive blocks
        while total < target:
            spec, flac = pool[n % len(pool)]
            fid = next_id
            next_id += int(id_rng.integers(1, 40))
            phrase = _WORDS[spec.name][0][n % len(_WORDS[spec.name][0])]
            title = f"{phrase.replace(' ', '_')}_{fid % 100:02d}.wav"
            obj = {"text": [f"{title}.", f"{phrase.capitalize()} recorded with zoom h4n."], "tag": list(_WORDS[spec.name][4]),
                   "original_data": {"tags": list(_WORDS[spec.name][4]), "description": f"{phrase.capitalize()} recorded with zoom h4n.",
                                     "username": "benchuser", "download_url": f"https://freesound.org/apiv2/sounds/{fid}/download/",
                                     "title": title, "id": fid}}
            js = json.dumps(obj).encode("utf-8")
            stem = f"{_MEMBER_PREFIX}/train/{fid}"
            pairs += [(f"{stem}.flac", flac), (f"{stem}.json", js)]
            total += 512 + -(-len(flac) // 512) * 512 + 512 + -(-len(js) // 512) * 512
            meta_rows.append({"audio_filename": f"{fid}.flac", "caption1": obj["text"][0], "caption2": obj["text"][1],
                              "freesound_id": fid, "username": "benchuser",
                              "freesound_url": f"https://freesound.org/people/benchuser/sounds/{fid}/",
                              "license": LICENSE_MIX[n % len(LICENSE_MIX)][0]})
            n += 1
        _write_tar(root / "freesound" / "train_0" / f"{s}.tar", pairs)
        sizes[f"{s}.tar"] = n
    write_json(sizes, root / "freesound" / "train_0" / "sizes.json")
    _write_meta_csv(root / "freesound_meta.csv", meta_rows)
    return root / "freesound"
