"""Read Wikipedia page text: notes in scientific pitch notation, instrument and voice ranges, animal sounds.

Pure functions over strings, no I/O. Notes are 12-tone equal temperament with A4 = 440 Hz and
C4 = middle C (MIDI 60); octave numbers may be negative (C-1 = MIDI 0) or written as subscripts (C₄).

    parse_note("E2")   -> 82.41 Hz        parse_note("C♯7") -> 2217.46 Hz
    extract_range("The violin's range is from G3 to A7.") -> ("G3", "A7")
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from benchmark.errors import InputError

__all__ = [
    "A4_HZ",
    "RangeMatch",
    "note_to_midi",
    "midi_to_note",
    "parse_note",
    "find_range",
    "extract_range",
    "find_transposition",
    "parse_animal_sounds",
    "parse_animal_sound_line",
]

A4_HZ = 440.0
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTAL = {"♯": 1, "#": 1, "♭": -1, "b": -1, "𝄪": 2, "𝄫": -2, "♮": 0}
_SUBSCRIPT = str.maketrans("₀₁₂₃₄₅₆₇₈₉₋", "0123456789-")
_MINUS = str.maketrans({"−": "-", "–": "-", "‐": "-"})
_NOTE_RE = re.compile(r"^([A-Ga-g])([♯#♭b𝄪𝄫♮]{0,2})(-?\d{1,2})$")
_SHARP_NAMES = ["C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B"]
_FLAT_NAMES = ["C", "D♭", "D", "E♭", "E", "F", "G♭", "G", "A♭", "A", "B♭", "B"]


def note_to_midi(note: str) -> int:
    """MIDI number of a note in scientific pitch notation ("E2" -> 40, "C-1" -> 0, "B♭1" -> 34, "C₄" -> 60).

    Accepts ♯ ♭ 𝄪 𝄫 and the ASCII # and b, subscript digits and a Unicode minus. Raises InputError otherwise."""
    s = note.strip().translate(_SUBSCRIPT).translate(_MINUS).replace(" ", "")
    m = _NOTE_RE.match(s)
    if not m:
        raise InputError(f"note {note!r}: not scientific pitch notation (letter, accidentals, octave number)")
    letter, accidentals, octave = m.groups()
    semis = _PITCH_CLASS[letter.upper()] + sum(_ACCIDENTAL[a] for a in accidentals)
    midi = 12 * (int(octave) + 1) + semis
    if not 0 <= midi <= 135:
        raise InputError(f"note {note!r}: outside the range C-1 .. B9 of scientific pitch notation")
    return midi


def midi_to_note(midi: int, flats: bool = True) -> str:
    """Note name of a MIDI number in scientific pitch notation (34 -> "B♭1", or "A♯1" with flats=False)."""
    names = _FLAT_NAMES if flats else _SHARP_NAMES
    return f"{names[midi % 12]}{midi // 12 - 1}"


def parse_note(note: str) -> float:
    """Frequency in Hz of a note in scientific pitch notation, 12-TET with A4 = 440 Hz ("A0" -> 27.5)."""
    return A4_HZ * 2.0 ** ((note_to_midi(note) - 69) / 12.0)


# ---------------------------------------------------------------- ranges in page text

# A note as it appears in running text: capital letter, optional accidentals, octave (maybe negative or subscript).
_TEXT_NOTE = re.compile(r"(?<![A-Za-z0-9♯♭#])([A-G](?:[♯#♭𝄪𝄫]|b(?=-?\d)){0,2}(?:-?\d{1,2}))(?![0-9A-Za-z])")
_RANGE_WORDS = re.compile(r"\b(range|ranges|compass|tessitura|extends?|extending|spans?|lowest|highest|down to|up to)\b", re.I)
_STRONG_WORDS = re.compile(r"\b(range|ranges|compass|tessitura)\b", re.I)
_SPAN_PATTERN = re.compile(r"(?:from|between)\s+\S*?\s*NOTE|NOTE\s*(?:[–—-]|to|and|up to)\s*NOTE".replace("NOTE", r"[A-G][^\s]{0,4}\d"))
_FROM_TO = re.compile(r"\bfrom\s+[A-G][^\s,;]{0,4}\d\s+(?:up\s+)?to\s+[A-G][^\s,;]{0,4}\d")
_TUNING = re.compile(r"\b(tuned|tuning|tunings)\b", re.I)
_WRITTEN = re.compile(r"\bwritten\b", re.I)
_SOUNDING = re.compile(r"\b(sounding range|sounds? from|sounding from|concert pitch range)\b", re.I)

_INTERVAL_SEMITONES = {
    "minor second": 1, "major second": 2, "whole tone": 2, "whole step": 2, "minor third": 3, "major third": 4,
    "perfect fourth": 5, "fourth": 5, "perfect fifth": 7, "fifth": 7, "minor sixth": 8, "major sixth": 9,
    "minor seventh": 10, "major seventh": 11, "octave": 12, "minor ninth": 13, "major ninth": 14,
    "two octaves": 24, "two octaves and a major second": 26, "octave and a major sixth": 21,
    "two octaves and a major sixth": 33,
}
_TRANSPOSE_RE = re.compile(
    r"\bsound(?:s|ing)?\s+(?:an?\s+|one\s+)?(?P<interval>"
    + "|".join(sorted((re.escape(k) for k in _INTERVAL_SEMITONES), key=len, reverse=True))
    + r")\s+(?P<dir>lower|higher|below|above)",
    re.I,
)


