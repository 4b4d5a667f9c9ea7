"""Liveness (PAD) metrics: hand-computed APCER / BPCER / ACER, threshold at APCER against brute force, EER, tables."""

import json
import math

import numpy as np
import pytest

from metric.metrics import liveness as L
from metric.metrics import verification as V

# bona fide: 0.9, 0.8, 0.7, 0.6; type 1 (photo): 0.75, 0.3; type 9 (phone): 0.65, 0.2, 0.1
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.75, 0.3, 0.65, 0.2, 0.1])
TYPES = np.array([0, 0, 0, 0, 1, 1, 9, 9, 9])


def test_pad_rates_by_hand():
    r = L.pad_rates(SCORES, TYPES, 0.7)
    # accepted (>= 0.7): bona fide 0.9, 0.8, 0.7 (0.6 rejected); type 1: 0.75; type 9: none
    assert r.threshold == 0.7
    assert r.apcer_per_type == {1: 0.5, 9: 0.0}  # 1/2, 0/3
    assert r.apcer_max == 0.5
    assert r.apcer_pooled == pytest.approx(1 / 5)  # 1 of 5 attacks accepted
    assert r.bpcer == pytest.approx(1 / 4)  # 0.6 rejected
    assert r.acer == pytest.approx(0.375)  # (0.5 + 0.25) / 2
    assert r.n_bona_fide == 4
    assert r.n_attacks == {1: 2, 9: 3}
    d = r.to_dict()
    assert d["apcer_per_type"] == {"1": 0.5, "9": 0.0}
    assert d["n_attacks"] == {"1": 2, "9": 3}
    json.dumps(d)


def test_pad_rates_at_extremes():
    # threshold 0.6: type 1 accepts 0.75 (1/2), type 9 accepts 0.65 (1/3), bona fide all accepted (0.6 >= 0.6)
    r = L.pad_rates(SCORES, TYPES, 0.6)
    assert r.apcer_per_type == pytest.approx({1: 0.5, 9: 1 / 3})
    assert r.apcer_pooled == pytest.approx(2 / 5)
    assert r.bpcer == 0.0
    assert r.acer == pytest.approx(0.25)  # (1/2 + 0) / 2
    assert L.pad_rates(SCORES, TYPES, 0.65).bpcer == pytest.approx(1 / 4)  # 0.6 < 0.65 rejected
    everything_rejected = L.pad_rates(SCORES, TYPES, math.inf)
    assert everything_rejected.apcer_max == 0.0 and everything_rejected.bpcer == 1.0


def test_threshold_at_apcer_by_hand():
    # distinct cuts from the top: 0.9, 0.8, 0.75 (type 1: 1/2), 0.7, 0.65 (type 9: 1/3), 0.6, 0.3 (type 1: 2/2) ...
    assert L.threshold_at_apcer(SCORES, TYPES, 0.5) == 0.6  # max APCER 1/2 down to 0.6; 0.3 makes type 1 reach 1
    assert L.threshold_at_apcer(SCORES, TYPES, 0.4) == 0.8  # 0.75 already gives type 1 APCER 1/2 > 0.4
    assert L.bpcer_at_apcer(SCORES, TYPES, 0.5) is None  # type 1 has 2 < 3/0.5 = 6 presentations


def test_threshold_uses_max_over_types_not_pooled():
    # type 1: 10 attacks at 0.1; type 2: 2 attacks, one at 0.95, one at 0.05; bona fide at 0.9, 0.5
    scores = np.r_[0.9, 0.5, np.full(10, 0.1), 0.95, 0.05]
    types = np.r_[0, 0, np.ones(10, int), 2, 2]
    # at cut 0.95: pooled APCER 1/12 <= 0.1, but APCER_2 = 1/2 > 0.1: must not be chosen, so reject all
    assert L.threshold_at_apcer(scores, types, 0.1) == math.inf
    # target 0.5 allows type 2 at 1/2; then 0.1 (type 1 -> 10/10) is too far: loosest is 0.5
    assert L.threshold_at_apcer(scores, types, 0.5) == 0.5


def test_threshold_ties_accepted_together():
    # a bona fide and an attack tie at 0.8: accepting one accepts the other
    scores = np.array([0.9, 0.8, 0.8, 0.1, 0.1, 0.1])
    types = np.array([0, 0, 3, 3, 3, 3])
    # type 3 has 4 attacks; cut 0.8 gives APCER 1/4
    assert L.threshold_at_apcer(scores, types, 0.2) == 0.9
    assert L.threshold_at_apcer(scores, types, 0.25) == 0.8
    assert L.pad_rates(scores, types, 0.8).apcer_max == 0.25


def test_threshold_inf_when_strictest_cut_exceeds_target():
    # the highest score is an attack: even the strictest finite cut gives APCER 1/2
    scores = np.array([0.99, 0.5, 0.2, 0.1])
    types = np.array([5, 0, 5, 0])
    assert L.threshold_at_apcer(scores, types, 0.3) == math.inf
    assert L.pad_rates(scores, types, math.inf).bpcer == 1.0


def brute_force_threshold(scores, types, target):
    candidates = np.r_[np.inf, np.unique(scores)[::-1]]
    best = np.inf
    for t in candidates:
        if L.pad_rates(scores, types, t).apcer_max <= target:
            best = min(best, t)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_threshold_at_apcer_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 400
    types = rng.choice([0, 1, 2, 9, 10], size=n, p=[0.4, 0.2, 0.2, 0.15, 0.05])
    types[:2] = [0, 1]
    scores = np.round(rng.normal(size=n) + (types == 0) * 1.2 - types * 0.05, 1)  # rounding makes ties
    for target in (0.01, 0.05, 0.1, 0.3, 0.7):
        t = L.threshold_at_apcer(scores, types, target)
        assert t == brute_force_threshold(scores, types, target)
        assert L.pad_rates(scores, types, t).apcer_max <= target


