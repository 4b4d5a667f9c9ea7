"""Identity-disjoint k-fold cross-validation folds: every identity tested once, never in two splits, and the `cv`
config group's plan."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.folds import CrossValidation, CVFold, fold_splits, identity_folds
from datamodules.split import IdentitySplit
from metric.errors import ConfigError


def fake_splits(identities: int = 23, images: int = 3) -> dict[str, IdentitySplit]:
    labels = np.repeat(np.arange(identities), images)

    def split(ids):
        keep = np.isin(labels, ids)
        return IdentitySplit(
            np.zeros((keep.sum(), 4, 4, 1), np.uint8), labels[keep], [f"{i}.png" for i in np.flatnonzero(keep)]
        )

    return {"train": split(np.arange(0, 15)), "val": split(np.arange(15, 19)), "test": split(np.arange(19, 23))}


@pytest.mark.parametrize("folds", [2, 5, 7])
def test_folds_are_identity_disjoint_and_test_every_identity_once(folds):
    splits = fake_splits()
    tested = []
    for index in range(folds):
        fold = fold_splits(splits, CVFold(folds, index, seed=3))
        ids = {name: set(split.labels.tolist()) for name, split in fold.items()}
        assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
        assert ids["train"] | ids["val"] | ids["test"] == set(range(23))  # nothing dropped
        assert len(ids["val"]) == 4  # as many as the dataset's own validation split
        assert len(fold["test"].labels) == 3 * len(ids["test"])  # every image of a test identity
        tested.extend(ids["test"])
    assert sorted(tested) == list(range(23))  # every identity is test exactly once
    sizes = [len(p) for p in identity_folds(np.arange(23), folds, seed=3)]
    assert max(sizes) - min(sizes) <= 1


def test_bad_fold_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="cv.folds=1"):
        identity_folds(np.arange(10), 1)
    with pytest.raises(ConfigError, match="more than the 10 identities"):
        identity_folds(np.arange(10), 11)
    with pytest.raises(ConfigError, match="cv.val_identities=30"):
        fold_splits(fake_splits(), CVFold(5, 0, val_identities=30))


def test_cv_requests_every_fold_or_the_one_named():
    every = CrossValidation(folds=3, seed=2, val_identities=4).requested()
    assert every == [CVFold(3, i, 2, 4) for i in range(3)]
    assert CrossValidation(folds=3, fold=1).requested() == [CVFold(3, 1, 0, None)]
    with pytest.raises(ConfigError, match=r"cv.fold=3 must be an integer in 0\.\.2"):
        CrossValidation(folds=3, fold=3)
    with pytest.raises(ConfigError, match=r"cv.fold=True must be an integer"):
        CrossValidation(folds=3, fold=True)
    assert not CrossValidation().enabled and not CrossValidation(folds=None).enabled
    with pytest.raises(ConfigError, match="cv.fold=1 needs cv.folds=k"):
        CrossValidation(folds=None, fold=1)


def test_the_cv_config_group_builds_the_plan(tmp_path, data_dir):
    from metric.config_factory import build_from_config
    from tests.conftest import compose_train

    cfg = compose_train(["cv.folds=4", "cv.fold=3", "cv.seed=5"], tmp_path, data_dir)
    assert build_from_config(cfg.cv).requested() == [CVFold(4, 3, 5, None)]