@dataclass(frozen=True)
class RangeMatch:
    """A range found in page text. Notes are sounding pitch; written_* are as printed when the page
    gave a written range of a transposing instrument (then transposition_semitones != 0)."""

    low_note: str
    high_note: str
    written_low_note: str
    written_high_note: str
    transposition_semitones: int  # sounding = written + this (e.g. -12 for "sounds an octave lower")
    sentence: str  # the sentence the range came from
    transposition_remark: str = ""  # the phrase that gave the transposition, "" when none applied


def _sentences(text: str) -> list[str]:
    """Split page text into sentences (on . ! ? ; followed by space and newlines), keeping the text of each."""
    out = []
    for para in re.split(r"\n+", text):
        para = para.strip()
        if not para or para.startswith("="):
            continue
        out.extend(s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(\"'])", para) if s.strip())
    return out


def _notes_in(sentence: str) -> list[str]:
    found = []
    for m in _TEXT_NOTE.finditer(sentence.translate(_SUBSCRIPT).translate(_MINUS)):
        try:
            note_to_midi(m.group(1))
        except InputError:
            continue
        found.append(m.group(1))
    return found


def find_transposition(text: str) -> tuple[int, str]:
    """The first "sounds an octave lower" style remark in the text, as (semitones sounding - written, phrase);
    (0, "") when the text has none."""
    m = _TRANSPOSE_RE.search(text)
    if not m:
        return 0, ""
    semis = _INTERVAL_SEMITONES[m.group("interval").lower()]
    sign = -1 if m.group("dir").lower() in ("lower", "below") else 1
    return sign * semis, m.group(0)


def find_range(page_text: str, subject: str = "", require_subject: bool = False) -> RangeMatch | None:
    """The instrument's or voice's range in a page's plain text, or None when no sentence gives one.

    Looks at sentences that speak of a range ("range", "compass", "extends", "lowest", ...) and hold at
    least two notes; prefers sentences that say "range" and that join two notes ("from G3 to A7", "G3–A7"),
    then the earliest. The lowest and highest notes of that sentence are the range. When that sentence
    calls the range "written" and the page says how the instrument sounds ("sounds an octave lower"),
    the notes are moved to sounding pitch; this is a plain reading of the text, not music theory.

    subject: a name ("alto recorder") whose sentences are preferred; with require_subject, only sentences
    that name it count (for pages that give the ranges of several instruments)."""
    best: tuple[tuple[int, int], str, list[str]] | None = None
    for i, sent in enumerate(_sentences(page_text)):
        plain = sent.translate(_SUBSCRIPT).translate(_MINUS)
        strong, spans = bool(_STRONG_WORDS.search(sent)), bool(_SPAN_PATTERN.search(plain))
        if not (_RANGE_WORDS.search(sent) or _FROM_TO.search(plain)):
            continue
        if _TUNING.search(sent) and not strong:
            continue  # "tuned G3, D4, A4, E5" lists open strings, not a range
        notes = _notes_in(sent)
        if len(notes) < 2:
            continue
        names_subject = bool(subject) and subject.lower() in sent.lower()
        if require_subject and not names_subject:
            continue
        score = (4 if names_subject else 0) + (2 if strong else 0) + (1 if spans else 0)
        key = (-score, i)
        if best is None or key < best[0]:
            best = (key, sent, notes)
    if best is None:
        return None
    _, sent, notes = best
    midis = [note_to_midi(n) for n in notes]
    low_w, high_w = notes[midis.index(min(midis))], notes[midis.index(max(midis))]
    shift, remark = 0, ""
    if _WRITTEN.search(sent) and not _SOUNDING.search(sent):
        own_shift, own_remark = find_transposition(sent)
        shift, remark = (own_shift, own_remark) if own_remark else find_transposition(page_text)
    if shift:
        low = midi_to_note(min(midis) + shift, flats="♯" not in low_w and "#" not in low_w)
        high = midi_to_note(max(midis) + shift, flats="♯" not in high_w and "#" not in high_w)
    else:
        low, high = _canonical(low_w), _canonical(high_w)
    return RangeMatch(low, high, _canonical(low_w), _canonical(high_w), shift, sent, remark)


def extract_range(page_text: str, subject: str = "") -> tuple[str, str] | None:
    """(lowest note, highest note) at sounding pitch from a page's plain text, or None; see find_range."""
    m = find_range(page_text, subject)
    return None if m is None else (m.low_note, m.high_note)


def _canonical(note: str) -> str:
    """A note written with Unicode accidentals and ASCII digits ("Bb1" -> "B♭1", "C#7" -> "C♯7")."""
    s = note.translate(_SUBSCRIPT).translate(_MINUS)
    return s[0] + s[1:].replace("#", "♯").replace("b", "♭")


