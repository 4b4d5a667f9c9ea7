"""The one pair builder: every unordered pair i < j of a set of labelled embeddings, whole or tile by tile, and
their scores in bounded memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

ScoreBlock = Callable[[np.ndarray, np.ndarray], np.ndarray]


def cosine_block(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Scores of every row of a against every row of b, for L2-normalised embeddings."""
    return a @ b.T


def label_pairs(labels):
    """(first, second, genuine) for every unordered pair first < second, in row-major order: numpy arrays for a
    numpy label vector, tensors on the labels' device for a tensor (a training batch)."""
    n = len(labels)
    if isinstance(labels, torch.Tensor):
        first, second = torch.triu_indices(n, n, offset=1, device=labels.device)
    else:
        first, second = np.triu_indices(n, k=1)
    return first, second, labels[first] == labels[second]


def sample_pairs(labels: np.ndarray, genuine: bool, count: int, seed: int) -> np.ndarray:
    """Up to `count` (first, second) index pairs, all genuine or all impostor, drawn without repetition (seeded)."""
    first, second, same = label_pairs(labels)
    keep = same == genuine
    pairs = np.stack([first[keep], second[keep]], 1)
    rng = np.random.default_rng(seed)
    return pairs[np.sort(rng.choice(len(pairs), min(count, len(pairs)), replace=False))]


def count_pairs(labels: np.ndarray) -> tuple[int, int]:
    """(genuine, impostor) counts of the unordered pairs among images with these identity labels."""
    counts = np.unique(np.asarray(labels), return_counts=True)[1].astype(np.int64)
    n = int(counts.sum())
    genuine = int((counts * (counts - 1) // 2).sum())
    return genuine, n * (n - 1) // 2 - genuine


def iter_pair_tiles(
    embeddings: np.ndarray,
    labels: np.ndarray,
    score_block: ScoreBlock = cosine_block,
    tile: int = 2048,
    with_indices: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """(scores, genuine, first, second) of the pairs i < j, one tile of at most tile x tile at a time.

    Tiles wholly above the diagonal are taken whole; a diagonal tile keeps its own pairs i < j (label_pairs);
    with_indices=False skips building first/second (None).
    """
    n = len(labels)
    for r0 in range(0, n, tile):
        r1 = min(r0 + tile, n)
        for c0 in range(r0, n, tile):
            c1 = min(c0 + tile, n)
            block = score_block(embeddings[r0:r1], embeddings[c0:c1])
            if c0 >= r1:  # no diagonal in this tile: every entry is a pair i < j
                same = labels[r0:r1, None] == labels[None, c0:c1]
                first = np.repeat(np.arange(r0, r1), c1 - c0) if with_indices else None
                second = np.tile(np.arange(c0, c1), r1 - r0) if with_indices else None
                yield block.ravel(), same.ravel(), first, second
            else:  # a square tile on the diagonal (c0 == r0)
                rows, cols, same = label_pairs(labels[r0:r1])
                yield block[rows, cols], same, rows + r0 if with_indices else None, cols + c0 if with_indices else None


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

    score_block maps two blocks of embeddings to their score matrix (cosine by default; a Matcher's
    numpy_block for the others). All genuine pairs are kept. When the impostor pairs outnumber
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
