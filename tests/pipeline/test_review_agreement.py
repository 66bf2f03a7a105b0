"""Agreement statistics against hand-worked cases and published examples, and the majority rule."""

from __future__ import annotations

import pytest

from pipeline.review.agreement import agreement_summary, cohen_kappa, fleiss_kappa, krippendorff_alpha, majority


def test_cohen_kappa_hand_worked() -> None:
    # 50 items, two raters: yes/yes 20, yes/no 5, no/yes 10, no/no 15.
    # p_o = 35/50 = 0.7; rater A says yes 25/50, B 30/50: p_e = 0.5·0.6 + 0.5·0.4 = 0.5; κ = (0.7 − 0.5)/(1 − 0.5) = 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    # three categories, 6 items: agree on 4 → p_o = 4/6; A: k,k,k,d,d,f  B: k,k,d,d,f,f
    # p_e = (3·2 + 2·2 + 1·2)/36 = 12/36; κ = (4/6 − 1/3)/(1 − 1/3) = 0.5
    assert cohen_kappa(list("kkkddf"), list("kkddff")) == pytest.approx(0.5)
    assert cohen_kappa(list("kd"), list("kd")) == pytest.approx(1.0)
    assert cohen_kappa(list("kk"), list("kk")) is None  # one category only: chance agreement is 1, κ undefined
    with pytest.raises(ValueError):
        cohen_kappa(["k"], ["k", "d"])


def test_fleiss_kappa_matches_fleiss_1971_table() -> None:
    # the worked example of Fleiss' κ (10 subjects, 14 raters, 5 categories): P̄ = 0.378, P_e = 0.213, κ = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-4)
    # hand-worked, 3 raters: items (3,0), (2,1), (0,3): P_i = 1, 1/3, 1 → P̄ = 7/9; p = (5/9, 4/9): P_e = 41/81
    # κ = (7/9 − 41/81)/(1 − 41/81) = (22/81)/(40/81) = 0.55
    assert fleiss_kappa([[3, 0], [2, 1], [0, 3]]) == pytest.approx(0.55)
    with pytest.raises(ValueError):
        fleiss_kappa([[2, 0], [1, 2]])


def test_krippendorff_alpha_matches_krippendorff_2011_example() -> None:
    # "Computing Krippendorff's alpha-reliability" (2011), nominal data, 4 observers, 12 units, missing values: α = 0.743
    rows = ["1 2 3 3 2 1 4 1 2 . . .", "1 2 3 3 2 2 4 1 2 5 . 3", ". 3 3 3 2 3 4 2 2 5 1 .", "1 2 3 3 2 4 4 1 2 5 1 ."]
    units = [[v for v in col if v != "."] for col in zip(*(r.split() for r in rows))]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)
    # two raters, no missing data: α and κ differ only by the finite-sample correction; hand-worked:
    # units (k,k),(k,d),(d,d): coincidences k-k 2, d-d 2, k-d 1, d-k 1 → n = 6, n_k = n_d = 3
    # D_o = 2, D_e = 2·3·3/5 = 3.6 → α = 1 − 2/3.6 = 0.4444
    assert krippendorff_alpha([["k", "k"], ["k", "d"], ["d", "d"]]) == pytest.approx(1 - 2 / 3.6)
    assert krippendorff_alpha([["k", "k"], ["k"]]) is None


def test_majority_and_ties() -> None:
    assert majority(["keep", "keep", "drop"]) == "keep"
    assert majority(["drop"]) == "drop"
    assert majority(["keep", "drop"]) is None
    assert majority(["fix=lower", "fix=lower", "keep", "keep"]) is None
    assert majority([]) is None


def test_agreement_summary_two_and_three_raters() -> None:
    two = {"i1": {"ann": "keep", "bob": "keep"}, "i2": {"ann": "drop", "bob": "drop"},
           "i3": {"ann": "keep", "bob": "drop"}, "i4": {"ann": "keep"}}
    s = agreement_summary(two)
    # items i1..i3: p_o = 2/3; ann keep 2 drop 1, bob keep 1 drop 2: p_e = (2·1 + 1·2)/9 = 4/9 → κ = (6/9 − 4/9)/(5/9) = 0.4
    assert s["items"] == 3 and s["raters"] == 2
    assert s["cohen_kappa"] == pytest.approx(0.4)
    assert s["pairs"] == [{"raters": ["ann", "bob"], "n": 3, "kappa": 0.4, "agreement": 0.6667}]
    three = {"i1": {"a": "keep", "b": "keep", "c": "keep"}, "i2": {"a": "keep", "b": "keep", "c": "drop"},
             "i3": {"a": "drop", "b": "drop", "c": "drop"}}
    s3 = agreement_summary(three)
    assert s3["cohen_kappa"] is None and len(s3["pairs"]) == 3
    assert s3["fleiss"] == {"raters_per_item": 3, "items": 3, "kappa": 0.55}
