"""metric.attack_report's pipeline: read metric.attack runs from their folders and write them in one report."""

from __future__ import annotations

import json
from pathlib import Path

from metric.errors import ConfigError
from metric.report.attacks import KINDS, AttackRun, write_report


def attack_report(arguments: list[str], out: Path) -> tuple[list[AttackRun], Path, Path, str]:
    """The runs given as `dir` or `label=dir`, and the figure, table and markdown of their report in `out`."""
    runs = parse_runs(arguments)
    return (runs, *write_report(runs, out))


def read_run(label: str, run_dir: Path) -> AttackRun:
    """The run in `run_dir` (its summary.json), or one error naming the file and what is wrong with it."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such file. Give the run directories of metric.attack runs (each holds the "
            "summary.json it wrote)."
        )
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid JSON ({error}); rerun metric.attack to write it again.") from None
    if not isinstance(summary, dict) or summary.get("attack") not in KINDS or "rows" not in summary:
        raise ConfigError(
            f"{path}: not the summary of a metric.attack run (it needs 'attack', one of "
            f"{', '.join(KINDS)}, and 'rows'); metric.train and metric.evaluate summaries do not belong "
            "in an attack report."
        )
    if "attackable_impostor_pairs" not in summary:
        raise ConfigError(
            f"{path}: written by an older metric.attack whose success rates were post-attack accept "
            "rates, not the share of pairs the attack turns; rerun metric.attack on that checkpoint."
        )
    return AttackRun(label, summary)


def parse_runs(arguments: list[str]) -> list[AttackRun]:
    """Runs given as `dir` or `label=dir` (a bare directory is labelled by its name); labels must differ."""
    runs = []
    for argument in arguments:
        label, named, folder = argument.partition("=")
        if not named or Path(argument).is_dir() or "/" in label:  # a bare directory, even one with "=" in its path
            label, folder = "", argument
        runs.append(read_run(label or Path(folder).name, Path(folder)))
    labels = [run.label for run in runs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(
            f"the run label(s) {', '.join(repeated)} name more than one run; label each run, e.g. "
            "baseline=<dir> patch_trained=<dir>."
        )
    if not runs:
        raise ConfigError("give at least one metric.attack run directory.")
    return runs
