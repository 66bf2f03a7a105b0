"""The one gate every proposal passes, whichever backend made it: checks against the clip's (or pair's) own text.

Rules: exactly one [MASK]; spans are substrings of the sentence; a category's source and an animal answer are
named in the clip's own text (instruction-like sentences removed first; an answer in its title, tags or
description). The vocabulary is open: any name the clip's text supports is accepted, in one canonical form
(`text.canonical_name`: "Eagle-Owls" -> "eagle owl", "a hyena" -> "hyena"). The lexicon only helps: its aliases and
broader animals ground a name ("puppies" grounds "dog", "owl" is a "bird"), it spots a second animal in a clip (no
item then), and a name it files under another category is no animal answer. A failed check is a `Failure` with a
reason, never an exception.
"""

from __future__ import annotations

import re

from benchmark.schema import MASK
from pipeline.extract.lexicon import CATEGORIES, Lexicon
from pipeline.extract.records import AnimalProposal, CategoryProposal, ClipText, Failure, PairText, SentenceProposal
from pipeline.extract.text import canonical_name, phrase_in, singular_forms, stem_forms, tokenize

__all__ = ["validate_category", "validate_animal_item", "validate_sentence", "named_animals", "canonical_source",
           "MAX_SENTENCE_CHARS"]

MAX_SENTENCE_CHARS = 240
_SOURCE_OK = re.compile(r"^[a-z0-9][a-z0-9 '\-]{0,39}$")
_GENERIC = {"animal", "creature", "wildlife", "beast", "pet", "sound", "noise", "nature", "unknown", "thing", "call",
            "other", "none", "mammal", "insect", "field recording", "ambience", "recording"}
# words of a file name or a recording's technical tags, never a sound source ("piano e3 18 wav", "frog croak mp3")
_TECHNICAL = {"wav", "mp3", "flac", "aif", "aiff", "ogg", "m4a", "mp4", "sfx", "foley", "mono", "stereo", "mic", "zoom",
              "tascam", "h4n", "multisample", "sample", "normalized", "normalised", "khz", "bit", "take"}
_MAX_NAME_TOKENS = 4
_UNSURE = {"", "unsure", "unknown", "equal", "same", "none", "n/a", "cannot tell", "either"}


def _check_sentence(sentence: str) -> Failure | None:
    if not sentence or len(sentence) > MAX_SENTENCE_CHARS or any(c in sentence for c in "\n\r\t{}<>"):
        return Failure("sentence_malformed", sentence[:80])
    if sentence.count(MASK) != 1:
        return Failure("mask_count", f"{sentence.count(MASK)} masks in {sentence[:80]!r}")
    return None


def _tokens_in(needle: str, haystack_tokens: list[str]) -> bool:
    """True when the needle's tokens occur in sequence (last token in any singular form) in the haystack."""
    nt = tokenize(needle)
    if not nt:
        return False
    n = len(nt)
    for i in range(len(haystack_tokens) - n + 1):
        window = haystack_tokens[i : i + n]
        if window[:-1] == nt[:-1] and (nt[-1] in singular_forms(window[-1]) or nt[-1] in stem_forms(window[-1])):
            return True
    return False


def named_animals(text: str, lex: Lexicon) -> list[str]:
    """The animals a text names, canonical, in order of first appearance."""
    out: list[str] = []
    for m in lex.mentions(text):
        if lex.sources[m.name].category == "animal" and m.name not in out:
            out.append(m.name)
    return out


def canonical_source(given: str, category: str, lex: Lexicon) -> str:
    """A proposed source name in one stable form: the lexicon's name when it knows the name under this category
    (so sources group across clips: "Geige" -> "violin"), else the name itself, canonical ("Capybaras" -> "capybara")."""
    known = lex.normalise(given)
    if known and lex.sources[known].category == category:
        return known
    return canonical_name(given)


def _grounded(name: str, text: str, lex: Lexicon, animal: bool) -> bool:
    """True when a text names a source: the name's own words, or (known names) an alias or a narrower animal."""
    if phrase_in(name, tokenize(text)):
        return True
    if name in lex.sources:
        return any((lex.related(name, m.name) if animal else m.name == name) for m in lex.mentions(text))
    return False


