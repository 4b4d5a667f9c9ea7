"""metric.evaluate: every number recomputable from scores.csv, recalibration and the score grid, 1:N identification,
per-condition rates, bad input."""

import csv

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from metric.errors import ConfigError
from metric.pipelines.evaluate import evaluate
from metric.report.summary import format_summary
from tests.conftest import ORL, TINY_DATA, compose_evaluate


def run_eval(tiny_triplet_run, tmp_path, data_dir, *overrides):
    _, summary = tiny_triplet_run
    cfg = compose_evaluate(
        [f"ckpt={summary['best_checkpoint']}", *TINY_DATA, *overrides], tmp_path / "report", data_dir
    )
    return evaluate(cfg, tmp_path / "report"), tmp_path / "report"


def test_summary_is_recomputable_from_scores_csv(tiny_triplet_run, tmp_path, data_dir):
    summary, out = run_eval(tiny_triplet_run, tmp_path, data_dir)
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    scores = np.array([float(r["score"]) for r in rows])
    genuine = np.array([r["genuine"] == "1" for r in rows])
    accepted = np.array([r["accepted"] == "1" for r in rows])
    assert len(rows) == summary["test_genuine_pairs"] + summary["test_impostor_pairs"]
    assert (accepted == (scores >= summary["threshold"])).all()
    # sklearn's ROC, EER interpolated where FAR - FRR changes sign
    fpr, tpr, _ = roc_curve(genuine, scores, drop_intermediate=False)
    diff = fpr - (1 - tpr)
    i = int(np.flatnonzero(diff >= 0)[0])
    w = -diff[i - 1] / (diff[i] - diff[i - 1]) if i and diff[i] else 1.0
    eer = (1 - w) * fpr[i - 1] + w * fpr[i] if i else fpr[0]
    assert abs(eer - summary["test_eer"]) < 1e-3
    assert abs(accepted[~genuine].mean() - summary["test_far_at_threshold"]) < 1e-3
    assert abs((~accepted[genuine]).mean() - summary["test_frr_at_threshold"]) < 1e-3
    assert abs(roc_auc_score(genuine, scores) - summary["test_roc_auc"]) < 1e-3
    tar = tpr[np.flatnonzero(fpr <= 0.1)[-1]]
    assert abs(tar - summary["test_tar_at_far_0.1"]) < 1e-3
    assert summary["test_tar_at_far_1e-06"] is None  # fewer than 3e6 impostor pairs cannot support it
    assert "not supported" in format_summary(summary)
    low, high = summary["test_eer_ci95"]
    assert low <= summary["test_eer"] <= high
    for name in ("roc.png", "det.png", "score_histograms.png", "worst_pairs.png", "summary.json"):
        assert (out / name).stat().st_size > 0
    assert summary["threshold_source"].startswith("stored in the checkpoint")


def test_recalibration_flip_tta_and_score_grid(tiny_triplet_run, tmp_path, data_dir):
    exact, _ = run_eval(tiny_triplet_run, tmp_path / "a", data_dir)
    recal, _ = run_eval(tiny_triplet_run, tmp_path / "b", data_dir, "threshold_from=val", "flip_tta=true")
    assert recal["threshold_source"].startswith("recalibrated on the val split") and recal["flip_tta"]
    grid, _ = run_eval(tiny_triplet_run, tmp_path / "c", data_dir, "bins=65536")
    assert abs(grid["test_eer"] - exact["test_eer"]) < 1e-3
    assert abs(grid["test_far_at_threshold"] - exact["test_far_at_threshold"]) < 1e-3


def test_matcher_the_checkpoint_cannot_serve(tiny_triplet_run, tmp_path, data_dir):
    with pytest.raises(ConfigError, match="matcher=logistic needs a model trained with a logistic-distance head"):
        run_eval(tiny_triplet_run, tmp_path, data_dir, "matcher=logistic")


