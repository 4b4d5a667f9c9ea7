"""`python -m metric.sweep_summary <multirun dir>`: every job of a sweep in one table (CSV and markdown), by val EER."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metric.errors import ConfigError, report_error
from metric.report.sweep_table import collect, write_tables


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m metric.sweep_summary", description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir", type=Path, help="a multirun directory, e.g. outputs/train/multiruns/<time>")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        rows = collect(args.sweep_dir)
    except ConfigError as error:
        return report_error(error)
    csv_path, md_path, markdown = write_tables(rows, args.sweep_dir)
    print(markdown)
    print(f"{len(rows)} jobs, sorted by best validation EER; wrote {csv_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
