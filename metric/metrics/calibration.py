"""Threshold calibration at a target FAR on validation identities, with an honest note when the data cannot support
it; and `calibrate_checkpoint`, which adds a matcher's calibration to a trained checkpoint (metric.calibrate)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from metric.errors import ConfigError
from metric.metrics import verification as V


def check_target_far(target_far: float) -> float:
    """A FAR to calibrate at, strictly between 0 and 1, or one clear error naming the key."""
    if isinstance(target_far, bool) or not isinstance(target_far, (int, float)) or not 0 < target_far < 1:
        raise ConfigError(f"matcher.target_far={target_far!r} must lie between 0 and 1, e.g. 0.001.")
    return float(target_far)


@dataclass(frozen=True)
class Calibration:
    """The threshold to ship, for one matcher, and what it achieved on the validation pairs."""

    matcher: str
    threshold: float
    target_far: float
    calibrated_far: float  # the target actually used: target_far, or the lowest FAR the data supports
    val_far: float
    val_frr: float
    val_genuine_pairs: int
    val_impostor_pairs: int
    warning: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate(scores: np.ndarray, genuine: np.ndarray, target_far: float, matcher: str) -> Calibration:
    """The loosest threshold whose validation FAR is <= target_far (or the lowest supported FAR, with a warning)."""
    target_far = check_target_far(target_far)
    curve = V.roc(scores, genuine)
    lowest = V.min_supported_far(curve.n_impostor)
    used = target_far
    warning = None
    if target_far < lowest:
        used = lowest
        warning = (
            f"the validation split has {curve.n_impostor} impostor pairs; FAR={target_far:g} needs at least "
            f"{math.ceil(3 / target_far)}. Calibrated at the lowest FAR it supports, {lowest:.2g}, instead. "
            "Add validation identities to reach the target."
        )
    threshold, far, frr = V.threshold_at_far(curve, used)
    return Calibration(
        matcher=matcher,
        threshold=threshold,
        target_far=target_far,
        calibrated_far=used,
        val_far=far,
        val_frr=frr,
        val_genuine_pairs=curve.n_genuine,
        val_impostor_pairs=curve.n_impostor,
        warning=warning,
    )
