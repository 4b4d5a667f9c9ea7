"""Raw-pixel cosine baseline: `python -m metric.raw_pixels [datamodule=...] [cv.folds=k]`, scored like a trained model."""

from __future__ import annotations


import hydra
import numpy as np
from omegaconf import DictConfig

from datamodules.base import IdentitySplit
from datamodules.cv import CVFold, requested_folds
from metric.config_checks import build_from_config
from metric.cross_validation import aggregate_folds, format_cv_table
from metric.errors import exit_on_config_error
from metric.matchers import CosineMatcher
from metric.summary import format_table, verification_summary


def pixel_embeddings(split: IdentitySplit) -> tuple[np.ndarray, np.ndarray]:
    """Each image flattened to a unit vector: cosine similarity of raw pixels."""
    pixels = split.images.reshape(len(split.labels), -1).astype(np.float32)
    pixels /= np.linalg.norm(pixels, axis=1, keepdims=True) + 1e-12
    return pixels, split.labels


def raw_pixel_summary(cfg: DictConfig, fold: CVFold | None = None) -> dict:
    datamodule = build_from_config(cfg.datamodule)
    if fold is not None:
        datamodule.use_fold(fold)
    datamodule.setup("test")
    summary, _, _ = verification_summary(
        pixel_embeddings(datamodule.splits["val"]),
        pixel_embeddings(datamodule.splits["test"]),
        CosineMatcher(),
        cfg.matcher.target_far,
        datamodule.max_impostor_pairs,
    )
    summary["matcher"] = "cosine on raw pixels"
    return summary


def cross_validated(cfg: DictConfig) -> dict:
    """The baseline on the same identity-disjoint folds as `metric.train cv.folds=k` (same cv.seed)."""
    per_fold = [{"fold": fold.fold, **raw_pixel_summary(cfg, fold)} for fold in requested_folds(cfg.cv)]
    return aggregate_folds(per_fold)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    with exit_on_config_error():
        if cfg.get("cv") is not None and cfg.cv.get("folds"):
            print(format_cv_table(cross_validated(cfg)))
        else:
            print(format_table(raw_pixel_summary(cfg)))


if __name__ == "__main__":
    main()
