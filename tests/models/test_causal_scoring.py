"""Causal-LM scoring: every token of the filled sentence (the first given BOS), and the prefix-cache path equal to
running each whole sentence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.schema import MASK

ITEMS = [
    {"sentence": "[MASK] make a chirp sound."},  # answer first: its first token is scored after BOS
    {"sentence": "The sound of a [MASK] is \"Oh Canada-canada-canada.\""},
    {"sentence": "A [MASK] goes woof woof."},
    {"sentence": "When you hear hoo hoo, it is a [MASK]"},  # answer last, no full stop
    {"sentence": "The sound of a violin is typically [MASK] in pitch than a tuba."},
]
CHOICES = ["dog", "dogs", "cat", "eagle owl", "a", "white throated sparrow", "higher", "lower", "bird"]


@pytest.fixture(scope="module")
def causal(tiny_causal_dir):
    from models.baselines import CausalLMBaseline

    return CausalLMBaseline(str(tiny_causal_dir))


def _by_hand(model, tok, text: str) -> float:
    """log p of every token of text, the first given BOS: one forward pass, nothing shared."""
    ids = torch.tensor([[tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        lp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
    return float(lp[torch.arange(ids.shape[1] - 1), ids[0, 1:]].sum())


def test_answer_first_sentence_scores_its_first_token(causal):
    text = "dog make a chirp sound."
    s = causal.score([ITEMS[0]], ["dog", "cat"], batch_size=4)
    assert s[0, 0] == pytest.approx(_by_hand(causal.model, causal.tokenizer, text), abs=1e-4)
    ids = causal.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():  # what the old path left out: the first token, given BOS
        first = float(torch.log_softmax(causal.model(torch.tensor([[causal.tokenizer.bos_token_id]])).logits[0, -1], -1)[ids[0]])
    assert first < -0.5  # a random model is far from sure of it: leaving it out would change the score
    assert causal.loglik([text])[0] == pytest.approx(s[0, 0], abs=1e-4)


def test_prefix_cache_equals_whole_sentences(causal):
    from models.baselines import fill_sentence

    cached = causal.score(ITEMS, CHOICES, batch_size=3)  # small batches: several chunks of one length
    whole = causal.loglik([fill_sentence(it["sentence"], c) for it in ITEMS for c in CHOICES], batch_size=7).reshape(len(ITEMS), -1)
    assert cached.shape == (len(ITEMS), len(CHOICES))
    assert np.abs(cached - whole).max() <= 1e-4
    assert len({round(float(v), 3) for v in cached[2]}) > 5  # the choices really differ (not a constant)
    assert cached[1, 5] == pytest.approx(_by_hand(causal.model, causal.tokenizer, ITEMS[1]["sentence"].replace(MASK, CHOICES[5])), abs=1e-4)


def test_shared_prefix_comes_from_the_filled_sentences_token_ids():
    from models.baselines import shared_prefix_len

    assert shared_prefix_len([[0, 5, 6, 7], [0, 5, 9, 7]]) == 2
    assert shared_prefix_len([[0, 5], [0, 5, 6]]) == 1  # every sentence keeps a token past the prefix
    assert shared_prefix_len([[0, 1, 2]]) == 2


def test_bpe_merge_across_the_answer_boundary_is_scored_as_the_sentence(causal):
    """A choice that merges with the text before [MASK] ("a" + "n" → "an"?) must still give the sentence's score: the
    prefix is cut where the filled sentences' ids first differ, not at the [MASK]'s character position."""
    from models.baselines import fill_sentence

    items = [{"sentence": "This is a[MASK] sound."}, {"sentence": "woo[MASK]"}]
    choices = ["n", "f woof", "dog", "", "d"]
    cached = causal.score(items, choices, batch_size=2)
    whole = causal.loglik([fill_sentence(it["sentence"], c) for it in items for c in choices]).reshape(2, -1)
    assert np.abs(cached - whole).max() <= 1e-4
