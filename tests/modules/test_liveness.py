"""+experiment=liveness: debug runs on both datasets, the checkpoint record and its threshold, the report checked
against the ISO metrics recomputed from its own per-presentation scores, and the config checks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from metric.errors import ConfigError
from metric.metrics.liveness import pad_summary
from metric.model.checkpoint import CHECKPOINT_KEY
from metric.pipelines.train import train
from tests.conftest import ORL, TINY_LIVENESS, compose_train

SPOOF_CODES = {"live": 0, "photo": 1, "a4": 3, "pc": 7, "phone": 9}


def test_debug_fast_trains_on_the_official_layout(spoof_tree, tmp_path, data_dir):
    cfg = compose_train([*TINY_LIVENESS, f"datamodule.root={spoof_tree}", "debug=fast"], tmp_path, data_dir)
    summary = train(cfg)
    assert summary["task"] == "liveness" and 0 <= summary["test_acer"] <= 1


@pytest.mark.skipif(not ORL.is_dir(), reason="ORL faces (../shared/data/att_faces) are not present")
def test_debug_fast_trains_on_simulated_attacks(tmp_path, data_dir):
    cfg = compose_train(
        [
            "experiment=liveness",
            "datamodule=simulated_spoof",
            f"datamodule.root={ORL}",
            "datamodule.image_size=[32,32]",
            "datamodule.max_identities=12",
            "debug=fast",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path,
        data_dir,
    )
    summary = train(cfg)
    assert set(summary["data_presentations_test"]) == {"live", "a4", "pc"}


def test_the_checkpoint_is_a_liveness_record_with_its_threshold(tiny_liveness_run):
    cfg, summary = tiny_liveness_run
    checkpoint = torch.load(summary["best_checkpoint"], map_location="cpu", weights_only=True)
    record = checkpoint[CHECKPOINT_KEY]
    assert record["task"] == "liveness" and record["format"] == 4  # the oldest format that reads a liveness net
    assert record["net"] == {"kind": "liveness", "backbone": "resnet10t", "in_chans": 3, "aux_heads": False}
    assert record["threshold"]["threshold"] == pytest.approx(summary["threshold"])
    assert record["threshold"]["target_apcer"] == 0.05 and record["threshold"]["val_apcer_max"] <= 0.05
    assert record["preprocess"]["image_size"] == [32, 32]


def test_the_report_matches_the_metrics_recomputed_from_its_scores(tiny_liveness_run):
    cfg, summary = tiny_liveness_run
    out = Path(cfg.paths.output_dir)
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    scores = np.array([float(r["liveness_score"]) for r in rows])
    types = np.array([SPOOF_CODES[r["spoof_type"]] for r in rows])
    again = pad_summary(scores, types, summary["threshold"])
    for key in ("apcer_max", "apcer_pooled", "bpcer", "acer", "eer", "bpcer_at_apcer_5pct"):
        assert summary[f"test_{key}"] == pytest.approx(again[key]), key
    with open(out / "test_by_spoof_type.csv") as f:
        by_type = {r["condition"]: r for r in csv.DictReader(f)}
    assert set(by_type) == set(SPOOF_CODES)
    assert float(by_type["pc"]["apcer"]) == pytest.approx(again["apcer_7"])
    for name in ("roc.png", "det.png", "worst_errors.png", "test_by_illumination.csv", "test_by_environment.csv"):
        assert (out / name).exists(), name


def test_the_run_learns_the_fixture_attacks(tiny_liveness_run):
    _, summary = tiny_liveness_run  # the fixture's attacks carry a stripe texture a tiny net learns in 3 epochs
    assert summary["test_eer"] < 0.25 and summary["best_val_eer"] < 0.25


def test_aux_heads_train_and_are_recorded(spoof_tree, tmp_path, data_dir):
    cfg = compose_train(
        [*TINY_LIVENESS, f"datamodule.root={spoof_tree}", "debug=fast", "model.aux_heads=true"], tmp_path, data_dir
    )
    summary = train(cfg)
    assert summary["task"] == "liveness"


def test_the_fourier_head_trains_and_is_recorded(spoof_tree, tmp_path, data_dir):
    """Issue 31, part 4 (frequency-domain supervision): model.fourier_head=true adds the spectrum loss to training;
    the checkpoint records the head and loads again; scoring uses the live logit only."""
    from metric.model.checkpoint import build_liveness_net

    cfg = compose_train(
        [*TINY_LIVENESS, f"datamodule.root={spoof_tree}", "trainer.max_epochs=1", "model.fourier_head=true"],
        tmp_path,
        data_dir,
    )
    summary = train(cfg)
    checkpoint = torch.load(summary["best_checkpoint"], map_location="cpu", weights_only=True)
    assert checkpoint[CHECKPOINT_KEY]["net"]["fourier_head"] is True
    assert any(key.startswith("net.spectrum.") for key in checkpoint["state_dict"])
    net = build_liveness_net(checkpoint)
    assert net(torch.zeros(2, 3, 32, 32)).keys() == {"live"}


def test_the_fourier_target_finds_a_stripe_frequency():
    from metric.model.liveness_net import fourier_target

    xx = torch.arange(64, dtype=torch.float32)
    stripes = torch.cos(2 * torch.pi * xx / 4).expand(1, 3, 64, 64)  # a period of 4 px across
    target = fourier_target(stripes, (8, 8))
    assert target.shape == (1, 1, 8, 8) and float(target.min()) == 0.0 and float(target.max()) == 1.0
    peaks = torch.zeros(8, 8, dtype=torch.bool)
    peaks[4, [2, 6]] = True  # +-16 cycles across (pooled columns 2 and 6), none down (row 4 holds the centre)
    assert bool((target[0, 0][peaks] == 1.0).all()) and float(target[0, 0][~peaks].max()) < 0.01


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["datamodule=synthetic"], "needs live/spoof data"),
        (["model=embedding_net"], "trains a LivenessNet"),
        (["loss=triplet_margin"], "takes no loss"),
        (["cv.folds=3"], "does not cross-validate"),
        (["target_apcer=1.5"], "target_apcer=1.5 must lie in"),
        (["model.fourier_head=maybe"], "model.fourier_head='maybe' must be true or false"),
        (["model.fourier_head=true", "model.backbone=vit_tiny_patch16_224"], "no feature stage at stride <= 8"),
        (["module.fourier_weight=-1"], "module.fourier_weight=-1 must be a number >= 0"),
    ],
)
def test_bad_liveness_configs_get_one_clear_message(spoof_tree, tmp_path, data_dir, overrides, message):
    data = [] if overrides == ["datamodule=synthetic"] else [f"datamodule.root={spoof_tree}"]
    cfg = compose_train(["experiment=liveness", *data, *overrides], tmp_path, data_dir)
    with pytest.raises(ConfigError, match=message):
        train(cfg)


def test_threshold_is_calibrated_on_validation_at_the_target(tiny_liveness_run):
    cfg, summary = tiny_liveness_run
    assert summary["threshold_source"] == "val" and summary["val_apcer_max"] <= cfg.target_apcer
