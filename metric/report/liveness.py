"""The liveness report: ISO/IEC 30107-3 rates on validation and test, per-condition tables, ROC/DET plots, the worst
errors, and the per-presentation scores (every number recomputable)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.liveness import ENVIRONMENTS, ILLUMINATIONS, SPOOF_TYPES
from metric.metrics import verification as V
from metric.metrics.liveness import BONA_FIDE, condition_table, pad_summary
from metric.report.files import write_rows_csv
from metric.report.plots import LIVENESS_RATES, plot_det, plot_roc, plot_worst_presentations

Scored = tuple[
    np.ndarray, np.ndarray
]  # (liveness scores, (N, 4) targets: spoof, spoof type, illumination, environment)
BREAKDOWNS = {"spoof_type": (1, SPOOF_TYPES), "illumination": (2, ILLUMINATIONS), "environment": (3, ENVIRONMENTS)}
TARGET_APCERS = (0.01, 0.05)


def liveness_summary(val: Scored, test: Scored, threshold: float, target_apcer: float) -> dict:
    """The threshold (calibrated on validation at target_apcer) and the rates it gives on both splits."""
    summary = {"task": "liveness", "threshold": threshold, "threshold_source": "val", "target_apcer": target_apcer}
    for split, (scores, targets) in (("val", val), ("test", test)):
        rates = pad_summary(scores, targets[:, 1], threshold, TARGET_APCERS)
        summary.update({f"{split}_{key}": value for key, value in rates.items() if key != "threshold"})
    return summary


def breakdown_tables(
    scored: Scored, threshold: float, conditions: dict[str, list] | None = None
) -> dict[str, list[dict]]:
    """Rates per condition: the dataset's own (`conditions`: a name -> one value per presentation, e.g. NUAA's
    glasses, pos and session), else CelebA-Spoof's attack type, illumination and environment from the targets."""
    scores, targets = scored
    if conditions is not None:
        return {name: condition_table(scores, targets[:, 1], values, threshold) for name, values in conditions.items()}
    tables = {}
    for name, (column, vocabulary) in BREAKDOWNS.items():  # grouped by code (their order), then named
        rows = condition_table(scores, targets[:, 1], targets[:, column].tolist(), threshold)
        tables[name] = [{**row, "condition": vocabulary.get(int(row["condition"]), row["condition"])} for row in rows]
    return tables


def format_table(name: str, rows: list[dict]) -> str:
    def rate(value) -> str:
        return "-" if value is None else f"{100 * value:.2f}%"

    lines = [f"{name:>16}  {'bona fide':>9}  {'attacks':>7}  {'BPCER':>7}  {'APCER':>7}"]
    lines += [
        f"{row['condition']:>16}  {row['n_bona_fide']:>9}  {row['n_attacks']:>7}  {rate(row['bpcer']):>7}  "
        f"{rate(row['apcer']):>7}"
        for row in rows
    ]
    return "\n".join(lines)


def threshold_origin(summary: dict) -> str:
    """Where the threshold came from, in words: this run's validation, a checkpoint's, or the peer's authors'."""
    target = summary.get("target_apcer")
    calibrated = f"calibrated on validation at APCER {100 * target:g}%" if target is not None else ""
    if summary.get("threshold_source") == "checkpoint":
        return f"the checkpoint's own, {calibrated}" if target is not None else "the authors' own"
    return f"validation, target APCER {100 * target:g}%"


def format_liveness_summary(summary: dict, tables: dict[str, list[dict]]) -> str:
    """The test rates at the validation threshold, then the per-condition tables."""

    def pct(key: str) -> str:
        value = summary.get(key)
        return "not supported (too few attacks per type)" if value is None else f"{100 * value:.2f}%"

    lines = [
        "Liveness summary (ISO/IEC 30107-3; test subjects unseen in training)",
        f"  threshold {summary['threshold']:.4g} ({threshold_origin(summary)})",
        f"  test APCER (max over attack types) {pct('test_apcer_max')}, pooled {pct('test_apcer_pooled')}",
        f"  test BPCER {pct('test_bpcer')}   ACER {pct('test_acer')}   EER {pct('test_eer')}",
        f"  test BPCER@APCER=1% {pct('test_bpcer_at_apcer_1pct')}   BPCER@APCER=5% {pct('test_bpcer_at_apcer_5pct')}",
    ]
    for name, rows in tables.items():
        lines += ["", format_table(name, rows)]
    return "\n".join(lines)


def write_liveness_report(
    out: Path, test: Scored, images: np.ndarray, sources: list[str], threshold: float, tables: dict[str, list[dict]]
) -> None:
    """roc.png, det.png, worst_errors.png, the breakdown CSVs and scores.csv (one row per test presentation)."""
    scores, targets = test
    bona_fide = targets[:, 1] == BONA_FIDE
    curve = V.roc(scores, bona_fide)
    plot_roc(curve, out / "roc.png", LIVENESS_RATES)
    plot_det(curve, out / "det.png", LIVENESS_RATES)
    labels = [SPOOF_TYPES.get(int(t), str(t)) for t in targets[:, 1]]
    plot_worst_presentations(images, scores, bona_fide, labels, threshold, out / "worst_errors.png")
    for name, rows in tables.items():
        write_rows_csv(out / f"test_by_{name}.csv", rows)
    write_rows_csv(
        out / "scores.csv",
        [
            {
                "image": source,
                "spoof_type": SPOOF_TYPES.get(row[1], row[1]),
                "illumination": ILLUMINATIONS.get(row[2], row[2]),
                "environment": ENVIRONMENTS.get(row[3], row[3]),
                "liveness_score": f"{score:.9g}",
                "accepted_as_live": int(score >= threshold),
            }
            for source, score, row in zip(sources, scores.tolist(), targets.tolist())
        ],
    )
