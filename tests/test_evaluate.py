"""metric.evaluate: every number recomputable from scores.csv, LFW k-fold accuracy, 1:N identification, bad input."""

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve

from metric import verification as V
from metric.errors import ConfigError
from metric.evaluate import evaluate
from metric.matchers import make_matcher
from metric.protocols import identification, kfold_accuracy, read_pairs_file
from metric.score_grid import grid_from_embeddings
from tests.conftest import TINY_DATA, compose_evaluate


def run_eval(tiny_triplet_run, tmp_path, data_dir, *overrides):
    _, summary = tiny_triplet_run
    cfg = compose_evaluate([f"ckpt={summary['best_checkpoint']}", *TINY_DATA, *overrides], tmp_path / "report", data_dir)
    return evaluate(cfg, tmp_path / "report"), tmp_path / "report"


def test_summary_is_recomputable_from_scores_csv(tiny_triplet_run, tmp_path, data_dir):
    summary, out = run_eval(tiny_triplet_run, tmp_path, data_dir)
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    scores = np.array([float(r["score"]) for r in rows])
    genuine = np.array([r["genuine"] == "1" for r in rows])
    accepted = np.array([r["accepted"] == "1" for r in rows])
    assert len(rows) == summary["genuine_pairs"] + summary["impostor_pairs"]
    assert (accepted == (scores >= summary["threshold"])).all()
    # sklearn's ROC, EER interpolated where FAR - FRR changes sign
    fpr, tpr, _ = roc_curve(genuine, scores, drop_intermediate=False)
    diff = fpr - (1 - tpr)
    i = int(np.flatnonzero(diff >= 0)[0])
    w = -diff[i - 1] / (diff[i] - diff[i - 1]) if i and diff[i] else 1.0
    eer = (1 - w) * fpr[i - 1] + w * fpr[i] if i else fpr[0]
    assert abs(eer - summary["eer"]) < 1e-3
    assert abs(accepted[~genuine].mean() - summary["far_at_threshold"]) < 1e-3
    assert abs((~accepted[genuine]).mean() - summary["frr_at_threshold"]) < 1e-3
    assert abs(roc_auc_score(genuine, scores) - summary["roc_auc"]) < 1e-3
    tar = tpr[np.flatnonzero(fpr <= 0.1)[-1]]
    assert abs(tar - summary["tar_at_far_0.1"]) < 1e-3
    assert summary["tar_at_far_1e-06"].startswith("not supported")
    low, high = summary["eer_ci95"]
    assert low <= summary["eer"] <= high
    for name in ("roc.png", "det.png", "score_histograms.png", "worst_pairs.png", "summary.json"):
        assert (out / name).stat().st_size > 0
    assert summary["threshold_source"].startswith("stored in the checkpoint")


def test_recalibration_flip_tta_and_score_grid(tiny_triplet_run, tmp_path, data_dir):
    exact, _ = run_eval(tiny_triplet_run, tmp_path / "a", data_dir)
    recal, _ = run_eval(tiny_triplet_run, tmp_path / "b", data_dir, "threshold_from=val", "flip_tta=true")
    assert recal["threshold_source"].startswith("recalibrated on the val split") and recal["flip_tta"]
    grid, _ = run_eval(tiny_triplet_run, tmp_path / "c", data_dir, "bins=65536")
    assert abs(grid["eer"] - exact["eer"]) < 1e-3
    assert abs(grid["far_at_threshold"] - exact["far_at_threshold"]) < 1e-3


def test_matcher_the_checkpoint_cannot_serve(tiny_triplet_run, tmp_path, data_dir):
    with pytest.raises(ConfigError, match="matcher=logistic needs a model trained with a logistic-distance head"):
        run_eval(tiny_triplet_run, tmp_path, data_dir, "matcher=logistic")


def test_split_without_genuine_pairs_is_refused(tiny_triplet_run, tmp_path, data_dir):
    with pytest.raises(ConfigError, match="has no genuine pairs"):
        run_eval(tiny_triplet_run, tmp_path, data_dir, "datamodule.images_per_identity=1",
                 "datamodule.batch_images_per_identity=1", "datamodule.batch_identities=2")


def test_identification_report(tiny_triplet_run, tmp_path, data_dir):
    summary, _ = run_eval(tiny_triplet_run, tmp_path, data_dir, "protocol=identification")
    assert 0 <= summary["rank_1"] <= summary["rank_5"] <= 1
    assert summary["gallery_identities"] + round(0.2 * 6) == 6