def _head(name: str) -> str:
    return name.split()[-1] if name else ""


def _same_animal(a: str, b: str, lex: Lexicon) -> bool:
    """One animal named two ways: equal, one a kind of the other in the lexicon, or one the other's head noun
    ("eagle owl" / "owl"; "eagle owl" / "bird" through owl -> bird)."""
    if a == b:
        return True
    ka, kb = lex.normalise(a), lex.normalise(b)
    for x in {a, _head(a), ka} - {""}:
        for y in {b, _head(b), kb} - {""}:
            if x == y or (x in lex.sources and y in lex.sources and lex.related(x, y)):
                return True
    return False


def validate_category(clip: ClipText, prop: CategoryProposal, lex: Lexicon) -> dict | Failure:
    """A category row (clip_id, category, source_name, category_path, confidence) or why not. The category is the
    proposer's; the source must be named in the clip's own text."""
    raw = prop.category.strip().lower()
    cat, _, path_src = raw.partition("/")
    if cat not in CATEGORIES:
        return Failure("category_unknown", f"{prop.category[:40]!r}")
    conf = round(float(prop.confidence), 4)
    if cat == "other":
        return {"clip_id": clip.clip_id, "category": "other", "source_name": "", "category_path": "other", "confidence": conf}
    given = (prop.source or path_src).strip()
    name = canonical_source(given, cat, lex)
    if (not name or not _SOURCE_OK.match(name) or len(name.split()) > _MAX_NAME_TOKENS or name in _GENERIC
            or _TECHNICAL & set(name.split())):
        return Failure("source_malformed", f"{given[:40]!r}")
    if not _grounded(name, clip.full_ground, lex, cat == "animal"):
        return Failure("source_not_in_text", f"{name!r} is not named in the clip's own text")
    return {"clip_id": clip.clip_id, "category": cat, "source_name": name, "category_path": f"{cat}/{name}", "confidence": conf}


def _other_animals(answer: str, text: str, lex: Lexicon) -> list[str]:
    """Animals a text names besides the answer (a word inside the answer's own name, as "eagle" in "eagle owl",
    does not count)."""
    inside = {i for start, n in phrase_in(answer, tokenize(text)) for i in range(start, start + n)}
    out: list[str] = []
    for m in lex.mentions(text):
        if (lex.sources[m.name].category == "animal" and m.start not in inside and not _same_animal(m.name, answer, lex)
                and m.name not in out):
            out.append(m.name)
    return out


def validate_animal_item(clip: ClipText, prop: AnimalProposal, lex: Lexicon, source: str = "") -> dict | Failure:
    """An animal item row (clip_id, sentence, answer, description, spans) or why not. `source` is the clip's
    validated category source; an answer that names another animal is refused."""
    sentence = " ".join(prop.sentence.split())
    if (bad := _check_sentence(sentence)) is not None:
        return bad
    answer = canonical_name(prop.answer)
    if (not answer or not _SOURCE_OK.match(answer) or len(answer.split()) > _MAX_NAME_TOKENS or answer in _GENERIC
            or _TECHNICAL & set(answer.split())):
        return Failure("answer_malformed", f"{prop.answer[:40]!r}")
    known = lex.normalise(answer)
    if known and lex.sources[known].category != "animal":
        return Failure("answer_not_animal", f"{answer!r} is a {lex.sources[known].category} source")
    inside = {lex.sources[m.name].category for m in lex.mentions(answer)}  # "door slamming shut" names a door
    if not known and inside and "animal" not in inside:
        return Failure("answer_not_animal", f"{answer!r} names a {'/'.join(sorted(inside))} source")
    if not _grounded(answer, clip.metadata_ground or clip.full_ground, lex, animal=True):
        return Failure("answer_not_in_source", f"{answer!r} is not named in the clip's title, tags or description")
    if source and not _same_animal(answer, source, lex):
        return Failure("answer_source_mismatch", f"answer {answer!r} but the clip's source is {source!r}")
    if others := _other_animals(answer, clip.full_ground, lex):
        return Failure("two_animals", f"the clip names {answer} and {', '.join(others)}")
    ono = " ".join(prop.onomatopoeia.split())
    if not ono or len(ono) > 40 or MASK in ono:
        return Failure("span_malformed", f"{ono[:40]!r}")
    if phrase_in(answer, tokenize(ono)):  # the sound word is the animal's name ("door slamming shut" for itself)
        return Failure("answer_in_sentence", f"the sound word {ono!r} names {answer!r}")
    at = sentence.lower().find(ono.lower())
    if at < 0:
        return Failure("span_not_in_sentence", f"{ono!r} not in {sentence[:80]!r}")
    span = sentence[at : at + len(ono)]
    rest = (sentence[:at] + " " + sentence[at + len(ono) :]).replace(MASK, " ")  # "cock-a-doodle-doo" names no cock
    if named_animals(rest, lex) or phrase_in(answer, tokenize(rest)):
        return Failure("answer_in_sentence", f"an animal is named in {sentence[:80]!r}")
    kinds = [x for x in dict.fromkeys([known, answer, _head(answer), lex.normalise(_head(answer))]) if x in lex.sources]
    if not (any(lex.is_sound_of(ono, k) for k in kinds) or _tokens_in(ono, tokenize(clip.full_ground))):
        return Failure("onomatopoeia_unsupported", f"{ono!r} is neither a known {answer} sound nor in the clip's text")
    return {"clip_id": clip.clip_id, "sentence": sentence, "answer": answer, "description": ono.lower(), "spans": [span]}


