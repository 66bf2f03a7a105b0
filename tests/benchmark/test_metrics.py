"""Confidence intervals and paired tests, checked against cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.metrics import (
    N_BOOT,
    _fast,
    bootstrap_ci,
    bootstrap_p,
    count_units,
    item_units,
    macro_f1,
    mcnemar_exact,
    paired_test,
    seed_averaged_difference,
    unit_weights,
)


@pytest.mark.parametrize("b, c, p", [
    (0, 0, 1.0),
    (0, 5, 2 / 32),  # one tail: 1/2^5
    (5, 0, 2 / 32),
    (1, 9, 2 * (1 + 10) / 1024),  # C(10,0) + C(10,1)
    (2, 8, 2 * (1 + 10 + 45) / 1024),
    (3, 3, 1.0),  # doubled tail above 1 is capped
])
def test_mcnemar_exact_matches_the_binomial_by_hand(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, abs=1e-12)


def test_mcnemar_exact_on_a_whole_wiki_split():
    """Thousands of discordant pairs (a 4,809-item wiki split): the binomial tail must not overflow a float.
    Symmetric counts give p = 1; b = 500, c = 600 against the normal approximation with continuity correction
    (z = 99 / sqrt(1100) = 2.985, two-sided p = 0.00284), which is within 1e-4 of the exact value at this n."""
    assert mcnemar_exact(1500, 1500) == 1.0
    assert mcnemar_exact(500, 600) == pytest.approx(0.00284, abs=1e-4)


def test_a_single_shared_source_gives_too_few_units_not_a_point():
    """All items name one source pair (a source-level loudness split): no interval and no bootstrap p — never a
    point or a p of 0; the item-level McNemar p is still reported beside it."""
    gold = ["louder", "softer"] * 4
    a, b = gold, ["louder"] * 8
    units = [[("source", "cow"), ("source", "dog"), ("clip", f"c{i}")] for i in range(8)]
    r = paired_test(gold, a, b, "accuracy", units)
    assert r["too_few_units"] and r["units"] == {"clip": 8, "source": 2}
    assert r["diff"] == pytest.approx(0.5) and math.isnan(r["p"]) and math.isnan(r["ci_low"]) and r["mcnemar_p"] == pytest.approx(0.125)
    assert all(map(math.isnan, bootstrap_ci(gold, a, "accuracy", units)))
    assert paired_test(gold * 2, a * 2, b * 2, "accuracy")["p"] < 0.05  # 16 items, each its own unit


def test_bootstrap_p_is_never_zero():
    """Every resample favours A: p is 2 / (B + 1), the resolution of B resamples, not 0."""
    gold = ["x"] * 40
    r = paired_test(gold, gold, ["y"] * 40, "accuracy", n_boot=999)
    assert (r["ci_low"], r["ci_high"]) == (1.0, 1.0) and r["p"] == pytest.approx(2 / 1000)
    assert bootstrap_p(np.array([0.1] * 5)) == pytest.approx(2 / 6)
    assert bootstrap_p(np.array([0.0, 0.0])) == 1.0


def test_bootstrap_of_a_degenerate_split_is_a_point():
    gold = ["higher", "lower"] * 10
    assert bootstrap_ci(gold, gold) == (1.0, 1.0)
    assert bootstrap_ci(gold, ["x"] * 20) == (0.0, 0.0)
    lo, hi = bootstrap_ci([], [])
    assert np.isnan(lo) and np.isnan(hi)


def test_unit_bootstrap_keeps_a_unit_together():
    # 3 right items sharing a source + 1 wrong item. Resampling the 2 units gives accuracy 1 (AA), 0.75 (AB) or
    # 0 (BB, p = 1/4), so the 2.5 % quantile is 0. Resampling the 4 items alone gives 0 with p = 1/4^4 = 0.004 and
    # <= 0.25 with p = 0.051, so its 2.5 % quantile is 0.25.
    gold, pred = ["a", "a", "a", "a"], ["a", "a", "a", "b"]
    units = [[("source", "s0")]] * 3 + [[("source", "s1")]]
    assert bootstrap_ci(gold, pred, units=units, seed=3, min_units=1) == (0.0, 1.0)
    assert bootstrap_ci(gold, pred, seed=3, min_units=1) == (0.25, 1.0)
    # and the same seed gives the same interval
    assert bootstrap_ci(gold, pred, units=units, seed=3, min_units=1) == bootstrap_ci(gold, pred, units=units, seed=3, min_units=1)


def test_pigeonhole_weights_are_products_of_unit_multiplicities():
    """An item naming sources a and b weighs m_a · m_b; one naming a alone m_a; units of another kind multiply in;
    each kind is drawn as many times as it has units."""
    units = [[("source", "a")], [("source", "b")], [("source", "a"), ("source", "b")],
             [("source", "a"), ("clip", "c1")], [("source", "c")], [("clip", "c1")], [("clip", "c2")]]
    w = np.concatenate(list(unit_weights(units, n_boot=600, seed=1, chunk=250)))
    assert w.shape == (600, 7)
    assert np.array_equal(w[:, 2], w[:, 0] * w[:, 1]) and np.array_equal(w[:, 3], w[:, 0] * w[:, 5])
    assert np.array_equal(w[:, 0] + w[:, 1] + w[:, 4], np.full(600, 3))  # 3 sources, 3 draws
    assert np.array_equal(w[:, 5] + w[:, 6], np.full(600, 2))
    assert (w[:, 2] == 0).mean() > 0.3  # the pair is out whenever either source is: P = 2·(2/3)^3 − (1/3)^3 = 0.56


def test_item_units_name_sources_words_and_clips():
    comp = {"group_id": "g3", "clip_ids": ["c4", "c5"], "span1": "a Violin", "span2": "a  tuba", "answer": "higher"}
    assert item_units(comp, "comparison") == [("source", "a violin"), ("source", "a tuba")]
    rec = {"group_id": "g1", "clip_ids": ["c1"], "description": "Moo", "spans": ["moo"], "answer": "cow", "span1": "", "span2": ""}
    assert item_units(rec, "recognition") == [("source", "cow"), ("word", "moo")]
    bare = {"group_id": "w7", "clip_ids": ["c1", "c2"], "span1": "", "span2": ""}
    assert item_units(bare, "comparison") == [("clip", "c1"), ("clip", "c2")]
    assert item_units(dict(bare, clip_ids=[]), "comparison") == [("group", "w7")]
    assert count_units([item_units(comp, "comparison"), item_units(rec, "recognition")]) == {"source": 3, "word": 1}


def test_paired_test_by_hand():
    gold = ["higher"] * 10
    a = ["higher"] * 10
    b = ["higher"] * 5 + ["lower"] * 5
    r = paired_test(gold, a, b)
    assert r["diff"] == pytest.approx(0.5)
    assert (r["b"], r["c"]) == (5, 0)
    assert r["mcnemar_p"] == pytest.approx(2 / 32)
    assert 0.0 < r["ci_low"] <= 0.5 <= r["ci_high"] <= 1.0
    assert r["p"] < 0.01  # no resample has B ahead of or level with A unless it draws only B's right items
    same = paired_test(gold, b, b)
    assert (same["diff"], same["ci_low"], same["ci_high"], same["p"], same["mcnemar_p"]) == (0.0, 0.0, 0.0, 1.0, 1.0)
    worse = paired_test(gold, b, a)
    assert worse["diff"] == pytest.approx(-0.5) and worse["ci_high"] < 0 and (worse["b"], worse["c"]) == (0, 5)


def test_paired_units_widen_the_interval():
    # 20 items on 2 sources, 10 each: A beats B on one source only. Unit resampling can draw that cluster twice
    # (diff 1) or never (diff 0); item resampling stays close to 0.5.
    gold = ["x"] * 20
    a = ["x"] * 20
    b = ["y"] * 10 + ["x"] * 10
    clustered = paired_test(gold, a, b, units=[[("source", "s0")]] * 10 + [[("source", "s1")]] * 10, min_units=1)
    assert (clustered["ci_low"], clustered["ci_high"]) == (0.0, 1.0)
    alone = paired_test(gold, a, b)
    assert 0.2 < alone["ci_low"] < 0.5 < alone["ci_high"] < 0.8


def test_vectorised_macro_f1_equals_the_definition():
    rng = np.random.default_rng(0)
    for _ in range(50):
        g = rng.integers(0, 4, 30)
        p = rng.integers(0, 5, 30)
        assert _fast("macro_f1")(g, p) == pytest.approx(macro_f1([str(x) for x in g], [str(x) for x in p]))


def test_bootstrap_interval_of_a_custom_metric_uses_the_strings():
    from benchmark.metrics import METRICS, register_metric

    @register_metric("first_char_match")
    def first_char_match(gold, pred):
        return float(np.mean([g[0] == p[0] for g, p in zip(gold, pred)]))

    try:
        assert bootstrap_ci(["ab", "cd"], ["ax", "cy"], metric="first_char_match", min_units=1) == (1.0, 1.0)
    finally:
        METRICS.pop("first_char_match")


def test_seed_averaged_difference_adds_the_seeds_spread():
    """Three seeds that agree: the interval is the unit bootstrap's alone. Three that disagree (same mean): wider,
    with t at the Satterthwaite degrees of freedom; each seed's own difference is reported."""
    rng = np.random.default_rng(0)
    n = 120
    gold = ["x"] * n
    units = [[("source", f"s{i % 30}"), ("clip", f"c{i}")] for i in range(n)]
    b = ["x" if r < 0.5 else "y" for r in rng.random(n)]
    a = ["x" if r < 0.75 else "y" for r in rng.random(n)]
    same = seed_averaged_difference(gold, [a, a, a], [b, b, b], units=units, n_boot=400)
    assert same["per_seed"] == [pytest.approx(same["diff"])] * 3 and same["sd_seed"] == 0.0 and math.isinf(same["df"])
    one = paired_test(gold, a, b, units=units, n_boot=400)
    assert same["ci_high"] - same["ci_low"] == pytest.approx(one["ci_high"] - one["ci_low"], rel=0.25)
    a1, a3 = ["y"] * 12 + a[12:], ["x"] * 12 + a[12:]  # one seed worse, one better on the first 12 items
    spread = seed_averaged_difference(gold, [a1, a, a3], [b, b, b], units=units, n_boot=400)
    assert spread["sd_seed"] > 0.02 and 2 <= spread["df"] < math.inf
    assert spread["ci_high"] - spread["ci_low"] > same["ci_high"] - same["ci_low"]
    assert spread["diff"] == pytest.approx(np.mean(spread["per_seed"]))
    assert N_BOOT == 2000
