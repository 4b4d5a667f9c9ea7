"""The figures of a verification summary from scored pairs: the calibration's fields and each split's rates under
the schema's `<split>_` keys (metric.report.summary documents the schema)."""

from __future__ import annotations

import numpy as np

from metric.metrics import verification as V
from metric.metrics.calibration import Calibration

REPORT_FARS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def calibration_fields(calibration: Calibration, source: str) -> dict:
    """The threshold a summary reports, where it came from, and the FAR it was calibrated at."""
    return {
        "matcher": calibration.matcher,
        "threshold": calibration.threshold,
        "threshold_source": source,
        "target_far": calibration.target_far,
        "calibrated_far": calibration.calibrated_far,
        "calibration_warning": calibration.warning,
    }


def split_metrics(split: str, curve: V.Roc, far: float, frr: float, labels: np.ndarray) -> dict:
    """The rates of one scored split under the schema's `<split>_` keys."""
    metrics = {
        f"{split}_eer": V.eer(curve)[0],
        f"{split}_far_at_threshold": far,
        f"{split}_frr_at_threshold": frr,
        f"{split}_roc_auc": V.roc_auc(curve),
    }
    for target in REPORT_FARS:
        metrics[f"{split}_tar_at_far_{target:g}"] = V.tar_at_far(curve, target)
    metrics.update(
        {
            f"{split}_genuine_pairs": curve.n_genuine,
            f"{split}_impostor_pairs": curve.n_impostor,
            f"{split}_identities": int(np.unique(labels).size),
            f"{split}_images": int(np.asarray(labels).size),
        }
    )
    return metrics


def scored_split_metrics(
    split: str, scores: np.ndarray, genuine: np.ndarray, threshold: float, labels: np.ndarray
) -> dict:
    """split_metrics from the pair scores themselves."""
    return split_metrics(split, V.roc(scores, genuine), *V.far_frr_at(scores, genuine, threshold), labels)