def _find_word(sentence: str, phrase: str, start: int = 0) -> int:
    m = re.compile(r"(?<![A-Za-z])" + re.escape(phrase) + r"(?![A-Za-z])", re.IGNORECASE).search(sentence, start)
    return m.start() if m else -1


_COMPARED = re.compile(r"^\s*(?:compared|in comparison)\s+(?:with|to)\b", re.IGNORECASE)


def validate_sentence(pair: PairText, prop: SentenceProposal) -> dict | Failure:
    """A comparison sentence row (pair_id, task, sentence, span1, span2, llm_guess) or why not. The pair's label
    must fill the mask, so the sentence reads "<a> ... [MASK] than ... <b>" or "Compared with ... <b>, ... <a> ...
    [MASK]." (the mask says how a relates to b)."""
    sentence = " ".join(prop.sentence.split())
    if (bad := _check_sentence(sentence)) is not None:
        return bad
    a, b = pair.source_a.strip(), pair.source_b.strip()
    if not a or not b or a.lower() == b.lower():
        return Failure("same_source", f"{a!r} vs {b!r}")
    mask_at = sentence.index(MASK)
    than = re.search(re.escape(MASK) + r"\s+than\b", sentence) is not None
    compared = _COMPARED.match(sentence) is not None and not than
    if not (than or compared):
        return Failure("mask_not_comparative", sentence[:80])
    if than:
        ia = _find_word(sentence, a)
        ib = _find_word(sentence, b, mask_at)
        ib = ib if ib >= 0 else _find_word(sentence, b)  # b only before the mask: found, then refused by order
        ordered = ia >= 0 and ib >= 0 and ia < mask_at < ib
    else:
        ib = _find_word(sentence, b)
        ia = _find_word(sentence, a, max(ib, 0))
        ia = ia if ia >= 0 else _find_word(sentence, a)
        ordered = ia >= 0 and ib >= 0 and ib < ia < mask_at
    if ia < 0 or ib < 0:
        return Failure("span_not_in_sentence", f"{a!r} or {b!r} not in {sentence[:80]!r}")
    if not ordered:
        return Failure("order_mismatch", f"{a!r} and {b!r} are not placed so that [MASK] compares {a!r} with {b!r}")
    rest = sentence.replace(MASK, " ").lower()
    for word in pair.choices:
        if re.search(r"(?<![a-z])" + re.escape(word.lower()) + r"(?![a-z])", rest):
            return Failure("answer_in_sentence", f"{word!r} appears outside the mask")
    guess = prop.guess.strip().lower()
    if guess in _UNSURE:
        guess = ""
    elif guess not in pair.choices:
        return Failure("guess_invalid", f"{prop.guess[:40]!r} is not one of {list(pair.choices)}")
    return {"pair_id": pair.pair_id, "task": pair.task, "sentence": sentence, "span1": sentence[ia : ia + len(a)],
            "span2": sentence[ib : ib + len(b)], "llm_guess": guess}
