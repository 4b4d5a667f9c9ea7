"""How good pseudo-identities are, against the true identities when they exist: purity and the share of true
identities split across several pseudo-identities."""

from __future__ import annotations

import numpy as np


def purity(pseudo: np.ndarray, true: np.ndarray) -> float | None:
    """Share of the images whose pseudo-identity's majority true identity is their own (None: no image)."""
    if len(pseudo) == 0:
        return None
    correct = 0
    for cluster in np.unique(pseudo):
        _, counts = np.unique(true[pseudo == cluster], return_counts=True)
        correct += int(counts.max())
    return correct / len(pseudo)


def split_share(pseudo: np.ndarray, true: np.ndarray) -> float | None:
    """Share of the true identities among these images whose images fall into two or more pseudo-identities."""
    identities = np.unique(true)
    if identities.size == 0:
        return None
    split = sum(np.unique(pseudo[true == identity]).size > 1 for identity in identities)
    return split / identities.size


def pseudo_label_quality(pseudo: np.ndarray, true: np.ndarray, true_pool: np.ndarray, min_size: int) -> dict:
    """Purity and split share of the kept images, and how many of the pool's true identities could form a cluster
    (min_size images or more) and how many are represented in the kept ones."""
    _, pool_counts = np.unique(true_pool, return_counts=True)
    return {
        "purity": purity(pseudo, true),
        "true_identities_split": split_share(pseudo, true),
        "true_identities_in_pool": int(pool_counts.size),
        "true_identities_clusterable": int((pool_counts >= min_size).sum()),
        "true_identities_kept": int(np.unique(true).size),
    }
