"""Identity-disjoint k-fold cross-validation: the folds, the across-fold summary, and a short 2-fold run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from datamodules.base import IdentitySplit
from datamodules.cv import CVFold, cross_validation_requested, fold_splits, identity_folds, requested_folds
from metric.cross_validation import aggregate_folds
from metric.errors import ConfigError


def fake_splits(identities: int = 23, images: int = 3) -> dict[str, IdentitySplit]:
    labels = np.repeat(np.arange(identities), images)
    def split(ids):
        keep = np.isin(labels, ids)
        return IdentitySplit(np.zeros((keep.sum(), 4, 4, 1), np.uint8), labels[keep],
                             [f"{i}.png" for i in np.flatnonzero(keep)])
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


def test_summary_matches_a_hand_computation():
    per_fold = [
        {"fold": 0, "best_val_eer": 0.05, "test_eer": 0.10, "test_tar_at_far_0.01": 0.9},
        {"fold": 1, "best_val_eer": 0.07, "test_eer": 0.20, "test_tar_at_far_0.01": None},
        {"fold": 2, "best_val_eer": 0.09, "test_eer": 0.30, "test_tar_at_far_0.01": 0.8},
    ]
    summary = aggregate_folds(per_fold)
    # by hand: mean 0.2; deviations -0.1, 0, 0.1 -> sample variance 0.02 / 2 = 0.01 -> std 0.1;
    # 95% CI: 0.2 -+ t(0.975, 2) * 0.1 / sqrt(3) = 0.2 -+ 4.303 * 0.057735 = 0.2 -+ 0.248434 -> [0 (clipped), 0.448434]
    assert summary["test_eer"] == pytest.approx(0.2)
    assert summary["test_eer_std"] == pytest.approx(0.1)
    assert summary["test_eer_ci95"] == pytest.approx([0.0, 0.2 + 4.303 * 0.1 / math.sqrt(3)])
    assert summary["best_val_eer"] == pytest.approx(0.07) and summary["best_val_eer_std"] == pytest.approx(0.02)
    assert "test_tar_at_far_0.01" not in summary and "1 lack it" in summary["test_tar_at_far_0.01_note"]
    assert [f["test_eer"] for f in summary["per_fold"]] == [0.10, 0.20, 0.30]


def test_requested_folds_are_all_or_the_one_named():
    from omegaconf import OmegaConf

    every = requested_folds(OmegaConf.create({"folds": 3, "seed": 2, "val_identities": 4}))
    assert every == [CVFold(3, i, 2, 4) for i in range(3)]
    assert requested_folds(OmegaConf.create({"folds": 3, "fold": 1})) == [CVFold(3, 1, 0, None)]
    with pytest.raises(ConfigError, match=r"cv.fold=3 must be an integer in 0\.\.2"):
        requested_folds(OmegaConf.create({"folds": 3, "fold": 3}))
    with pytest.raises(ConfigError, match=r"cv.fold=True must be an integer"):
        requested_folds(OmegaConf.create({"folds": 3, "fold": True}))
    assert not cross_validation_requested(None) and not cross_validation_requested(OmegaConf.create({"folds": None}))
    with pytest.raises(ConfigError, match="cv.fold=1 needs cv.folds=k"):
        cross_validation_requested(OmegaConf.create({"folds": None, "fold": 1}))


def test_raw_pixel_baseline_runs_only_the_fold_asked_for(tmp_path, data_dir):
    from hydra import compose, initialize_config_dir

    from metric.raw_pixels import cross_validated
    from tests.conftest import CONF_DIR, TINY_DATA

    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose(config_name="raw_pixels", overrides=[f"paths.output_dir={tmp_path}", f"paths.data_dir={data_dir}",
                                                           *TINY_DATA, "cv.folds=3", "cv.fold=2"])
    summary = cross_validated(cfg)
    assert [f["fold"] for f in summary["per_fold"]] == [2]


def test_two_fold_run_reports_mean_and_std(make_cfg, tmp_path):
    from metric.train import train

    cfg = make_cfg("experiment=triplet", "cv.folds=2", "trainer.max_epochs=1", "trainer.enable_progress_bar=false")
    summary = train(cfg)
    assert summary["folds"] == 2 and len(summary["per_fold"]) == 2
    assert summary["test_eer"] == pytest.approx(np.mean([f["test_eer"] for f in summary["per_fold"]]))
    assert summary["test_eer_std"] == pytest.approx(np.std([f["test_eer"] for f in summary["per_fold"]], ddof=1))
    assert sum(f["test_identities"] for f in summary["per_fold"]) == 24 + 6 + 6  # every identity tested once
    run = tmp_path / "run"
    assert json.loads((run / "summary.json").read_text())["test_eer"] == summary["test_eer"]
    for index in range(2):
        assert (run / f"fold_{index}" / "summary.json").is_file()
        assert list((run / f"fold_{index}" / "checkpoints").glob("best-*.ckpt"))
