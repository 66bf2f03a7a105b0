"""The wiki parser: notes in scientific pitch notation, ranges in page text, the list of animal sounds."""

from pathlib import Path

import pytest

from benchmark.errors import InputError
from pipeline.wiki.parser import (
    extract_range,
    find_range,
    find_transposition,
    midi_to_note,
    note_to_midi,
    parse_animal_sound_line,
    parse_animal_sounds,
    parse_note,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wiki"


def _text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "note, hz",
    [
        ("E2", 82.4069),
        ("A4", 440.0),
        ("A0", 27.5),
        ("C♯7", 2217.4610),
        ("C#7", 2217.4610),
        ("D♭7", 2217.4610),
        ("B♭1", 58.2705),
        ("Bb1", 58.2705),
        ("C4", 261.6256),
        ("C₄", 261.6256),
        ("C-1", 8.1758),
        ("C₋₁", 8.1758),
        ("E−1", 10.3009),
        ("C8", 4186.0090),
        ("B𝄫3", 220.0),
    ],
)
def test_parse_note_gives_12tet_hz_with_a4_440(note, hz):
    assert parse_note(note) == pytest.approx(hz, abs=1e-3)


def test_octave_and_semitone_steps_are_exact_ratios():
    assert parse_note("A5") / parse_note("A4") == pytest.approx(2.0)
    assert parse_note("A♯4") / parse_note("A4") == pytest.approx(2 ** (1 / 12))
    assert note_to_midi("C-1") == 0 and note_to_midi("G9") == 127


@pytest.mark.parametrize("bad", ["H4", "C", "4", "Cx4", "C#b#4", "A440", ""])
def test_parse_note_rejects_non_notes(bad):
    with pytest.raises(InputError):
        parse_note(bad)


def test_midi_to_note_round_trips():
    for midi in range(0, 128):
        assert note_to_midi(midi_to_note(midi)) == midi
        assert note_to_midi(midi_to_note(midi, flats=False)) == midi
    assert midi_to_note(34) == "B♭1" and midi_to_note(34, flats=False) == "A♯1"


@pytest.mark.parametrize(
    "fixture, expected",
    [
        ("violin.txt", ("G3", "C8")),  # the open-string tuning sentences before it are not a range
        ("soprano.txt", ("C4", "C6")),  # several notes in one sentence: lowest and highest
        ("piano.txt", ("A0", "C8")),  # subscript octaves, "from .. to .." without the word range
        ("bassoon.txt", ("B♭1", "E5")),  # ASCII flat, "begins at .. roughly to .."
        ("clarinet.txt", ("D3", "B♭6")),  # written E3..C7, "sounds a major second lower"
        ("double_bass.txt", ("E1", "G4")),  # written E2–G5, "sounds one octave lower"
    ],
)
def test_extract_range_from_page_fixtures(fixture, expected):
    assert extract_range(_text(fixture)) == expected


def test_written_range_keeps_what_the_page_printed_and_the_remark():
    m = find_range(_text("clarinet.txt"))
    assert (m.written_low_note, m.written_high_note) == ("E3", "C7")
    assert m.transposition_semitones == -2 and "major second lower" in m.transposition_remark
    assert "written range" in m.sentence
    plain = find_range(_text("violin.txt"))
    assert plain.transposition_semitones == 0 and plain.transposition_remark == ""


def test_no_range_in_page_gives_none():
    assert extract_range(_text("guitar_tuning_only.txt")) is None  # a tuning and "A4 paper" are not a range
    assert extract_range("The theremin is an electronic instrument controlled without physical contact.") is None
    assert extract_range("Its range is wide, reaching down to C2.") is None  # one note is not a range


def test_subject_picks_the_sentence_of_one_family_member():
    text = _text("recorder.txt")
    assert extract_range(text, "soprano recorder") == ("C5", "D7")
    assert find_range(text, "bass recorder", require_subject=True).low_note == "F3"
    assert find_range(text, "great bass recorder", require_subject=True) is None


def test_find_transposition_phrases():
    assert find_transposition("It sounds an octave higher than written.")[0] == 12
    assert find_transposition("sounding two octaves and a major second lower")[0] == -26
    assert find_transposition("The instrument sounds a perfect fifth below the written note.")[0] == -7
    assert find_transposition("No remark here.") == (0, "")


def test_animal_sounds_from_wikitext_table():
    found = dict(parse_animal_sounds(_text("list_of_animal_sounds.wikitext")))
    assert found == {
        "owl": ["hoot", "screech"],
        "dog": ["bark", "woof"],  # the reference is dropped
        "cat": ["meow", "purr"],  # a piped link names the animal by its page
        "donkey": ["bray", "hee-haw"],
        "bee": ["buzz"],  # cell attributes and cells on their own lines
    }


def test_animal_sounds_from_plain_lines():
    found = parse_animal_sounds(_text("list_of_animal_sounds.txt"))
    assert found == [
        ("duck", ["quack"]),
        ("goose", ["honk", "hiss"]),
        ("rooster", ["cock-a-doodle-doo"]),
        ("cow", ["moo", "low"]),
        ("horse", ["neigh", "whinny"]),
    ]
    assert parse_animal_sound_line("Owl – hoot, screech") == ("owl", ["hoot", "screech"])
    assert parse_animal_sound_line("Certain words in the English language represent animal sounds.") is None
