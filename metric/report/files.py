"""Report files beside summary.json: scores.csv (one row per pair, every number recomputable) and row tables."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def write_scores_csv(
    path: Path,
    scores: np.ndarray,
    genuine: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    sources: list[str],
    identities: list[str],
    threshold: float,
) -> None:
    """One row per pair: both images, both identities (by name where the dataset names them), the score, the label
    and the decision."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_a", "image_b", "identity_a", "identity_b", "score", "genuine", "accepted"])
        for s, g, i, j in zip(scores.tolist(), genuine.tolist(), first.tolist(), second.tolist()):
            writer.writerow(
                [sources[i], sources[j], identities[i], identities[j], f"{s:.9g}", int(g), int(s >= threshold)]
            )


def write_rows_csv(path: Path, rows: list[dict]) -> None:
    """A list of same-keyed dicts as a CSV table (nothing written for no rows)."""
    if not rows:
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
