"""Identity-disjoint k-fold cross-validation: the `cv` config group, identity folds, and a fold's three splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules.split import IdentitySplit, merge_splits
from metric.errors import ConfigError

OFFICIAL = "lfw"  # cv.folds=lfw: the official folds of datamodule=lfw
LFW_FOLDS = 10


@dataclass(frozen=True)
class CVFold:
    """Fold `fold` of `folds`: its identities are the test split; `val_identities` of the rest (None: as many as
    the dataset's own validation split) are the validation split; the others train."""

    folds: int
    fold: int
    seed: int = 0
    val_identities: int | None = None
    official: bool = False  # the dataset's own folds (cv.folds=lfw), not a seeded shuffle of identities


@dataclass(frozen=True)
class CrossValidation:
    """`cv.folds=k` pools a dataset's identities into k folds and trains k models; `cv.fold=i` runs fold i only
    (so folds can run as separate jobs); `cv.seed` shuffles identities into folds; `cv.val_identities` sets
    how many validation identities each fold draws from the others. `folds: null` is one run on the
    dataset's own splits. `cv.folds=lfw`: LFW's ten official View 2 folds (datamodule=lfw)."""

    folds: int | str | None = None
    seed: int = 0
    fold: int | None = None
    val_identities: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.folds, str):
            if self.folds != OFFICIAL:
                raise ConfigError(f"cv.folds={self.folds!r}: give a number of folds, or lfw for LFW's official folds.")
            self.check_fold(LFW_FOLDS)
            return
        if not self.folds:
            if self.fold is not None:
                raise ConfigError(f"cv.fold={self.fold} needs cv.folds=k (how many folds there are), e.g. cv.folds=5.")
            return
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigError(f"cv.folds={self.folds!r}: cross-validation needs an integer of at least 2 folds.")
        self.check_fold(self.folds)

    def check_fold(self, folds: int) -> None:
        only = self.fold
        if only is not None and (isinstance(only, bool) or not isinstance(only, int) or not 0 <= only < folds):
            raise ConfigError(
                f"cv.fold={only!r} must be an integer in 0..{folds - 1} (one fold's index), or null for every fold."
            )

    @property
    def enabled(self) -> bool:
        return bool(self.folds)

    def requested(self) -> list[CVFold]:
        """Every fold, or only the one `fold` names."""
        official = self.folds == OFFICIAL
        folds = LFW_FOLDS if official else self.folds
        indices = range(folds) if self.fold is None else [self.fold]
        return [CVFold(folds, index, self.seed, self.val_identities, official) for index in indices]


def identity_folds(identities: np.ndarray, folds: int, seed: int = 0) -> list[np.ndarray]:
    """Shuffle the distinct identities (seeded) and cut them into `folds` disjoint parts of near-equal size."""
    identities = np.unique(identities)
    if folds < 2:
        raise ConfigError(f"cv.folds={folds}: cross-validation needs at least 2 folds.")
    if folds > identities.size:
        raise ConfigError(
            f"cv.folds={folds} is more than the {identities.size} identities of the dataset; "
            f"use cv.folds<={identities.size}."
        )
    order = np.random.default_rng(seed).permutation(identities)
    return [np.sort(part) for part in np.array_split(order, folds)]


def fold_splits(splits: dict[str, IdentitySplit], cv: CVFold) -> dict[str, IdentitySplit]:
    """The dataset's splits pooled and re-cut for one fold: test = this fold's identities, validation = a seeded
    draw from the other folds' identities, train = the rest. The test identities never reach training or
    model selection."""
    if not 0 <= cv.fold < cv.folds:
        raise ConfigError(f"cv.fold={cv.fold} is outside 0..{cv.folds - 1}.")
    pooled = merge_splits(splits)
    parts = identity_folds(pooled.labels, cv.folds, cv.seed)
    rest = np.concatenate([p for i, p in enumerate(parts) if i != cv.fold])
    n_val = splits["val"].num_identities if cv.val_identities is None else cv.val_identities
    return cut_around_test(pooled, parts[cv.fold], rest, n_val, cv)


def cut_around_test(
    pooled: IdentitySplit, test_ids: np.ndarray, rest: np.ndarray, n_val: int, cv: CVFold
) -> dict[str, IdentitySplit]:
    """test = `test_ids`; validation = `n_val` identities drawn (seeded by the fold) from `rest`; train = the rest."""
    if not 2 <= n_val <= rest.size - 2:
        raise ConfigError(
            f"cv.val_identities={n_val}: needs 2 to {rest.size - 2} of the {rest.size} identities "
            "outside the test fold (the rest must train)."
        )
    val_ids = np.random.default_rng([cv.seed, cv.fold]).choice(rest, n_val, replace=False)
    train_ids = np.setdiff1d(rest, val_ids)
    return {"train": pooled.select(train_ids), "val": pooled.select(val_ids), "test": pooled.select(test_ids)}
