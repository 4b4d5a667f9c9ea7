"""The score grid: exact counts at every bin edge, the same EER as the exact pairs, over billions of pairs in bounded
memory."""

import numpy as np
import pytest

from metric.metrics import verification as V
from metric.scoring.pairs import cosine_block, pair_scores
from metric.scoring.score_grid import grid_from_embeddings


def test_score_grid_matches_exact_metrics():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(400, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = rng.integers(0, 40, 400)
    exact = V.roc(*pair_scores(emb, labels))
    grid = grid_from_embeddings(emb, labels, cosine_block, -1.0, 1.0, bins=1 << 18, tile=64).roc()
    assert (grid.n_genuine, grid.n_impostor) == (exact.n_genuine, exact.n_impostor)
    assert abs(V.eer(grid)[0] - V.eer(exact)[0]) < 1e-3
    assert abs(V.tar_at_far(grid, 1e-2) - V.tar_at_far(exact, 1e-2)) < 1e-3


@pytest.mark.slow
def test_100k_embeddings_in_bounded_memory():
    """About 5e9 pairs counted on a score grid: no N x N matrix, peak memory far under 4 GiB."""
    import resource

    rng = np.random.default_rng(2)
    n = 100_000
    labels = np.repeat(np.arange(n // 10), 10)
    emb = rng.normal(size=(n, 64)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    grid = grid_from_embeddings(emb, labels, cosine_block, -1.0, 1.0, bins=1 << 16, tile=4096)
    assert grid.genuine.sum() + grid.impostor.sum() == n * (n - 1) // 2
    assert 0 <= V.eer(grid.roc())[0] <= 1
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    assert peak_gib < 4, f"peak resident memory {peak_gib:.2f} GiB"
