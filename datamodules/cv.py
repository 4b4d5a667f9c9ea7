"""Identity-disjoint k-fold cross-validation: identity folds, and a fold's train / validation / test splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules.base import IdentitySplit
from metric.errors import ConfigError


@dataclass(frozen=True)
class CVFold:
    """Fold `fold` of `folds`: its identities are the test split; `val_identities` of the rest (None: as many as
    the dataset's own validation split) are the validation split; the others train."""

    folds: int
    fold: int
    seed: int = 0
    val_identities: int | None = None


def cross_validation_requested(cv) -> bool:
    """Whether a `cv` config node (or None) asks for cross-validation; cv.fold alone is a mistake, said clearly."""
    if cv is None or not cv.get("folds"):
        if cv is not None and cv.get("fold") is not None:
            raise ConfigError(f"cv.fold={cv.fold} needs cv.folds=k (how many folds there are), e.g. cv.folds=5.")
        return False
    return True


def requested_folds(cv) -> list[CVFold]:
    """The folds a `cv` config node asks for (folds, seed, val_identities, and fold: one of them, or null: all)."""
    only = cv.get("fold")
    if only is not None and (isinstance(only, bool) or not isinstance(only, int) or not 0 <= only < cv.folds):
        raise ConfigError(f"cv.fold={only!r} must be an integer in 0..{cv.folds - 1} (one fold's index), or null for "
                          "every fold.")
    return [CVFold(cv.folds, index, cv.get("seed", 0), cv.get("val_identities"))
            for index in (range(cv.folds) if only is None else [only])]


def identity_folds(identities: np.ndarray, folds: int, seed: int = 0) -> list[np.ndarray]:
    """Shuffle the distinct identities (seeded) and cut them into `folds` disjoint parts of near-equal size."""
    identities = np.unique(identities)
    if folds < 2:
        raise ConfigError(f"cv.folds={folds}: cross-validation needs at least 2 folds.")
    if folds > identities.size:
        raise ConfigError(f"cv.folds={folds} is more than the {identities.size} identities of the dataset; "
                          f"use cv.folds<={identities.size}.")
    order = np.random.default_rng(seed).permutation(identities)
    return [np.sort(part) for part in np.array_split(order, folds)]


def merge_splits(splits: dict[str, IdentitySplit]) -> IdentitySplit:
    """Every image of every split in one split (identity labels are already disjoint across splits)."""
    parts = [splits[name] for name in ("train", "val", "test")]
    return IdentitySplit(
        images=np.concatenate([p.images for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        sources=[s for p in parts for s in p.sources],
        factors=[f for p in parts for f in p.factors],
    )


def select(split: IdentitySplit, identities: np.ndarray) -> IdentitySplit:
    keep = np.flatnonzero(np.isin(split.labels, identities))
    return IdentitySplit(split.images[keep], split.labels[keep], [split.sources[i] for i in keep],
                         [split.factors[i] for i in keep])


def fold_splits(splits: dict[str, IdentitySplit], cv: CVFold) -> dict[str, IdentitySplit]:
    """The dataset's splits pooled and re-cut for one fold: test = this fold's identities, validation = a seeded
    draw from the other folds' identities, train = the rest. The test identities never reach training or
    model selection."""
    if not 0 <= cv.fold < cv.folds:
        raise ConfigError(f"cv.fold={cv.fold} is outside 0..{cv.folds - 1}.")
    pooled = merge_splits(splits)
    parts = identity_folds(pooled.labels, cv.folds, cv.seed)
    test_ids = parts[cv.fold]
    rest = np.concatenate([p for i, p in enumerate(parts) if i != cv.fold])
    n_val = splits["val"].num_identities if cv.val_identities is None else cv.val_identities
    if not 2 <= n_val <= rest.size - 2:
        raise ConfigError(f"cv.val_identities={n_val}: needs 2 to {rest.size - 2} of the {rest.size} identities "
                          "outside the test fold (the rest must train).")
    val_ids = np.random.default_rng([cv.seed, cv.fold]).choice(rest, n_val, replace=False)
    train_ids = np.setdiff1d(rest, val_ids)
    return {"train": select(pooled, train_ids), "val": select(pooled, val_ids), "test": select(pooled, test_ids)}
