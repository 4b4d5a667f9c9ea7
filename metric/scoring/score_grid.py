"""Exact genuine/impostor counts over a fine score grid: verification metrics over billions of pairs in bounded memory.

Scores are binned into `bins` equal bins over [low, high]; FAR and FRR are exact at every bin edge (a pair is
accepted at threshold t when score >= t). Memory is O(bins), whatever the number of pairs; the EER is
interpolated between edges, so its error is bounded by how much the rates move within one bin.
"""

from __future__ import annotations

import numpy as np

from metric.metrics import verification as V
from metric.scoring.pairs import ScoreBlock, iter_pair_tiles


class ScoreGrid:
    """Accumulates histograms of genuine and impostor scores; `roc()` gives a verification.Roc at the bin edges."""

    def __init__(self, low: float, high: float, bins: int = 1 << 16):
        if not high > low:
            raise ValueError(f"score range [{low}, {high}] is empty")
        self.low, self.high, self.bins = float(low), float(high), int(bins)
        self.scale = self.bins / (self.high - self.low)
        self.genuine = np.zeros(self.bins, dtype=np.int64)
        self.impostor = np.zeros(self.bins, dtype=np.int64)

    def bin_of(self, scores: np.ndarray) -> np.ndarray:
        index = np.floor((np.asarray(scores, dtype=np.float64) - self.low) * self.scale).astype(np.int64)
        return np.clip(index, 0, self.bins - 1)

    def add(self, scores: np.ndarray, genuine: np.ndarray) -> None:
        """Count a batch of scores: one pass, bin index * 2 + label, so no masked copies are made."""
        keyed = self.bin_of(scores) * 2 + np.asarray(genuine, dtype=np.int64)
        counts = np.bincount(keyed, minlength=2 * self.bins)
        self.impostor += counts[0::2]
        self.genuine += counts[1::2]

    @property
    def edges(self) -> np.ndarray:
        """Lower edge of each bin: the threshold that accepts that bin and every bin above it."""
        return self.low + np.arange(self.bins) / self.scale

    def roc(self) -> V.Roc:
        """Operating points at every bin edge, strictest first, as verification.roc gives for raw scores."""
        n_genuine, n_impostor = int(self.genuine.sum()), int(self.impostor.sum())
        if n_genuine == 0:
            raise ValueError("no genuine pairs: every identity needs at least two images")
        if n_impostor == 0:
            raise ValueError("no impostor pairs: the split needs at least two identities")
        accepted_genuine = np.cumsum(self.genuine[::-1])
        accepted_impostor = np.cumsum(self.impostor[::-1])
        return V.Roc(
            thresholds=np.r_[np.inf, self.edges[::-1]],
            far=np.r_[0.0, accepted_impostor / n_impostor],
            frr=1.0 - np.r_[0.0, accepted_genuine / n_genuine],
            n_genuine=n_genuine,
            n_impostor=n_impostor,
        )


def grid_from_embeddings(
    embeddings: np.ndarray,
    labels: np.ndarray,
    score_block: ScoreBlock,
    low: float,
    high: float,
    bins: int = 1 << 16,
    tile: int = 2048,
) -> ScoreGrid:
    """Every unordered pair i < j scored tile by tile and counted into a ScoreGrid; no pair is stored."""
    grid = ScoreGrid(low, high, bins)
    for scores, genuine, _, _ in iter_pair_tiles(embeddings, labels, score_block, tile, with_indices=False):
        grid.add(scores, genuine)
    return grid
