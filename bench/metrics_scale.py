"""EER over 1e7 scores: this project's score-grid counts vs sklearn's roc_curve on the same scores, side by side.

Measures wall time and peak traced memory (tracemalloc) for each, in alternating rounds, and the EER difference.
Run: python bench/metrics_scale.py [--scores 10000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from sklearn.metrics import roc_curve

from metric.metrics import verification as V
from metric.scoring.score_grid import ScoreGrid


def eer_sklearn(scores: np.ndarray, genuine: np.ndarray) -> float:
    fpr, tpr, thresholds = roc_curve(genuine, scores)
    return V.eer(V.Roc(thresholds, fpr, 1 - tpr, int(genuine.sum()), int((~genuine).sum())))[0]


def eer_grid(scores: np.ndarray, genuine: np.ndarray, bins: int) -> float:
    grid = ScoreGrid(-1.0, 1.0, bins)
    for start in range(0, scores.size, 1 << 22):  # stream, as evaluation does tile by tile
        grid.add(scores[start : start + (1 << 22)], genuine[start : start + (1 << 22)])
    return V.eer(grid.roc())[0]


def measure(fn, *args) -> tuple[float, float, float]:
    tracemalloc.start()
    start = time.perf_counter()
    value = fn(*args)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return value, seconds, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=int, default=10_000_000)
    parser.add_argument("--bins", type=int, default=1 << 20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    genuine = rng.random(args.scores) < 0.01
    scores = np.clip(np.where(genuine, rng.normal(0.6, 0.15, args.scores), rng.normal(0.1, 0.15, args.scores)), -1, 1)
    scores = scores.astype(np.float32)
    results = {"sklearn": [], "grid": []}
    for r in range(args.rounds):
        for name, fn, extra in (("sklearn", eer_sklearn, ()), ("grid", eer_grid, (args.bins,))):
            results[name].append(measure(fn, scores, genuine, *extra))
        print(f"round {r + 1}: sklearn {results['sklearn'][-1][1]:.2f} s, grid {results['grid'][-1][1]:.2f} s")
    sk = np.median([t for _, t, _ in results["sklearn"]])
    gr = np.median([t for _, t, _ in results["grid"]])
    sk_mem = max(m for _, _, m in results["sklearn"])
    gr_mem = max(m for _, _, m in results["grid"])
    diff = abs(results["sklearn"][0][0] - results["grid"][0][0])
    print(
        f"{args.scores:.0e} scores: sklearn roc_curve {sk:.2f} s, peak {sk_mem:.0f} MiB | score grid "
        f"({args.bins} bins) {gr:.2f} s, peak {gr_mem:.0f} MiB | speed-up {sk / gr:.1f}x | "
        f"EER {results['grid'][0][0]:.6f} vs "
        f"{results['sklearn'][0][0]:.6f}, difference {diff:.1e}"
    )


if __name__ == "__main__":
    main()