def test_split_without_genuine_pairs_is_refused(tiny_triplet_run, tmp_path, data_dir):
    with pytest.raises(ConfigError, match="has no genuine pairs"):
        run_eval(
            tiny_triplet_run,
            tmp_path,
            data_dir,
            "datamodule.images_per_identity=1",
            "datamodule.batch_images_per_identity=1",
            "datamodule.batch_identities=2",
        )


def test_identification_report(tiny_triplet_run, tmp_path, data_dir):
    summary, _ = run_eval(tiny_triplet_run, tmp_path, data_dir, "protocol=identification")
    assert 0 <= summary["rank_1"] <= summary["rank_5"] <= 1
    assert summary["gallery_identities"] + round(0.2 * 6) == 6


def test_foreign_checkpoint_stops_evaluation(tmp_path, data_dir):
    corrupt = tmp_path / "other_project.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 not ours")
    cfg = compose_evaluate([f"ckpt={corrupt}", *TINY_DATA], tmp_path / "report", data_dir)
    with pytest.raises(ConfigError, match="cannot be read as a checkpoint"):
        evaluate(cfg, tmp_path / "report")


def test_kface_conditions_break_down_errors(make_cfg, tmp_path, data_dir):
    from metric.pipelines.train import train
    from tests.datamodules.test_datasets import make_kface

    root = make_kface(tmp_path / "kface")
    common = [
        "datamodule=kface",
        f"datamodule.root={root}",
        "datamodule.image_size=[24,20]",
        "datamodule.split_fractions=[0.5,0.25,0.25]",
    ]
    trained = train(
        make_cfg(
            "experiment=triplet",
            *common,
            "datamodule.batch_identities=2",
            "datamodule.batch_images_per_identity=2",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "matcher.target_far=0.1",
            tiny=False,
        )
    )
    cfg = compose_evaluate([f"ckpt={trained['best_checkpoint']}", *common], tmp_path / "report", data_dir)
    summary = evaluate(cfg, tmp_path / "report")
    factors = {(row["factor"], row["value"]) for row in summary["conditions"]}
    assert {
        ("lighting", "L1"),
        ("lighting", "L8"),
        ("accessory", "S001"),
        ("camera", "C15"),
        ("expression", "E01"),
    } <= factors
    assert (tmp_path / "report" / "conditions.csv").read_text().startswith("factor,value,genuine_pairs")
    for row in summary["conditions"]:
        assert row["genuine_pairs"] + row["impostor_pairs"] > 0


@pytest.mark.skipif(not ORL.is_dir(), reason="ORL faces (../shared/data/att_faces) are not present")
def test_scores_csv_names_the_people_of_an_identity_tree(tiny_triplet_run, tmp_path, data_dir):
    """Issue 33, point 9: identity_a/identity_b are the people's folder names (s2), not label numbers."""
    _, summary = tiny_triplet_run
    cfg = compose_evaluate(
        [
            f"ckpt={summary['best_checkpoint']}",
            "datamodule=folder",
            f"datamodule.root={ORL}",
            "datamodule.image_size=[32,32]",
            "datamodule.channels=3",
        ],
        tmp_path / "report",
        data_dir,
    )
    evaluate(cfg, tmp_path / "report")
    with open(tmp_path / "report" / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows[:50]:
        assert row["identity_a"] == row["image_a"].split("/")[-2] and row["identity_a"].startswith("s")


def test_the_det_plot_marks_the_eer_and_the_threshold(tmp_path, monkeypatch):
    from metric.metrics import verification as V
    from metric.report import plots

    shown = []
    monkeypatch.setattr(plots.plt, "close", shown.append)
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(1, 1, 500), rng.normal(-1, 1, 5000)])
    genuine = np.arange(5500) < 500
    plots.plot_det(V.roc(scores, genuine), tmp_path / "det.png", operating_point=(0.01, 0.4))
    legend = [text.get_text() for text in shown[0].axes[0].get_legend().get_texts()]
    assert legend[1].startswith("EER ") and legend[2] == "threshold: FAR 1.00%, FRR 40.00%"
    assert (tmp_path / "det.png").stat().st_size > 0
    assert plots.identity_and_file("/data/att_faces/s2/1.pgm") == "s2/1.pgm"