def test_bpcer_at_apcer_support_rule():
    rng = np.random.default_rng(3)
    types = np.r_[np.zeros(500, int), np.ones(300, int), np.full(59, 9)]
    scores = rng.normal(size=types.size) + (types == 0) * 2.0
    # smallest type has 59 presentations: 3/0.05 = 60 > 59 -> unsupported; 3/0.1 = 30 <= 59 -> supported
    assert L.bpcer_at_apcer(scores, types, 0.05) is None
    value = L.bpcer_at_apcer(scores, types, 0.1)
    assert value is not None
    assert value == L.pad_rates(scores, types, L.threshold_at_apcer(scores, types, 0.1)).bpcer
    types60 = np.r_[types, 9]
    scores60 = np.r_[scores, -5.0]
    assert L.bpcer_at_apcer(scores60, types60, 0.05) is not None  # 60 presentations support 5%


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_target_outside_unit_interval(bad):
    with pytest.raises(ValueError, match="target APCER"):
        L.threshold_at_apcer(SCORES, TYPES, bad)
    with pytest.raises(ValueError, match="target APCER"):
        L.bpcer_at_apcer(SCORES, TYPES, bad)


def test_pad_eer_matches_verification():
    rng = np.random.default_rng(7)
    types = rng.choice([0, 1, 4, 9], size=2000)
    scores = np.round(rng.normal(size=types.size) + (types == 0), 2)
    assert L.pad_eer(scores, types) == V.eer(V.roc(scores, types == 0))
    separated = np.where(types == 0, 1.0, 0.0) + rng.random(types.size) * 0.5
    assert L.pad_eer(separated, types)[0] == 0.0


def test_pad_summary():
    s = L.pad_summary(SCORES, TYPES, 0.7, targets=(0.01, 0.05, 0.001, 0.5))
    assert s["apcer_max"] == 0.5 and s["bpcer"] == pytest.approx(0.25) and s["acer"] == pytest.approx(0.375)
    assert s["apcer_pooled"] == pytest.approx(0.2)
    assert s["apcer_1"] == 0.5 and s["apcer_9"] == 0.0
    assert (s["eer"], s["eer_threshold"]) == L.pad_eer(SCORES, TYPES)
    for name in ("1pct", "5pct", "0.1pct", "50pct"):
        assert s[f"bpcer_at_apcer_{name}"] is None  # type 1 has only 2 presentations
    assert s["n_bona_fide"] == 4 and s["n_attacks"] == 5 and s["n_attacks_1"] == 2 and s["n_attacks_9"] == 3
    assert all(not isinstance(v, dict) for v in s.values())
    json.dumps(s)


def test_condition_table_by_hand():
    # conditions (e.g. illumination): 2 = bona fide 0.9, 0.6, attack 0.75;  5 = bona fide 0.8, attacks 0.3, 0.65;
    # 7 = attacks 0.2, 0.1 only; bona fide 0.7 is in group 2
    conditions = [2, 5, 2, 2, 2, 5, 5, 7, 7]
    rows = L.condition_table(SCORES, TYPES, conditions, 0.7)
    assert rows == [
        # group 2: bona fide 0.9, 0.7, 0.6 -> 0.6 rejected: 1/3; attack 0.75 accepted: 1/1
        {"condition": 2, "n_bona_fide": 3, "n_attacks": 1, "bpcer": pytest.approx(1 / 3), "apcer": 1.0},
        # group 5: bona fide 0.8 accepted: 0; attacks 0.3, 0.65 rejected: 0/2
        {"condition": 5, "n_bona_fide": 1, "n_attacks": 2, "bpcer": 0.0, "apcer": 0.0},
        # group 7: no bona fide
        {"condition": 7, "n_bona_fide": 0, "n_attacks": 2, "bpcer": None, "apcer": 0.0},
    ]
    json.dumps(rows)
    by_type = L.condition_table(SCORES, TYPES, list(TYPES), 0.7)
    assert [r["condition"] for r in by_type] == [0, 1, 9]
    assert by_type[0]["apcer"] is None and by_type[0]["bpcer"] == pytest.approx(0.25)
    assert by_type[1]["apcer"] == 0.5 and by_type[2]["apcer"] == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        L.condition_table(SCORES, TYPES, conditions[:-1], 0.7)


@pytest.mark.parametrize(
    "scores,types,message",
    [
        ([0.1, 0.2], [0, 0, 1], "differ in length"),
        ([0.1, np.nan], [0, 1], "NaN or inf"),
        ([0.1, np.inf], [0, 1], "NaN or inf"),
        ([0.1, 0.2], [0, 0], "no attack presentation"),
        ([0.1, 0.2], [1, 9], "no bona fide presentation"),
        ([0.1, 0.2], [0, -1], "negative"),
        ([0.1, 0.2], [0, 1.5], "whole numbers"),
        ([0.1, 0.2], [False, True], "integers"),
        ([0.1, 0.2], ["live", "photo"], "integers"),
    ],
)
def test_check_presentations_errors(scores, types, message):
    with pytest.raises(ValueError, match=message):
        L.check_presentations(scores, types)


def test_check_presentations_types():
    scores, types = L.check_presentations([1, 2, 3], [0.0, 1.0, 9.0])
    assert scores.dtype == np.float64 and types.dtype == np.int64
    assert types.tolist() == [0, 1, 9]
