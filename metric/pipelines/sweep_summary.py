"""metric.sweep_summary's pipeline: read every job of a Hydra multirun (its overrides and summary.json) and write
the sweep's table beside it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from metric.errors import ConfigError
from metric.report.sweep_table import RESULT_COLUMNS, write_tables


def sweep_summary(sweep_dir: Path) -> tuple[list[dict], Path, Path, str]:
    """One row per job, sorted by best validation EER, and the CSV and markdown tables written beside the sweep."""
    rows = collect(sweep_dir)
    return (rows, *write_tables(rows, sweep_dir))


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job directories of a Hydra multirun: those holding `.hydra/overrides.yaml`, at any depth."""
    return sorted({p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")}, key=lambda p: str(p))


def parse_override(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    return key.lstrip("+~"), value


def collect(sweep_dir: Path) -> list[dict]:
    """One row per job: its overrides, its results (None where the job left no summary), and its directory."""
    if not sweep_dir.is_dir():
        raise ConfigError(
            f"{sweep_dir}: no such directory. Give the multirun directory of a sweep (outputs/train/multiruns/<time>)."
        )
    rows = []
    for job in job_dirs(sweep_dir):
        overrides = dict(
            parse_override(o) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []
        )
        summary_path = job / "summary.json"
        status, summary = "no summary (failed or still running)", {}
        if summary_path.is_file():
            try:
                summary, status = json.loads(summary_path.read_text()), "done"
            except json.JSONDecodeError:
                status = f"unreadable {summary_path.name}"
        row = {"job": str(job.relative_to(sweep_dir)), "overrides": overrides, "status": status}
        row.update({column: summary.get(column) for column in RESULT_COLUMNS})
        rows.append(row)
    if not rows:
        raise ConfigError(
            f"{sweep_dir}: no Hydra jobs found (no */.hydra/overrides.yaml). "
            "Give the directory that `python -m metric.train -m ...` printed."
        )
    return sorted(rows, key=lambda r: (r["best_val_eer"] is None, r["best_val_eer"] or 0.0, r["job"]))
