"""The offline backend: a rules/lexicon extractor with the same interface as the LLM backend.

It proposes; `validate` decides, exactly as for an LLM. It is what `make demo` runs and the baseline for an
LLM's yield. Its comparison guess reads only source names and captions (typical values plus caption cues such
as "high-pitched" or "deep"), never a measurement.
"""

from __future__ import annotations

import math

from benchmark.hashing import stable_hash
from benchmark.schema import MASK
from benchmark.text import render_comparison
from pipeline.extract.lexicon import Lexicon
from pipeline.extract.records import AnimalProposal, CategoryProposal, ClipText, Failure, PairText, SentenceProposal
from pipeline.extract.validate import named_animals

__all__ = ["RulesBackend", "fill_template", "guess_comparison", "ANIMAL_TEMPLATES"]

ANIMAL_TEMPLATES = (
    "{Ono} is the sound a [MASK] makes.",
    "A [MASK] makes a {ono} sound.",
    "When you hear {ono}, it is probably a [MASK].",
    "The [MASK] goes {ono}.",
    "{Ono}! That must be a [MASK].",
)
_SCALE = {"pitch": lambda v: math.log2(v), "duration": lambda v: math.log2(v), "loudness": lambda v: v / 6.0}


def fill_template(template: str, a: str, b: str) -> str:
    """Put two source names into a comparison template as noun phrases ("an oboe", "rain"; see benchmark.text)."""
    return render_comparison(template, a, b)


def guess_comparison(lex: Lexicon, pair: PairText, margin: float) -> str:
    """The rules' own guess of the word that fills "<a> is [MASK] than <b>": choices[0] when a is the more
    (higher / longer / louder), choices[1] when less, "" when the lexicon and captions cannot tell."""
    dim = pair.dimension
    scale = _SCALE.get(dim)
    if scale is None or len(pair.choices) != 2:
        return ""

    def score(source: str, caption: str) -> float | None:
        typical = lex.typical(source, dim)
        cue = lex.cue_score(caption, dim)
        if math.isnan(typical):
            return None if cue == 0 else float(cue)
        return scale(typical) + cue

    sa, sb = score(pair.source_a, pair.caption_a), score(pair.source_b, pair.caption_b)
    if sa is None or sb is None or abs(sa - sb) < margin:
        return ""
    return pair.choices[0] if sa > sb else pair.choices[1]


class RulesBackend:
    """Lexicon rules behind the backend interface (propose_categories / propose_animal_items / propose_sentences)."""

    name = "rules"
    batched = False

    def __init__(self, lex: Lexicon, guess_margin: float = 0.5):
        self.lex = lex
        self.guess_margin = float(guess_margin)
        self.model = lex.version
        self.prompt_versions = {"rules": lex.version}
        self.stats: dict = {}

    def close(self) -> None:
        """Nothing to release (the LLM backend closes its cache here)."""

    def propose_categories(self, batches: list[list[ClipText]]) -> dict[str, CategoryProposal | Failure]:
        return {c.clip_id: self._categorise(c) for batch in batches for c in batch}

    def _categorise(self, clip: ClipText) -> CategoryProposal:
        scores: dict[str, float] = {}
        first: dict[str, int] = {}
        for weight, text in ((2.0, clip.metadata_ground), (1.0, clip.full_ground)):
            for m in self.lex.mentions(text):
                scores[m.name] = scores.get(m.name, 0.0) + weight
                first.setdefault(m.name, m.start)
        for name in list(scores):  # "bird" and "owl" in one clip: the owl gets the bird's votes
            for anc in self.lex.ancestors(name):
                if anc in scores and name in scores:
                    scores[name] += scores.pop(anc)
        if not scores:
            return CategoryProposal(id=clip.clip_id, category="other", source="", confidence=0.0)
        best = max(scores, key=lambda n: (scores[n], -first.get(n, 0), n))
        conf = scores[best] / sum(scores.values())
        return CategoryProposal(id=clip.clip_id, category=self.lex.sources[best].category, source=best, confidence=round(conf, 4))

    def propose_animal_items(self, clips: list[tuple[ClipText, str]]) -> dict[str, AnimalProposal | Failure]:
        out: dict[str, AnimalProposal | Failure] = {}
        for clip, source in clips:
            names = named_animals(clip.full_ground, self.lex)
            answer = max(names, key=lambda n: len(self.lex.ancestors(n))) if names else source
            if answer not in self.lex.sources:
                out[clip.clip_id] = Failure("answer_not_in_vocabulary", f"{answer!r}")
                continue
            chain = [answer, *self.lex.ancestors(answer)]
            heard = [s for a in chain for s in self.lex.sounds_in(clip.full_ground, a)]
            typical = [s for a in chain for s in self.lex.sources[a].sounds]
            if not heard and not typical:
                out[clip.clip_id] = Failure("no_onomatopoeia", f"the lexicon knows no sound of {answer!r}")
                continue
            ono = (heard or typical)[0]
            template = ANIMAL_TEMPLATES[int(stable_hash(clip.clip_id), 16) % len(ANIMAL_TEMPLATES)]
            sentence = template.replace("{Ono}", ono[:1].upper() + ono[1:]).replace("{ono}", ono)
            out[clip.clip_id] = AnimalProposal(sentence=sentence, answer=answer, onomatopoeia=ono)
        return out

    def propose_sentences(self, pairs: list[PairText]) -> dict[str, SentenceProposal | Failure]:
        out: dict[str, SentenceProposal | Failure] = {}
        for p in pairs:
            if not p.templates:
                out[p.pair_id] = Failure("no_template", f"task {p.task!r} has no sentence templates")
                continue
            template = p.templates[int(stable_hash(p.pair_id), 16) % len(p.templates)]
            if MASK not in template:
                out[p.pair_id] = Failure("no_template", f"template {template!r} holds no {MASK}")
                continue
            out[p.pair_id] = SentenceProposal(sentence=fill_template(template, p.source_a, p.source_b),
                                              guess=guess_comparison(self.lex, p, self.guess_margin))
        return out
