"""Purity and the split share of pseudo-labels, against a hand-worked example."""

import numpy as np

from metric.metrics.pseudo_labels import pseudo_label_quality, purity, split_share


def test_purity_and_split_share_by_hand():
    # cluster 0: A A B   -> majority A, 2 correct
    # cluster 1: B B     -> 2 correct
    # cluster 2: C A     -> 1 correct (a tie counts one)
    pseudo = np.array([0, 0, 0, 1, 1, 2, 2])
    true = np.array(["A", "A", "B", "B", "B", "C", "A"])
    assert purity(pseudo, true) == 5 / 7
    # A is in clusters 0 and 2, B in 0 and 1, C only in 2: two of three identities are split
    assert split_share(pseudo, true) == 2 / 3


def test_perfect_clusters():
    pseudo = np.array([0, 0, 1, 1, 1])
    true = np.array([7, 7, 3, 3, 3])
    assert purity(pseudo, true) == 1.0 and split_share(pseudo, true) == 0.0


def test_quality_counts_the_pool():
    quality = pseudo_label_quality(np.array([0, 0, 0]), np.array([1, 1, 1]), np.array([1, 1, 1, 1, 2, 2, 3]), 3)
    assert quality == {
        "purity": 1.0,
        "true_identities_split": 0.0,
        "true_identities_in_pool": 3,
        "true_identities_clusterable": 1,
        "true_identities_kept": 1,
    }
    assert purity(np.array([]), np.array([])) is None
