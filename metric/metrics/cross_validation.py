"""Cross-validation: the one fold loop (metric.train and metric.raw_pixels both run through it), and the
across-fold summary: per-fold results, and mean, std and a 95% Student-t interval of each rate."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

AGGREGATED = (
    "best_val_eer",
    "test_eer",
    "test_far_at_threshold",
    "test_frr_at_threshold",
    "test_roc_auc",
    "test_tar_at_far_0.01",
    "test_tar_at_far_0.001",
)
# reported only by datasets with official test pairs (LFW's pairs.txt) or by an adapt or finetune run: aggregated
# when every fold has them, left out silently when none does
OPTIONAL = (
    "test_pairs_accuracy",
    "test_pairs_eer",
    "frozen_test_pairs_accuracy",
    "frozen_test_pairs_eer",
    "adapt_val_eer_frozen",
    "finetune_val_eer_pretrained",
)


def mean_std_ci(values: list[float]) -> dict[str, float | None]:
    """Mean, sample standard deviation (ddof=1) and the 95% t-interval of the mean across folds, clipped to
    [0, 1] (every aggregated value is a rate)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if x.size < 2:
        return {"mean": mean, "std": None, "ci95_low": None, "ci95_high": None}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, x.size - 1)) * std / math.sqrt(x.size)
    return {"mean": mean, "std": std, "ci95_low": max(0.0, mean - half), "ci95_high": min(1.0, mean + half)}


def aggregate_folds(per_fold: list[dict]) -> dict:
    """The cross-validated summary. `best_val_eer` and `test_eer` are fold means (what a sweep compares);
    a metric that some fold could not support (TAR@FAR with too few impostor pairs) is left out, not averaged."""
    summary: dict = {"folds": len(per_fold)}
    for key in AGGREGATED + OPTIONAL:
        values = [fold.get(key) for fold in per_fold]
        if key in OPTIONAL and all(v is None for v in values):
            continue
        if any(v is None for v in values):
            summary[f"{key}_note"] = f"not supported by every fold ({sum(v is None for v in values)} lack it)"
            continue
        stats_ = mean_std_ci(values)
        summary[key] = stats_["mean"]
        summary[f"{key}_std"] = stats_["std"]
        summary[f"{key}_ci95"] = [stats_["ci95_low"], stats_["ci95_high"]]
    summary["per_fold"] = [
        {
            k: fold.get(k)
            for k in (
                "fold",
                "test_identities",
                "test_images",
                *AGGREGATED,
                *OPTIONAL,
                "adapt_kept",
                "finetune_kept",
                "threshold",
                "best_checkpoint",
            )
            if k in fold or k in AGGREGATED
        }
        for fold in per_fold
    ]
    return summary
