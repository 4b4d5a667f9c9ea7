"""How long each command line takes to start, and whether it imports torch: every entry point's `--help`, the
read-only gallery and service commands, and a Hydra typo, measured side by side with the baseline of importing the
model stack (`import torch, timm, pytorch_lightning`), which every one of them paid before issue 33.

With --before <folder>, the same commands also run in another checkout (e.g. `git worktree add /tmp/before <commit>`)
in the same run, for a before/after table. Median wall time over --rounds runs of each command; the torch column comes
from one `-X importtime` run.
Run: python bench/cli_start.py [--rounds 3] [--before /tmp/before]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASELINE = ["-c", "import torch, timm, pytorch_lightning"]


def commands(gallery: str) -> list[tuple[str, list[str]]]:
    """(label, python arguments) of each command measured."""
    entries = [
        "train",
        "evaluate",
        "calibrate",
        "attack",
        "export",
        "raw_pixels",
        "gallery",
        "serve",
        "weights",
        "sweep_summary",
        "attack_report",
    ]
    return [
        *[(f"metric.{entry} --help", ["-m", f"metric.{entry}", "--help"]) for entry in entries],
        ("metric.gallery list", ["-m", "metric.gallery", "list", "--gallery", gallery]),
        ("metric.gallery info", ["-m", "metric.gallery", "info", "--gallery", gallery]),
        ("metric.serve audit", ["-m", "metric.serve", "audit", "--gallery", gallery]),
        ("metric.serve keys list", ["-m", "metric.serve", "keys", "list", "--gallery", gallery]),
        ("metric.train datamodul=folder (a typo)", ["-m", "metric.train", "datamodul=folder"]),
    ]


def make_gallery(folder: Path, scope: str = "verify", label: str = "bench") -> str:
    """A gallery file with one identity, one API key and its audit row, written through the store (no model)."""
    sys.path.insert(0, str(REPO))
    import numpy as np

    from metric.deploy.gallery.store import GalleryStore
    from metric.deploy.service.audit import AuditLog
    from metric.deploy.service.keys import KeyStore

    path = folder / "people.db"
    settings = {"checkpoint": "best.ckpt", "fingerprint": "f" * 64, "matcher": "cosine", "threshold": "0.5"}
    store = GalleryStore(path, create={**settings, "embedding_dim": 4, "storage": "float32", "index": "exact"})
    store.enroll_many([("alice", np.ones(4, np.float32), 1)])
    _, record = KeyStore(store.db, store.lock).create(scope, label)
    AuditLog(store.db, store.lock).record("key_create", None, None, "ok", {"key_id": record.key_id})
    store.close()
    return str(path)


def timed(arguments: list[str], cwd: Path, rounds: int) -> tuple[float, bool]:
    """(median seconds, whether torch was imported) of `python <arguments>` run in cwd."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([sys.executable, *arguments], cwd=cwd, capture_output=True, text=True, timeout=600)
        times.append(time.perf_counter() - start)
    probe = subprocess.run(
        [sys.executable, "-X", "importtime", *arguments], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    torch = any(
        line.startswith("import time:") and line.split("|")[-1].strip() == "torch" for line in probe.stderr.splitlines()
    )
    return statistics.median(times), torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another checkout to measure the same commands in")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: give 1 or more runs per command")
    if args.before and not (args.before / "metric").is_dir():
        parser.error(
            f"--before {args.before}: not a checkout of this project (no metric/ in it); make one with "
            "`git worktree add <folder> <commit>`"
        )
    with tempfile.TemporaryDirectory() as folder:
        gallery = make_gallery(Path(folder))
        base, _ = timed(BASELINE, REPO, args.rounds)
        print(f"baseline: python -c 'import torch, timm, pytorch_lightning': {base:.2f} s (median of {args.rounds})")
        header = "| command | now: s | now / baseline | imports torch |"
        rule = "| --- | --- | --- | --- |"
        if args.before:
            header += " before: s | before imports torch |"
            rule += " --- | --- |"
        print(header)
        print(rule)
        for label, arguments in commands(gallery):
            seconds, torch = timed(arguments, REPO, args.rounds)
            row = f"| `{label}` | {seconds:.2f} | {seconds / base:.2f} | {'yes' if torch else 'no'} |"
            if args.before:
                then, then_torch = timed(arguments, args.before, args.rounds)
                row += f" {then:.2f} | {'yes' if then_torch else 'no'} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
