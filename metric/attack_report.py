"""`python -m metric.attack_report [label=]<attack run dir>... --out <dir>`: several metric.attack runs (attacks,
defences, purifications) in one report: every success-versus-budget curve (attack_report.png) and table (.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metric.cli import run_command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m metric.attack_report", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="metric.attack run directories, each as <dir> or <label>=<dir>")
    p.add_argument("--out", type=Path, required=True, help="where attack_report.png and attack_report.md are written")
    return p


def report(arguments: list[str], out: Path) -> int:
    """The runs in one report: a figure, a table and its markdown, printed too."""
    from metric.pipelines.attack_report import attack_report  # plots import torch: not for --help

    runs, figure, table, markdown = attack_report(arguments, out)
    print(markdown)
    print(f"{len(runs)} runs; wrote {figure} and {table}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_command(lambda: report(args.runs, args.out))


if __name__ == "__main__":
    sys.exit(main())