def test_identification_on_known_embeddings():
    """Perfectly separated identities: rank-1 = 1 and no known probe missed at any FPIR."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(60, 16))
    labels = np.repeat(np.arange(60), 5)
    emb = centres[labels] + rng.normal(scale=0.01, size=(300, 16))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    result = identification(emb, labels, make_matcher("cosine"), gallery_images=1, unknown_fraction=0.5)
    assert result["rank_1"] == 1.0 and result["known_probes"] == 30 * 4 and result["unknown_probes"] == 150
    assert result["fnir_at_fpir_0.1"] == 0.0
    assert result["fnir_at_fpir_0.01"].startswith("not supported")  # 150 unknown probes < 300


def make_lfw(root: Path, names=("Ann_Lee", "Bob_Ray", "Cy_Po")) -> None:
    for name in names:
        for i in (1, 2):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / name / f"{name}_{i:04d}.jpg")


def test_pairs_file_parsing_and_missing_images(tmp_path):
    make_lfw(tmp_path / "lfw")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2\t1\nAnn_Lee\t1\t2\nAnn_Lee\t1\tBob_Ray\t2\nCy_Po\t1\t2\nBob_Ray\t1\tCy_Po\t2\n")
    parsed = read_pairs_file(pairs, tmp_path / "lfw")
    assert parsed.genuine.tolist() == [True, False, True, False] and parsed.fold.tolist() == [0, 0, 1, 1]
    assert parsed.first[1].name == "Ann_Lee_0001.jpg" and parsed.second[1].name == "Bob_Ray_0002.jpg"
    pairs.write_text("1\t1\nAnn_Lee\t1\t3\nZed_Q\t1\tBob_Ray\t2\n")
    with pytest.raises(ConfigError, match=r"(?s)names 2 image\(s\) missing.*Ann_Lee_0003.*Zed_Q_0001"):
        read_pairs_file(pairs, tmp_path / "lfw")


def test_kfold_accuracy_on_known_answers():
    """Each fold is separable by exactly one interval of thresholds: fold 0 by (0.4, 0.5], fold 1 by (0.44, 0.7].
    Fold 0 is scored at fold 1's threshold (0.57: its genuine 0.5 is rejected, 3/4); fold 1 at fold 0's
    (0.45: all right, 4/4)."""
    scores = np.array([0.9, 0.5, 0.4, 0.1, 0.8, 0.7, 0.44, 0.2])
    genuine = np.array([1, 1, 0, 0, 1, 1, 0, 0], bool)
    fold = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    result = kfold_accuracy(scores, genuine, fold)
    assert result["fold_accuracies"] == [0.75, 1.0]
    assert result["accuracy_mean"] == pytest.approx(0.875)
    assert result["accuracy_std"] == pytest.approx(np.std([0.75, 1.0], ddof=1))
    assert result["pairs"] == 8


def test_score_grid_matches_exact_metrics():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(400, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = rng.integers(0, 40, 400)
    exact = V.roc(*V.pair_scores(emb, labels))
    grid = grid_from_embeddings(emb, labels, V.cosine_block, -1.0, 1.0, bins=1 << 18, tile=64).roc()
    assert (grid.n_genuine, grid.n_impostor) == (exact.n_genuine, exact.n_impostor)
    assert abs(V.eer(grid)[0] - V.eer(exact)[0]) < 1e-3
    assert abs(V.tar_at_far(grid, 1e-2) - V.tar_at_far(exact, 1e-2)) < 1e-3


@pytest.mark.slow
def test_100k_embeddings_in_bounded_memory():
    """About 5e9 pairs counted on a score grid: no N x N matrix, peak memory far under 4 GiB."""
    import resource

    rng = np.random.default_rng(2)
    n = 100_000
    labels = np.repeat(np.arange(n // 10), 10)
    emb = rng.normal(size=(n, 64)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    grid = grid_from_embeddings(emb, labels, V.cosine_block, -1.0, 1.0, bins=1 << 16, tile=4096)
    assert grid.genuine.sum() + grid.impostor.sum() == n * (n - 1) // 2
    assert 0 <= V.eer(grid.roc())[0] <= 1
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    assert peak_gib < 4, f"peak resident memory {peak_gib:.2f} GiB"


def test_foreign_checkpoint_stops_evaluation(tmp_path, data_dir):
    corrupt = tmp_path / "other_project.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 not ours")
    cfg = compose_evaluate([f"ckpt={corrupt}", *TINY_DATA], tmp_path / "report", data_dir)
    with pytest.raises(ConfigError, match="cannot be read as a checkpoint"):
        evaluate(cfg, tmp_path / "report")


def test_kface_conditions_break_down_errors(make_cfg, tmp_path, data_dir):
    from tests.test_datasets import make_kface
    from metric.train import train

    root = make_kface(tmp_path / "kface")
    common = ["datamodule=kface", f"datamodule.root={root}", "datamodule.image_size=[24,20]",
              "datamodule.split_fractions=[0.5,0.25,0.25]"]
    trained = train(make_cfg("experiment=triplet", *common, "datamodule.batch_identities=2",
                             "datamodule.batch_images_per_identity=2", "trainer.max_epochs=1",
                             "trainer.enable_progress_bar=false", "matcher.target_far=0.1", tiny=False))
    cfg = compose_evaluate([f"ckpt={trained['best_checkpoint']}", *common], tmp_path / "report", data_dir)
    summary = evaluate(cfg, tmp_path / "report")
    factors = {(row["factor"], row["value"]) for row in summary["conditions"]}
    assert {("lighting", "L1"), ("lighting", "L8"), ("accessory", "S001"), ("camera", "C15"),
            ("expression", "E01")} <= factors
    assert (tmp_path / "report" / "conditions.csv").read_text().startswith("factor,value,genuine_pairs")
    for row in summary["conditions"]:
        assert row["genuine_pairs"] + row["impostor_pairs"] > 0
