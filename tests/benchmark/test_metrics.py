"""Confidence intervals and paired tests, checked against cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.metrics import _fast, bootstrap_ci, item_clusters, macro_f1, mcnemar_exact, paired_test


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


def test_paired_bootstrap_p_is_undefined_for_a_single_cluster():
    """All items share one clip (a source-level loudness split): resampling cannot vary, so no bootstrap p (not 0)."""
    gold = ["louder", "softer"] * 4
    a, b = gold, ["louder"] * 8
    r = paired_test(gold, a, b, "accuracy", clusters=[0] * 8)
    assert r["diff"] == pytest.approx(0.5) and math.isnan(r["p"]) and r["mcnemar_p"] == pytest.approx(0.125)
    assert paired_test(gold, a, b, "accuracy", clusters=list(range(8)))["p"] < 0.05


def test_bootstrap_of_a_degenerate_split_is_a_point():
    gold = ["higher", "lower"] * 10
    assert bootstrap_ci(gold, gold) == (1.0, 1.0)
    assert bootstrap_ci(gold, ["x"] * 20) == (0.0, 0.0)
    lo, hi = bootstrap_ci([], [])
    assert np.isnan(lo) and np.isnan(hi)


def test_cluster_bootstrap_keeps_clusters_together():
    # 3 right items sharing a clip + 1 wrong item. Resampling the 2 clusters gives accuracy 1 (AA), 0.75 (AB) or
    # 0 (BB, p = 1/4), so the 2.5 % quantile is 0. Resampling the 4 items alone gives 0 with p = 1/4^4 = 0.004 and
    # <= 0.25 with p = 0.051, so its 2.5 % quantile is 0.25.
    gold, pred = ["a", "a", "a", "a"], ["a", "a", "a", "b"]
    clusters = [0, 0, 0, 1]
    assert bootstrap_ci(gold, pred, clusters=clusters, seed=3) == (0.0, 1.0)
    assert bootstrap_ci(gold, pred, seed=3) == (0.25, 1.0)
    # and the same seed gives the same interval
    assert bootstrap_ci(gold, pred, clusters=clusters, seed=3) == bootstrap_ci(gold, pred, clusters=clusters, seed=3)


def test_item_clusters_are_connected_components():
    items = [
        {"group_id": "g1", "clip_ids": ["c1", "c2"]},
        {"group_id": "g2", "clip_ids": ["c2", "c3"]},  # shares c2 with item 0
        {"group_id": "g3", "clip_ids": ["c4"], "span1": "a Violin", "span2": "a tuba"},
        {"group_id": "g4", "clip_ids": ["c5"], "span1": "a tuba", "span2": "a violin"},  # same source pair as item 2
        {"group_id": "g1", "clip_ids": []},  # same group as item 0
        {"group_id": "g5", "clip_ids": ["c6"]},
    ]
    assert item_clusters(items) == [0, 0, 1, 1, 0, 2]


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


def test_paired_clusters_widen_the_interval():
    # 20 items in 2 clusters of 10: A beats B on one cluster only. Cluster resampling can draw that cluster twice
    # (diff 1) or never (diff 0); item resampling stays close to 0.5.
    gold = ["x"] * 20
    a = ["x"] * 20
    b = ["y"] * 10 + ["x"] * 10
    clustered = paired_test(gold, a, b, clusters=[0] * 10 + [1] * 10)
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
        assert bootstrap_ci(["ab", "cd"], ["ax", "cy"], metric="first_char_match") == (1.0, 1.0)
    finally:
        METRICS.pop("first_char_match")
