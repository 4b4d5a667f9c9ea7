"""`python -m metric.sweep_summary <multirun dir>`: every job of a sweep in one table (CSV and markdown), by val EER."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metric.cli import run_command
from metric.pipelines.sweep_summary import sweep_summary


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m metric.sweep_summary", description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir", type=Path, help="a multirun directory, e.g. outputs/train/multiruns/<time>")
    return p


def summarise(sweep_dir: Path) -> int:
    """The sweep's table, printed and written beside it."""
    rows, csv_path, md_path, markdown = sweep_summary(sweep_dir)
    print(markdown)
    print(f"{len(rows)} jobs, sorted by best validation EER; wrote {csv_path} and {md_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_command(lambda: summarise(args.sweep_dir))


if __name__ == "__main__":
    sys.exit(main())
