"""Verification metrics from pair scores: FAR/FRR, thresholds, EER, TAR@FAR, ROC AUC, ROC/DET points.

Scores are similarities (higher = more alike); a pair is accepted when score >= threshold.
Every function here takes a flat array of scores and a boolean array of labels
(True = genuine pair) and uses O(number of scores) memory: one sort, then cumulative counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

ScoreBlock = Callable[[np.ndarray, np.ndarray], np.ndarray]


def cosine_block(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Scores of every row of a against every row of b, for L2-normalised embeddings."""
    return a @ b.T


@dataclass(frozen=True)
class Roc:
    """Operating points at every distinct score, from the strictest threshold to the loosest.

    Index i means: accept every pair whose score >= thresholds[i].
    """

    thresholds: np.ndarray
    far: np.ndarray
    frr: np.ndarray
    n_genuine: int
    n_impostor: int

    @property
    def tar(self) -> np.ndarray:
        return 1.0 - self.frr


def _as_arrays(scores: np.ndarray, genuine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    genuine = np.asarray(genuine).astype(bool).ravel()
    if scores.shape != genuine.shape:
        raise ValueError(f"scores ({scores.size}) and labels ({genuine.size}) differ in length")
    if not genuine.any():
        raise ValueError("no genuine pairs: every identity needs at least two images")
    if genuine.all():
        raise ValueError("no impostor pairs: the split needs at least two identities")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf")
    return scores, genuine


def roc(scores: np.ndarray, genuine: np.ndarray) -> Roc:
    """ROC points at every distinct score (ties collapse into one point), with the (0, 0) start."""
    scores, genuine = _as_arrays(scores, genuine)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    sorted_genuine = genuine[order]
    accepted_genuine = np.cumsum(sorted_genuine)
    accepted_impostor = np.cumsum(~sorted_genuine)
    # last index of each run of equal scores: a threshold accepts all of its ties at once
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), scores.size - 1]
    n_genuine = int(accepted_genuine[-1])
    n_impostor = int(accepted_impostor[-1])
    tar = np.r_[0.0, accepted_genuine[last_of_tie] / n_genuine]
    far = np.r_[0.0, accepted_impostor[last_of_tie] / n_impostor]
    thresholds = np.r_[np.inf, sorted_scores[last_of_tie]]
    return Roc(thresholds=thresholds, far=far, frr=1.0 - tar, n_genuine=n_genuine, n_impostor=n_impostor)


def far_frr_at(scores: np.ndarray, genuine: np.ndarray, threshold: float) -> tuple[float, float]:
    """FAR and FRR when accepting every pair with score >= threshold."""
    scores, genuine = _as_arrays(scores, genuine)
    accepted = scores >= threshold
    far = float(accepted[~genuine].mean())
    frr = float((~accepted[genuine]).mean())
    return far, frr


def eer(curve: Roc) -> tuple[float, float]:
    """Equal error rate, linearly interpolated where FAR - FRR changes sign, and its threshold."""
    diff = curve.far - curve.frr  # starts at -1 (reject all), rises to +1 (accept all)
    i = int(np.flatnonzero(diff >= 0)[0])
    if diff[i] == 0 or i == 0:
        return float(curve.far[i]), float(curve.thresholds[i])
    # the crossing lies between point i-1 (FAR < FRR) and point i (FAR >= FRR)
    w = -diff[i - 1] / (diff[i] - diff[i - 1])
    rate = (1 - w) * curve.far[i - 1] + w * curve.far[i]
    t_prev = curve.thresholds[i - 1] if np.isfinite(curve.thresholds[i - 1]) else curve.thresholds[i]
    threshold = (1 - w) * t_prev + w * curve.thresholds[i]
    return float(rate), float(threshold)


def threshold_at_far(curve: Roc, target_far: float) -> tuple[float, float, float]:
    """The loosest threshold whose FAR does not exceed target_far, with its FAR and FRR."""
    i = int(np.flatnonzero(curve.far <= target_far)[-1])
    return float(curve.thresholds[i]), float(curve.far[i]), float(curve.frr[i])


