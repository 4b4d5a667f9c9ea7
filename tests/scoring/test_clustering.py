"""Pseudo-identities: the confidence filter keeps only large, tight clusters, on embeddings of known structure."""

import numpy as np
import pytest

from metric.errors import ConfigError
from metric.scoring.clustering import confident_clusters, pseudo_identities


def around(centre: np.ndarray, count: int, spread: float, rng) -> np.ndarray:
    points = centre + spread * rng.standard_normal((count, centre.size))
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def known_structure():
    """Three tight clusters of 6, one tight pair, and six scattered singletons (orthogonal directions)."""
    rng = np.random.default_rng(0)
    axes = np.eye(32)
    parts = [around(axes[i], 6, 0.03, rng) for i in range(3)] + [around(axes[3], 2, 0.03, rng)]
    parts += [around(axes[4 + i], 1, 0.0, rng) for i in range(6)]
    truth = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    return np.concatenate(parts).astype(np.float32), truth


@pytest.mark.parametrize("method", ["agglomerative", "kmeans"])
def test_only_confident_clusters_are_kept(method):
    embeddings, truth = known_structure()
    pseudo = pseudo_identities(embeddings, threshold=0.9, method=method, min_size=3, k=10)
    assert pseudo.num_identities == 3
    assert sorted(np.unique(truth[pseudo.kept]).tolist()) == [0, 1, 2]  # the pair and the singletons are dropped
    for label in range(3):  # each pseudo-identity is exactly one true identity, whole
        members = truth[pseudo.kept[pseudo.labels == label]]
        assert np.unique(members).size == 1 and members.size == 6


def test_a_loose_cluster_is_dropped_even_when_large():
    embeddings, _ = known_structure()
    assignment = np.zeros(len(embeddings), np.int64)  # everything in one cluster: members far from the centroid
    pseudo = confident_clusters(embeddings, assignment, threshold=0.9, min_size=3)
    assert pseudo.num_identities == 0 and pseudo.too_loose == 1 and pseudo.too_small == 0


def test_too_small_clusters_are_counted():
    embeddings, truth = known_structure()
    pseudo = confident_clusters(embeddings, truth, threshold=0.9, min_size=3)
    assert (pseudo.num_identities, pseudo.too_small, pseudo.too_loose) == (3, 7, 0)


def test_a_threshold_too_loose_merges_every_identity():
    embeddings, truth = known_structure()
    merged = pseudo_identities(embeddings, threshold=-0.5, min_size=3)
    assert merged.clusters == merged.num_identities == 1 and merged.kept.size == truth.size


def test_bad_settings_name_the_key():
    embeddings, _ = known_structure()
    with pytest.raises(ConfigError, match="self_train.min_cluster_size"):
        pseudo_identities(embeddings, threshold=0.9, min_size=1)
    with pytest.raises(ConfigError, match="self_train.method"):
        pseudo_identities(embeddings, threshold=0.9, method="dbscan")
    with pytest.raises(ConfigError, match="self_train.k"):
        pseudo_identities(embeddings, threshold=0.9, method="kmeans", k=1000)
