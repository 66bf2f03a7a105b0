"""Small English helpers shared by every sentence writer: articles and comparison templates.

Template placeholders: {a}/{b} are the two sources as noun phrases ("a violin", "an oboe", "rain");
{A}/{B} the same, capitalised. The spans of an item stay the bare source names ("violin", "rain").
"""

from __future__ import annotations

import re

__all__ = ["with_article", "capitalise", "render_comparison", "MASS_NOUNS"]

_AN_EXCEPTIONS = ("eu", "uk", "uni", "use", "one", "ewe", "uvu")  # vowel letters with a consonant sound
_AN_LETTER_NAMES = re.compile(r"^[AEFHILMNORSX](?:-|\s|$)")  # "an E-flat clarinet", "an F horn"
# sources spoken without an article: "the sound of rain", "the sound of traffic"
MASS_NOUNS = frozenset({
    "rain", "wind", "thunder", "traffic", "water", "fire", "applause", "laughter", "speech", "music", "static", "noise",
    "hail", "surf", "rainfall", "snow", "sleet", "gravel", "machinery", "birdsong", "chatter", "footsteps", "clapping",
    "typing", "breathing", "snoring", "coughing", "singing", "whispering", "rustling", "heavy rain", "light rain",
})


def with_article(name: str) -> str:
    """The name as a noun phrase, with "a" or "an" as it is spoken: "an oboe", "a euphonium", "an E-flat clarinet",
    "a ukulele"; mass nouns and plurals go bare ("rain", "footsteps")."""
    low = name.lower().strip()
    if low in MASS_NOUNS or (low.endswith("s") and not low.endswith(("ss", "us", "is")) and " " not in low):
        return name
    if _AN_LETTER_NAMES.match(name):
        return f"an {name}"
    if low[:1] in "aeiou" and not low.startswith(_AN_EXCEPTIONS):
        return f"an {name}"
    if low.startswith(("hour", "honest", "heir")):
        return f"an {name}"
    return f"a {name}"


def capitalise(s: str) -> str:
    return s[:1].upper() + s[1:]


def render_comparison(template: str, a: str, b: str) -> str:
    """Fill a comparison template with two source names: {a}/{b} noun phrases, {A}/{B} capitalised."""
    pa, pb = with_article(a), with_article(b)
    return template.replace("{a}", pa).replace("{b}", pb).replace("{A}", capitalise(pa)).replace("{B}", capitalise(pb))
