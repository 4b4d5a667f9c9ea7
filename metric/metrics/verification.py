"""Verification metrics from pair scores: FAR/FRR, thresholds, EER, TAR@FAR, ROC AUC, ROC/DET points.

Scores are similarities (higher = more alike); a pair is accepted when score >= threshold.
Every function here takes a flat array of scores and a boolean array of labels
(True = genuine pair) and uses O(number of scores) memory: one sort, then cumulative counts.

Hand-written rather than sklearn's roc_curve on purpose: ties collapse into one operating point as a threshold
sees them, the EER is interpolated where FAR - FRR changes sign, TAR@FAR refuses FARs the impostor count cannot
support, and the same Roc comes from a ScoreGrid over billions of pairs (bench/metrics_scale.py: 21x faster
than roc_curve on 1e7 scores). tests/metrics/test_verification.py checks them against sklearn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Roc:
    """Operating points at every distinct score, from the strictest threshold to the loosest.

    Index i means: accept every pair whose score >= thresholds[i].
    """

    thresholds: np.ndarray
    far: np.ndarray
    frr: np.ndarray
    n_genuine: int
    n_impostor: int

    @property
    def tar(self) -> np.ndarray:
        return 1.0 - self.frr


def _as_arrays(scores: np.ndarray, genuine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    genuine = np.asarray(genuine).astype(bool).ravel()
    if scores.shape != genuine.shape:
        raise ValueError(f"scores ({scores.size}) and labels ({genuine.size}) differ in length")
    if not genuine.any():
        raise ValueError("no genuine pairs: every identity needs at least two images")
    if genuine.all():
        raise ValueError("no impostor pairs: the split needs at least two identities")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf")
    return scores, genuine


def roc(scores: np.ndarray, genuine: np.ndarray) -> Roc:
    """ROC points at every distinct score (ties collapse into one point), with the (0, 0) start."""
    scores, genuine = _as_arrays(scores, genuine)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    sorted_genuine = genuine[order]
    accepted_genuine = np.cumsum(sorted_genuine)
    accepted_impostor = np.cumsum(~sorted_genuine)
    # last index of each run of equal scores: a threshold accepts all of its ties at once
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), scores.size - 1]
    n_genuine = int(accepted_genuine[-1])
    n_impostor = int(accepted_impostor[-1])
    tar = np.r_[0.0, accepted_genuine[last_of_tie] / n_genuine]
    far = np.r_[0.0, accepted_impostor[last_of_tie] / n_impostor]
    thresholds = np.r_[np.inf, sorted_scores[last_of_tie]]
    return Roc(thresholds=thresholds, far=far, frr=1.0 - tar, n_genuine=n_genuine, n_impostor=n_impostor)


def far_frr_at(scores: np.ndarray, genuine: np.ndarray, threshold: float) -> tuple[float, float]:
    """FAR and FRR when accepting every pair with score >= threshold."""
    scores, genuine = _as_arrays(scores, genuine)
    accepted = scores >= threshold
    far = float(accepted[~genuine].mean())
    frr = float((~accepted[genuine]).mean())
    return far, frr


def eer(curve: Roc) -> tuple[float, float]:
    """Equal error rate, linearly interpolated where FAR - FRR changes sign, and its threshold."""
    diff = curve.far - curve.frr  # starts at -1 (reject all), rises to +1 (accept all)
    i = int(np.flatnonzero(diff >= 0)[0])
    if diff[i] == 0 or i == 0:
        return float(curve.far[i]), float(curve.thresholds[i])
    # the crossing lies between point i-1 (FAR < FRR) and point i (FAR >= FRR)
    w = -diff[i - 1] / (diff[i] - diff[i - 1])
    rate = (1 - w) * curve.far[i - 1] + w * curve.far[i]
    t_prev = curve.thresholds[i - 1] if np.isfinite(curve.thresholds[i - 1]) else curve.thresholds[i]
    threshold = (1 - w) * t_prev + w * curve.thresholds[i]
    return float(rate), float(threshold)


def threshold_at_far(curve: Roc, target_far: float) -> tuple[float, float, float]:
    """The loosest threshold whose FAR does not exceed target_far, with its FAR and FRR."""
    i = int(np.flatnonzero(curve.far <= target_far)[-1])
    return float(curve.thresholds[i]), float(curve.far[i]), float(curve.frr[i])


def min_supported_far(n_impostor: int) -> float:
    """The lowest FAR that n_impostor pairs can support: at least 3/FAR pairs are needed."""
    return 3.0 / n_impostor


def tar_at_far(curve: Roc, target_far: float) -> float | None:
    """TAR at the loosest threshold with FAR <= target_far; None when too few impostor pairs (< 3/FAR)."""
    if target_far < min_supported_far(curve.n_impostor):
        return None
    _, _, frr = threshold_at_far(curve, target_far)
    return 1.0 - frr


def roc_auc(curve: Roc) -> float:
    """Area under the ROC curve (TAR against FAR), trapezoidal, ties counted as half."""
    return float(np.trapezoid(curve.tar, curve.far))


def det_points(curve: Roc, max_points: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, FRR) pairs for a DET plot, thinned to at most max_points."""
    keep = np.unique(np.linspace(0, curve.far.size - 1, min(max_points, curve.far.size)).astype(int))
    return curve.far[keep], curve.frr[keep]
