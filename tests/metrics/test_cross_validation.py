"""Cross-validation: the across-fold summary by hand, the one fold loop, and short runs of metric.train and
metric.raw_pixels through it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from datamodules.folds import CrossValidation
from metric.metrics.cross_validation import aggregate_folds
from metric.pipelines.folds import cross_validate


def test_summary_matches_a_hand_computation():
    per_fold = [
        {"fold": 0, "best_val_eer": 0.05, "test_eer": 0.10, "test_tar_at_far_0.01": 0.9},
        {"fold": 1, "best_val_eer": 0.07, "test_eer": 0.20, "test_tar_at_far_0.01": None},
        {"fold": 2, "best_val_eer": 0.09, "test_eer": 0.30, "test_tar_at_far_0.01": 0.8},
    ]
    summary = aggregate_folds(per_fold)
    # by hand: mean 0.2; deviations -0.1, 0, 0.1 -> sample variance 0.02 / 2 = 0.01 -> std 0.1;
    # 95% CI: 0.2 -+ t(0.975, 2) * 0.1 / sqrt(3) = 0.2 -+ 4.302653 * 0.057735 = 0.2 -+ 0.248414 -> [0 (clipped),
    # 0.448414]
    assert summary["test_eer"] == pytest.approx(0.2)
    assert summary["test_eer_std"] == pytest.approx(0.1)
    assert summary["test_eer_ci95"] == pytest.approx([0.0, 0.2 + 4.302653 * 0.1 / math.sqrt(3)])
    assert summary["best_val_eer"] == pytest.approx(0.07) and summary["best_val_eer_std"] == pytest.approx(0.02)
    assert "test_tar_at_far_0.01" not in summary and "1 lack it" in summary["test_tar_at_far_0.01_note"]
    assert [f["test_eer"] for f in summary["per_fold"]] == [0.10, 0.20, 0.30]


def test_the_fold_loop_runs_the_folds_asked_for_and_stops_on_a_silent_rank():
    seen = []
    summary = cross_validate(
        CrossValidation(folds=3), lambda fold: seen.append(fold.fold) or {"test_eer": 0.1 * fold.fold}
    )
    assert seen == [0, 1, 2] and summary["folds"] == 3 and summary["test_eer"] == pytest.approx(0.1)
    assert cross_validate(CrossValidation(folds=3, fold=1), lambda fold: {"test_eer": 0.5})["per_fold"][0]["fold"] == 1
    assert cross_validate(CrossValidation(folds=2), lambda fold: None) is None  # a DDP rank other than 0


def test_raw_pixel_baseline_runs_only_the_fold_asked_for(tmp_path, data_dir):

    from metric.pipelines.baselines import run_baseline
    from tests.conftest import TINY_DATA, compose_config

    cfg = compose_config("raw_pixels", [*TINY_DATA, "cv.folds=3", "cv.fold=2"], tmp_path, data_dir)
    summary = run_baseline(cfg)
    assert [f["fold"] for f in summary["per_fold"]] == [2]


def test_two_fold_run_reports_mean_and_std(make_cfg, tmp_path):
    from metric.pipelines.train import train

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
