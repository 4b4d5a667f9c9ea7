"""Cross-validation summary: per-fold results, and mean, std and a 95% t-interval of each across folds."""

from __future__ import annotations

import math

import numpy as np

# Two-sided 95% Student-t critical values t(0.975, df) for df = 1..30; beyond, the normal 1.96 is within 2%.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

AGGREGATED = ("best_val_eer", "test_eer", "test_far_at_threshold", "test_frr_at_threshold", "test_roc_auc",
              "test_tar_at_far_0.01", "test_tar_at_far_0.001")


def t_critical(df: int) -> float:
    return T_975[df - 1] if df <= len(T_975) else 1.96


def mean_std_ci(values: list[float]) -> dict[str, float | None]:
    """Mean, sample standard deviation (ddof=1) and the 95% t-interval of the mean across folds, clipped to
    [0, 1] (every aggregated value is a rate)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if x.size < 2:
        return {"mean": mean, "std": None, "ci95_low": None, "ci95_high": None}
    std = float(x.std(ddof=1))
    half = t_critical(x.size - 1) * std / math.sqrt(x.size)
    return {"mean": mean, "std": std, "ci95_low": max(0.0, mean - half), "ci95_high": min(1.0, mean + half)}


def aggregate_folds(per_fold: list[dict]) -> dict:
    """The cross-validated summary. `best_val_eer` and `test_eer` are fold means (what a sweep compares);
    a metric that some fold could not support (TAR@FAR with too few impostor pairs) is left out, not averaged."""
    summary: dict = {"folds": len(per_fold)}
    for key in AGGREGATED:
        values = [fold.get(key) for fold in per_fold]
        if any(v is None for v in values):
            summary[f"{key}_note"] = f"not supported by every fold ({sum(v is None for v in values)} lack it)"
            continue
        stats = mean_std_ci(values)
        summary[key] = stats["mean"]
        summary[f"{key}_std"] = stats["std"]
        summary[f"{key}_ci95"] = [stats["ci95_low"], stats["ci95_high"]]
    summary["per_fold"] = [
        {k: fold.get(k) for k in ("fold", "test_identities", "test_images", *AGGREGATED, "threshold", "best_checkpoint")}
        for fold in per_fold
    ]
    return summary


def format_cv_table(summary: dict) -> str:
    """Per-fold rows and the mean +- std [95% CI] of the test EER and FAR/FRR at the calibrated threshold."""
    keys = ("best_val_eer", "test_eer", "test_far_at_threshold", "test_frr_at_threshold", "test_tar_at_far_0.01")
    rows = [["fold", *keys]]
    for fold in summary["per_fold"]:
        rows.append([str(fold["fold"]), *("-" if fold.get(k) is None else f"{fold[k]:.4f}" for k in keys)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines.append("")
    for key in keys:
        if key in summary:
            std = summary[f"{key}_std"]
            low, high = summary[f"{key}_ci95"]
            spread = f" +- {std:.4f}  [95% CI {low:.4f}, {high:.4f}]" if std is not None else ""
            lines.append(f"{key}: {summary[key]:.4f}{spread}")
    bar = "-" * max(len(line) for line in lines)
    return f"{bar}\nCross-validation over {summary['folds']} identity-disjoint folds\n{bar}\n" + "\n".join(lines) + f"\n{bar}"
