"""The sweep table: every job of a Hydra multirun in one table (CSV and markdown), sorted by best validation EER."""

from __future__ import annotations

import csv
from pathlib import Path

# cross-validated jobs (cv.folds=k) report fold means, plus the std of the test EER across folds
RESULT_COLUMNS = (
    "best_val_eer",
    "test_eer",
    "test_eer_std",
    "test_far_at_threshold",
    "test_frr_at_threshold",
    "threshold",
)


def varying_keys(rows: list[dict]) -> list[str]:
    """Override keys whose value differs between jobs (the ones a reader compares)."""
    keys = sorted({k for r in rows for k in r["overrides"]})
    return [k for k in keys if len({r["overrides"].get(k) for r in rows}) > 1] or keys


def format_value(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_tables(rows: list[dict], sweep_dir: Path) -> tuple[Path, Path, str]:
    """sweep_summary.csv (every override key) and sweep_summary.md (the varying ones) in the sweep directory."""
    all_keys = sorted({k for r in rows for k in r["overrides"]})
    csv_path = sweep_dir / "sweep_summary.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["job", *all_keys, *RESULT_COLUMNS, "status"])
        for r in rows:
            writer.writerow(
                [
                    r["job"],
                    *(r["overrides"].get(k, "") for k in all_keys),
                    *("" if r[c] is None else r[c] for c in RESULT_COLUMNS),
                    r["status"],
                ]
            )
    shown = varying_keys(rows)
    header = ["job", *shown, *RESULT_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in rows:
        cells = [r["job"], *(r["overrides"].get(k, "") for k in shown), *(format_value(r[c]) for c in RESULT_COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    markdown = "\n".join(lines) + "\n"
    md_path = sweep_dir / "sweep_summary.md"
    md_path.write_text(markdown)
    return csv_path, md_path, markdown
