"""The one verification summary schema, written by metric.train, metric.evaluate and metric.raw_pixels alike, and
the one table that prints it.

Keys: the calibration (`matcher`, `threshold`, `threshold_source`, `target_far`, `calibrated_far`,
`calibration_warning`), then per scored split `<split>_eer`, `<split>_far_at_threshold`,
`<split>_frr_at_threshold`, `<split>_roc_auc`, `<split>_tar_at_far_<far>` (None below 3/FAR impostor pairs),
`<split>_genuine_pairs`, `<split>_impostor_pairs`, `<split>_identities`, `<split>_images`, and
`impostor_pairs_sampled`. Entry points add their own context (`best_val_eer`, `checkpoint`, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metric.metrics import verification as V
from metric.metrics.calibration import Calibration, calibrate
from metric.metrics.cross_validation import OPTIONAL
from metric.scoring.matchers import Matcher
from metric.scoring.pairs import count_pairs, pair_scores

REPORT_FARS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
Embedded = tuple[np.ndarray, np.ndarray]  # (embeddings, identity labels)


@dataclass(frozen=True)
class ScoredPairs:
    """The scored pairs behind a summary: pair k compares images first[k] and second[k]."""

    scores: np.ndarray
    genuine: np.ndarray
    first: np.ndarray
    second: np.ndarray


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


def format_summary(summary: dict, title: str = "Verification summary (test identities unseen in training)") -> str:
    """Two aligned columns; an unsupported TAR@FAR says why; lists of rows (conditions, folds) and the
    calibration warning go below."""
    rows = []
    for key, value in summary.items():
        if key == "calibration_warning" or (isinstance(value, list) and value and isinstance(value[0], dict)):
            continue
        if isinstance(value, list) and len(value) > 2:  # per-pair scores, kept in summary.json only
            continue
        if value is None and "_tar_at_far_" in key:
            impostors = summary.get(f"{key.split('_tar_at_far_')[0]}_impostor_pairs")
            text = f"not supported (< {3 / float(key.rsplit('_', 1)[1]):.0f} impostor pairs" + (
                f"; {impostors} here)" if impostors is not None else ")"
            )
        elif isinstance(value, float):
            text = f"{value:.4g}" if key.endswith("far") else f"{value:.4f}"
        elif isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, float) for v in value):
            text = f"[{value[0]:.4f}, {value[1]:.4f}]"
        else:
            text = str(value)
        rows.append((key, text))
    width = max(len(k) for k, _ in rows)
    line = "-" * min(100, width + 3 + max(len(t) for _, t in rows))
    body = "\n".join(f"{k.ljust(width)} : {t}" for k, t in rows)
    table = f"{line}\n{title}\n{line}\n{body}\n{line}"
    for row in summary.get("conditions", []):
        table += (
            f"\n  {row['factor']}={row['value']}: FAR {row['far']} FRR {row['frr']} "
            f"({row['genuine_pairs']} genuine, {row['impostor_pairs']} impostor pairs)"
        )
    if summary.get("calibration_warning"):
        table += f"\nWARNING: {summary['calibration_warning']}"
    return table


def format_cv_table(summary: dict) -> str:
    """Per-fold rows and the mean +- std [95% CI] of the test EER and FAR/FRR at the calibrated threshold."""
    keys = ("best_val_eer", "test_eer", "test_far_at_threshold", "test_frr_at_threshold", "test_tar_at_far_0.01")
    rows = [["fold", *keys]]
    for fold in summary["per_fold"]:
        rows.append([str(fold["fold"]), *("-" if fold.get(k) is None else f"{fold[k]:.4f}" for k in keys)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines.append("")
    for key in (*keys, *OPTIONAL):
        if key in summary:
            std = summary[f"{key}_std"]
            low, high = summary[f"{key}_ci95"]
            spread = f" +- {std:.4f}  [95% CI {low:.4f}, {high:.4f}]" if std is not None else ""
            lines.append(f"{key}: {summary[key]:.4f}{spread}")
    bar = "-" * max(len(line) for line in lines)
    return (
        f"{bar}\nCross-validation over {summary['folds']} identity-disjoint folds\n{bar}\n"
        + "\n".join(lines)
        + f"\n{bar}"
    )


def write_summary(summary: dict, path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2))
