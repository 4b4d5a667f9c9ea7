"""The one verification summary schema, written by metric.train, metric.evaluate and metric.raw_pixels alike (its
figures come from metric.metrics.summary and metric.scoring.summary), and the one table that prints it.

Keys: the calibration (`matcher`, `threshold`, `threshold_source`, `target_far`, `calibrated_far`,
`calibration_warning`), then per scored split `<split>_eer`, `<split>_far_at_threshold`,
`<split>_frr_at_threshold`, `<split>_roc_auc`, `<split>_tar_at_far_<far>` (None below 3/FAR impostor pairs),
`<split>_genuine_pairs`, `<split>_impostor_pairs`, `<split>_identities`, `<split>_images`, and
`impostor_pairs_sampled`. Entry points add their own context (`best_val_eer`, `checkpoint`, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

from metric.metrics.cross_validation import OPTIONAL


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