# ---------------------------------------------------------------- the list of animal sounds

_LINK = re.compile(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]")
_LINK_TARGET = re.compile(r"\[\[([^|\]#]*)(?:#[^|\]]*)?(?:\|[^\]]*)?\]\]")
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S)
_TAG = re.compile(r"<[^>]+>")
_LINE = re.compile(r"^\s*[*#]?\s*(?P<animal>[A-Za-z][A-Za-z '\-]*?)\s*(?::|–|—|\s-\s|\t)\s*(?P<sounds>.+?)\s*$")
_SPLIT_SOUNDS = re.compile(r"\s*(?:,|;|/|\bor\b|\band\b)\s*")


def _clean_cell(cell: str) -> str:
    s = _REF.sub("", cell)
    for _ in range(3):
        s = _TEMPLATE.sub("", s)
    s = _LINK.sub(r"\1", s)
    s = _TAG.sub("", s).replace("'''", "").replace("''", "")
    s = re.sub(r"\([^)]*\)", "", s)  # "(of a puppy)" style asides
    return re.sub(r"\s+", " ", s).strip()


def _split_sounds(cell: str) -> list[str]:
    sounds = []
    for part in _SPLIT_SOUNDS.split(_clean_cell(cell)):
        word = part.strip(" .\"'“”‘’").lower()
        if word and len(word) <= 40 and re.fullmatch(r"[a-z][a-z '\-]*", word) and word not in sounds:
            sounds.append(word)
    return sounds


def parse_animal_sound_line(line: str) -> tuple[str, list[str]] | None:
    """One plain-text line "Owl – hoot, screech" (or "Owl: hoot") as ("owl", ["hoot", "screech"]); None otherwise."""
    m = _LINE.match(_clean_cell(line) if "[[" in line or "{{" in line else line)
    if not m:
        return None
    sounds = _split_sounds(m.group("sounds"))
    animal = m.group("animal").strip().lower()
    if len(animal.split()) > 3:
        return None
    return (animal, sounds) if sounds else None


def _table_rows(wikitext: str) -> list[list[str]]:
    """Rows of the wikitables in a page's wikitext, header rows included, as lists of raw cells."""
    rows: list[list[str]] = []
    in_table, cur = False, []
    for raw in wikitext.splitlines():
        line = raw.strip()
        if line.startswith("{|"):
            in_table, cur = True, []
            continue
        if not in_table:
            continue
        if line.startswith("|}") or line.startswith("|-"):
            if cur:
                rows.append(cur)
            cur = []
            if line.startswith("|}"):
                in_table = False
            continue
        if line.startswith("|+"):
            continue
        if line.startswith("!") or line.startswith("|"):
            sep = "!!" if line.startswith("!") else "||"
            marker = "!" if line.startswith("!") else "|"
            for cell in line[1:].split(sep):
                if "|" in cell and not cell.strip().startswith("[[") and "[[" not in cell.split("|")[0]:
                    attrs, _, rest = cell.partition("|")  # 'style="..." | text'
                    if "=" in attrs:
                        cell = rest
                cur.append(marker + cell.strip())
        elif cur:
            cur[-1] += " " + line
    if cur:
        rows.append(cur)
    return rows


def parse_animal_sounds(page_text: str) -> list[tuple[str, list[str]]]:
    """Animals and their sounds from the "List of animal sounds" page, in page order.

    Reads wikitables (a header row with an "Animal" column and a "Sound"/"Onomatopoeia"/"Call" column)
    and, outside tables, lines like "Owl – hoot, screech". Names and sounds are lower-case; an animal
    listed twice keeps the union of its sounds."""
    found: dict[str, list[str]] = {}

    def add(animal: str, sounds: list[str]) -> None:
        animal = _clean_cell(animal).lower().strip(" .")
        if not animal or not sounds:
            return
        have = found.setdefault(animal, [])
        have.extend(s for s in sounds if s not in have)

    def animal_name(cell: str) -> str:
        links = _LINK_TARGET.findall(cell)
        only_link = len(links) == 1 and not _clean_cell(_LINK.sub("", cell)).strip()
        return links[0] if only_link else cell  # "[[Cat|Domestic cat]]" names the animal "cat"

    animal_col = sound_col = None
    for row in _table_rows(page_text):
        if all(c.startswith("!") for c in row):
            heads = [_clean_cell(c[1:]).lower() for c in row]
            animal_col = next((i for i, h in enumerate(heads) if "animal" in h), None)
            sound_col = next(
                (i for i, h in enumerate(heads) if i != animal_col and re.search(r"sound|onomatopoeia|call|noise", h)), None
            )
            continue
        if animal_col is None or sound_col is None or len(row) <= max(animal_col, sound_col):
            continue
        add(animal_name(row[animal_col][1:]), _split_sounds(row[sound_col][1:]))

    outside = re.sub(r"\{\|.*?\n\|\}", "", page_text, flags=re.S)
    for line in outside.splitlines():
        if line.strip().startswith(("=", "{", "|", "!")):
            continue
        parsed = parse_animal_sound_line(line)
        if parsed:
            add(*parsed)
    return list(found.items())
