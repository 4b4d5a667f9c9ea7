"""The siamese experiment learns: a short run on the default dataset reaches a test EER below 10%."""

import json
from pathlib import Path

import pytest

from metric.model.checkpoint import read_checkpoint


@pytest.mark.slow  # a multi-minute run on 2 cores: `pytest -m slow`
def test_short_siamese_run_on_default_data_is_below_10_percent(siamese_default_run):
    cfg, summary = siamese_default_run
    print(f"siamese, 3 epochs: test EER {summary['test_eer']:.4f}")
    assert summary["matcher"] == "logistic"
    assert summary["test_eer"] < 0.10
    assert json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())["test_eer"] == summary["test_eer"]
    # the threshold is calibrated at the target FAR and reported with what test actually gave
    assert summary["target_far"] == 1e-3 and summary["calibration_warning"] is None
    assert summary["val_far_at_threshold"] <= 1e-3
    assert 0 <= summary["test_far_at_threshold"] <= 1 and 0 <= summary["test_frr_at_threshold"] <= 1
    record = read_checkpoint(summary["best_checkpoint"])["metric_faces"]
    assert record["head"]["distance"] == "abs" and record["calibrated_matcher"] == "logistic"
