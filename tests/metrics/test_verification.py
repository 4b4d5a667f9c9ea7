"""Verification metrics agree with sklearn's roc_curve, on random, separated and tied scores."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from metric.metrics import verification as V


def sklearn_reference(scores, genuine):
    """EER (interpolated where FAR - FRR changes sign), TAR@FAR and AUC derived from sklearn's roc_curve."""
    fpr, tpr, thresholds = roc_curve(genuine, scores, drop_intermediate=False)
    fnr = 1 - tpr
    diff = fpr - fnr
    i = int(np.flatnonzero(diff >= 0)[0])
    if diff[i] == 0 or i == 0:
        eer = fpr[i]
    else:
        w = -diff[i - 1] / (diff[i] - diff[i - 1])
        eer = (1 - w) * fpr[i - 1] + w * fpr[i]

    def tar_at(far):
        return tpr[np.flatnonzero(fpr <= far)[-1]]

    return eer, tar_at, roc_auc_score(genuine, scores)


def cases():
    rng = np.random.default_rng(0)
    n = 20_000
    genuine = rng.random(n) < 0.1
    yield "random", rng.normal(size=n) + genuine * 1.5, genuine
    yield "separated", np.where(genuine, 1.0, 0.0) + rng.random(n) * 0.5, genuine
    yield "tied", np.round(rng.normal(size=n) + genuine, 1), genuine
    yield "all tied", np.zeros(1000), np.arange(1000) % 3 == 0


@pytest.mark.parametrize("name,scores,genuine", list(cases()), ids=lambda c: c if isinstance(c, str) else "")
def test_metrics_agree_with_sklearn(name, scores, genuine):
    ref_eer, ref_tar_at, ref_auc = sklearn_reference(scores, genuine)
    curve = V.roc(scores, genuine)
    eer, threshold = V.eer(curve)
    assert abs(eer - ref_eer) < 1e-3, name
    assert abs(V.roc_auc(curve) - ref_auc) < 1e-3, name
    for far in (1e-1, 1e-2, 1e-3):
        tar = V.tar_at_far(curve, far)
        if far >= 3 / (~genuine).sum():
            assert abs(tar - ref_tar_at(far)) < 1e-3, (name, far)
        else:
            assert tar is None


def test_far_frr_at_threshold_counts_accepts_at_equality():
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    genuine = np.array([True, True, False, False])
    assert V.far_frr_at(scores, genuine, 0.5) == (0.5, 0.0)
    assert V.far_frr_at(scores, genuine, 0.6) == (0.0, 0.5)


def test_threshold_at_far_never_exceeds_target():
    rng = np.random.default_rng(1)
    genuine = rng.random(50_000) < 0.2
    scores = rng.normal(size=genuine.size) + genuine * 2
    curve = V.roc(scores, genuine)
    for target in (1e-1, 1e-2, 1e-3):
        threshold, far, frr = V.threshold_at_far(curve, target)
        assert far <= target
        assert (far, frr) == pytest.approx(V.far_frr_at(scores, genuine, threshold))


def test_perfect_separation_gives_zero_eer():
    curve = V.roc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([True, True, False, False]))
    assert V.eer(curve)[0] == 0.0
    assert V.roc_auc(curve) == 1.0


def test_no_genuine_pairs_is_a_clear_error():
    with pytest.raises(ValueError, match="no genuine pairs"):
        V.roc(np.array([0.1, 0.2]), np.array([False, False]))
