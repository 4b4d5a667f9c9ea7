"""Evaluation protocols on known answers: LFW pairs files, k-fold accuracy, 1:N identification."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.sources.lfw import read_pairs_file
from metric.errors import ConfigError
from metric.scoring.matchers import make_matcher
from metric.scoring.protocols import identification, kfold_accuracy


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