def min_supported_far(n_impostor: int) -> float:
    """The lowest FAR that n_impostor pairs can support: at least 3/FAR pairs are needed."""
    return 3.0 / n_impostor


def tar_at_far(curve: Roc, target_far: float) -> float | None:
    """TAR at the loosest threshold with FAR <= target_far; None when too few impostor pairs (< 3/FAR)."""
    if target_far < min_supported_far(curve.n_impostor):
        return None
    _, _, frr = threshold_at_far(curve, target_far)
    return 1.0 - frr


def roc_auc(curve: Roc) -> float:
    """Area under the ROC curve (TAR against FAR), trapezoidal, ties counted as half."""
    return float(np.trapezoid(curve.tar, curve.far))


def det_points(curve: Roc, max_points: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, FRR) pairs for a DET plot, thinned to at most max_points."""
    keep = np.unique(np.linspace(0, curve.far.size - 1, min(max_points, curve.far.size)).astype(int))
    return curve.far[keep], curve.frr[keep]


def iter_pair_tiles(
    embeddings: np.ndarray,
    labels: np.ndarray,
    score_block: ScoreBlock = cosine_block,
    tile: int = 2048,
    with_indices: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """(scores, genuine, first, second) of the pairs i < j, one tile of at most tile x tile at a time.

    Tiles wholly above the diagonal are taken whole; with_indices=False skips building first/second (None).
    """
    n = len(labels)
    for r0 in range(0, n, tile):
        r1 = min(r0 + tile, n)
        for c0 in range(r0, n, tile):
            c1 = min(c0 + tile, n)
            block = score_block(embeddings[r0:r1], embeddings[c0:c1])
            same = labels[r0:r1, None] == labels[None, c0:c1]
            if c0 >= r1:  # no diagonal in this tile: every entry is a pair i < j
                first = np.repeat(np.arange(r0, r1), c1 - c0) if with_indices else None
                second = np.tile(np.arange(c0, c1), r1 - r0) if with_indices else None
                yield block.ravel(), same.ravel(), first, second
            else:
                rows, cols = np.nonzero(np.arange(c0, c1)[None, :] > np.arange(r0, r1)[:, None])
                yield block[rows, cols], same[rows, cols], rows + r0 if with_indices else None, cols + c0 if with_indices else None


def pair_scores(
    embeddings: np.ndarray,
    labels: np.ndarray,
    tile: int = 2048,
    max_impostor_pairs: int | None = None,
    seed: int = 0,
    score_block: ScoreBlock = cosine_block,
    return_pairs: bool = False,
):
    """Scores of every unordered pair i < j, formed tile by tile; returns (scores, genuine[, first, second]).

    score_block maps two blocks of embeddings to their score matrix (cosine by default; see
    metric.matchers for the others). All genuine pairs are kept. When the impostor pairs outnumber
    max_impostor_pairs, each tile keeps a seeded uniform sample of them, so memory stays
    O(kept pairs + tile^2), never O(N x N).
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    n_impostor = count_pairs(labels)[1]
    keep_rate = 1.0
    if max_impostor_pairs is not None and n_impostor > max_impostor_pairs:
        keep_rate = max_impostor_pairs / n_impostor
    rng = np.random.default_rng(seed)
    parts: list[tuple[np.ndarray, ...]] = []
    for scores, genuine, first, second in iter_pair_tiles(embeddings, labels, score_block, tile):
        if keep_rate < 1.0:
            keep = genuine | (rng.random(scores.size) < keep_rate)
            scores, genuine, first, second = scores[keep], genuine[keep], first[keep], second[keep]
        parts.append((scores, genuine, first, second) if return_pairs else (scores, genuine))
    return tuple(np.concatenate(column) for column in zip(*parts))


def count_pairs(labels: np.ndarray) -> tuple[int, int]:
    """(genuine, impostor) counts of the unordered pairs among images with these identity labels."""
    counts = np.unique(np.asarray(labels), return_counts=True)[1].astype(np.int64)
    n = int(counts.sum())
    genuine = int((counts * (counts - 1) // 2).sum())
    return genuine, n * (n - 1) // 2 - genuine
