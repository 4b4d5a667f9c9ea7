"""A verification summary from embeddings: calibrate on the validation pairs at the matcher's target FAR, and score
both splits at that threshold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metric.metrics.calibration import Calibration, calibrate
from metric.metrics.summary import calibration_fields, scored_split_metrics
from metric.scoring.matchers import Matcher
from metric.scoring.pairs import count_pairs, pair_scores

Embedded = tuple[np.ndarray, np.ndarray]  # (embeddings, identity labels)


@dataclass(frozen=True)
class ScoredPairs:
    """The scored pairs behind a summary: pair k compares images first[k] and second[k]."""

    scores: np.ndarray
    genuine: np.ndarray
    first: np.ndarray
    second: np.ndarray


def verification_summary(
    val: Embedded, test: Embedded, matcher: Matcher, max_impostor_pairs: int
) -> tuple[dict, Calibration, ScoredPairs]:
    """Calibrate on validation at the matcher's target FAR; report both splits at that threshold. The scored test
    pairs come back too (for plots and reports, without scoring them again)."""
    val_scores, val_genuine = pair_scores(*val, max_impostor_pairs=max_impostor_pairs, score_block=matcher.numpy_block)
    calibration = calibrate(val_scores, val_genuine, matcher.target_far, matcher.name)
    test_pairs = ScoredPairs(
        *pair_scores(*test, max_impostor_pairs=max_impostor_pairs, score_block=matcher.numpy_block, return_pairs=True)
    )
    summary = {
        **calibration_fields(calibration, "calibrated on the validation identities"),
        **scored_split_metrics("val", val_scores, val_genuine, calibration.threshold, val[1]),
        **scored_split_metrics("test", test_pairs.scores, test_pairs.genuine, calibration.threshold, test[1]),
        "impostor_pairs_sampled": count_pairs(test[1])[1] > int((~test_pairs.genuine).sum()),
    }
    return summary, calibration, test_pairs
