"""Pseudo-identities from embeddings: clustering at a similarity threshold (scikit-learn's agglomerative clustering)
or into k groups (FAISS k-means), then a confidence filter that keeps only tight, large enough clusters."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from metric.errors import ConfigError

METHODS = ("agglomerative", "kmeans")
LINKAGES = ("average", "complete", "single")
FAISS_MISSING = (
    "self_train.method=kmeans uses FAISS: pip install -e '.[faiss]' (faiss-cpu), or use "
    "self_train.method=agglomerative."
)


@dataclass(frozen=True)
class PseudoLabels:
    """Which images a clustering kept and the pseudo-identity of each (0..n-1); `clusters` counts every cluster
    found before the filter, `too_small` and `too_loose` those the filter dropped and why."""

    kept: np.ndarray  # indices into the embedded images
    labels: np.ndarray  # one pseudo-identity per kept image
    clusters: int
    too_small: int
    too_loose: int

    @property
    def num_identities(self) -> int:
        return int(np.unique(self.labels).size)


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)


MAX_AGGLOMERATIVE = 20_000  # images: its pairwise distances grow as N^2 (20,000 images: 1.6 GB in float32)


def check_cluster_settings(method: str, min_size: int, linkage: str, threshold: float | None, k: int | None) -> None:
    """Every clustering setting, checked before any image is read or any model trains."""
    if method not in METHODS:
        raise ConfigError(f"self_train.method={method!r} is not one of {', '.join(METHODS)}.")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 2:
        raise ConfigError(
            f"self_train.min_cluster_size={min_size!r} must be a whole number >= 2: a pseudo-identity "
            "needs two images to give a genuine pair."
        )
    if linkage not in LINKAGES:
        raise ConfigError(f"self_train.linkage={linkage!r} is not one of {', '.join(LINKAGES)}.")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1.0 <= threshold <= 1.0
    ):
        raise ConfigError(
            f"self_train.threshold={threshold!r} must be a cosine similarity in [-1, 1], or null for "
            "the teacher's calibrated threshold."
        )
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 2):
        raise ConfigError(f"self_train.k={k!r} must be a whole number >= 2 (the number of k-means clusters).")
    if method == "kmeans" and importlib.util.find_spec("faiss") is None:
        raise ConfigError(FAISS_MISSING)


def agglomerative(embeddings: np.ndarray, threshold: float, linkage: str = "average") -> np.ndarray:
    """Cluster ids: merges stop where the (linkage) cosine similarity between clusters falls below `threshold`."""
    from sklearn.cluster import AgglomerativeClustering

    if linkage not in LINKAGES:
        raise ConfigError(f"self_train.linkage={linkage!r} is not one of {', '.join(LINKAGES)}.")
    if len(embeddings) < 2:
        return np.zeros(len(embeddings), np.int64)
    if len(embeddings) > MAX_AGGLOMERATIVE:
        raise ConfigError(
            f"{len(embeddings)} unlabeled images are too many for agglomerative clustering (its "
            f"memory grows as N^2; at most {MAX_AGGLOMERATIVE:,}): use self_train.method=kmeans "
            "self_train.k=<n>, or unlabeled.max_images."
        )
    model = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage=linkage, distance_threshold=1.0 - threshold
    )
    return model.fit_predict(embeddings).astype(np.int64)


def kmeans(embeddings: np.ndarray, k: int, seed: int = 0, iterations: int = 25, restarts: int = 10) -> np.ndarray:
    """Cluster ids from spherical k-means (FAISS) on unit embeddings, the best of `restarts` initialisations."""
    try:
        import faiss
    except ImportError:
        raise ConfigError(FAISS_MISSING) from None
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= len(embeddings):
        raise ConfigError(
            f"self_train.k={k!r} must be a whole number from 2 to the number of unlabeled images ({len(embeddings)})."
        )
    data = np.ascontiguousarray(unit_rows(embeddings))
    model = faiss.Kmeans(
        data.shape[1],
        k,
        niter=iterations,
        nredo=restarts,
        seed=seed,
        spherical=True,
        verbose=False,
        min_points_per_centroid=1,
    )  # few points per centroid is the normal case here
    model.train(data)
    _, assignment = model.index.search(data, 1)
    return assignment[:, 0].astype(np.int64)


def confident_clusters(embeddings: np.ndarray, assignment: np.ndarray, threshold: float, min_size: int) -> PseudoLabels:
    """Keep a cluster only when it has at least `min_size` images and every member's cosine similarity to the
    cluster's (unit) centroid is at least `threshold`; the kept clusters are numbered 0..n-1 by first image."""
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 2:
        raise ConfigError(
            f"self_train.min_cluster_size={min_size!r} must be a whole number >= 2: a pseudo-identity "
            "needs two images to give a genuine pair."
        )
    unit = unit_rows(embeddings)
    kept, labels = [], []
    too_small = too_loose = 0
    ids, first = np.unique(assignment, return_index=True)
    for cluster in ids[np.argsort(first)]:
        members = np.flatnonzero(assignment == cluster)
        if len(members) < min_size:
            too_small += 1
            continue
        centroid = unit_rows(unit[members].mean(0, keepdims=True))[0]
        if float((unit[members] @ centroid).min()) < threshold:
            too_loose += 1
            continue
        kept.append(members)
        labels.append(np.full(len(members), len(labels), np.int64))
    if not kept:
        return PseudoLabels(np.zeros(0, np.int64), np.zeros(0, np.int64), len(ids), too_small, too_loose)
    return PseudoLabels(np.concatenate(kept), np.concatenate(labels), len(ids), too_small, too_loose)


def pseudo_identities(
    embeddings: np.ndarray,
    threshold: float,
    method: str = "agglomerative",
    min_size: int = 3,
    linkage: str = "average",
    k: int | None = None,
    seed: int = 0,
) -> PseudoLabels:
    """Cluster the embeddings (`method`) and keep the confident clusters (see confident_clusters)."""
    if method not in METHODS:
        raise ConfigError(f"self_train.method={method!r} is not one of {', '.join(METHODS)}.")
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError(f"self_train.threshold={threshold!r} must be a cosine similarity in [-1, 1].")
    unit = unit_rows(embeddings)
    if method == "agglomerative":
        assignment = agglomerative(unit, threshold, linkage)
    else:
        assignment = kmeans(unit, k if k is not None else max(2, len(unit) // max(min_size, 2)), seed)
    return confident_clusters(unit, assignment, threshold, min_size)
