"""Calibration hits the target FAR within binomial tolerance, and says so when the data cannot support it."""

import math

import numpy as np

from metric.metrics import verification as V
from metric.metrics.calibration import calibrate


def sample(rng, n_genuine, n_impostor):
    scores = np.r_[rng.normal(2.0, 1.0, n_genuine), rng.normal(0.0, 1.0, n_impostor)]
    genuine = np.r_[np.ones(n_genuine, bool), np.zeros(n_impostor, bool)]
    return scores, genuine


def test_calibrated_far_is_within_binomial_tolerance():
    rng = np.random.default_rng(0)
    target, n = 1e-3, 200_000
    cal = calibrate(*sample(rng, 5_000, n), target_far=target, matcher="cosine")
    sigma = math.sqrt(target * (1 - target) / n)
    assert cal.warning is None and cal.calibrated_far == target
    assert target - 3 * sigma <= cal.val_far <= target
    # the same threshold on fresh pairs from the same distributions
    fresh_scores, fresh_genuine = sample(rng, 5_000, n)
    far, _ = V.far_frr_at(fresh_scores, fresh_genuine, cal.threshold)
    assert abs(far - target) <= 3 * sigma * math.sqrt(2)  # two independent samples of the same rate


def test_too_few_impostors_warns_and_uses_lowest_supported_far():
    rng = np.random.default_rng(1)
    cal = calibrate(*sample(rng, 100, 1000), target_far=1e-3, matcher="cosine")
    assert cal.calibrated_far == 3 / 1000
    assert "1000 impostor pairs" in cal.warning and "at least 3000" in cal.warning
    assert cal.val_far <= 3 / 1000
