"""Baselines without a network, scored like a trained model: `python -m metric.raw_pixels [datamodule=...] [cv.folds=k]
[baseline.features=pixels|lbp] [baseline.projection=none|fisher]` (cosine on raw pixels by default)."""

from __future__ import annotations

from typing import Callable

import hydra
import numpy as np
from omegaconf import DictConfig

from datamodules.base import IdentitySplit
from datamodules.cv import CVFold, cross_validation_requested, requested_folds
from metric.config_checks import build_from_config
from metric.cross_validation import aggregate_folds, format_cv_table
from metric.classical import FisherProjection, lbp_features, pixel_features, unit_rows
from metric.errors import ConfigError, exit_on_config_error
from metric.matchers import CosineMatcher
from metric.summary import format_table, verification_summary


FEATURES = {"pixels": pixel_features, "lbp": lbp_features}
PROJECTIONS = ("none", "fisher")


def pixel_embeddings(split: IdentitySplit) -> tuple[np.ndarray, np.ndarray]:
    """Each image flattened to a unit vector: cosine similarity of raw pixels."""
    return unit_rows(pixel_features(split.images)), split.labels


def check_baseline(baseline: DictConfig) -> None:
    if baseline.features not in FEATURES:
        raise ConfigError(f"baseline.features={baseline.features!r} is not one of {', '.join(FEATURES)}.")
    if baseline.projection not in PROJECTIONS:
        raise ConfigError(f"baseline.projection={baseline.projection!r} is not one of {', '.join(PROJECTIONS)}.")
    if isinstance(baseline.pca_dim, bool) or not isinstance(baseline.pca_dim, int) or baseline.pca_dim < 1:
        raise ConfigError(f"baseline.pca_dim={baseline.pca_dim!r} must be a positive integer, e.g. 100.")


def baseline_embedder(baseline: DictConfig, train: IdentitySplit) -> Callable[[IdentitySplit], tuple[np.ndarray, np.ndarray]]:
    """Features of a split as unit vectors; with projection=fisher, through a Fisher projection fit on the
    training identities only."""
    features = FEATURES[baseline.features]
    fisher = None
    if baseline.projection == "fisher":
        fisher = FisherProjection(baseline.pca_dim).fit(features(train.images), train.labels)

    def embed(split: IdentitySplit) -> tuple[np.ndarray, np.ndarray]:
        x = features(split.images)
        return unit_rows(fisher.transform(x) if fisher is not None else x), split.labels

    return embed


def raw_pixel_summary(cfg: DictConfig, fold: CVFold | None = None) -> dict:
    check_baseline(cfg.baseline)
    datamodule = build_from_config(cfg.datamodule)
    if fold is not None:
        datamodule.use_fold(fold)
    datamodule.setup("test")
    embed = baseline_embedder(cfg.baseline, datamodule.splits["train"])
    summary, _, _ = verification_summary(
        embed(datamodule.splits["val"]),
        embed(datamodule.splits["test"]),
        CosineMatcher(),
        cfg.matcher.target_far,
        datamodule.max_impostor_pairs,
    )
    projection = " + Fisher projection (fit on training identities)" if cfg.baseline.projection == "fisher" else ""
    summary["matcher"] = f"cosine on {'raw pixels' if cfg.baseline.features == 'pixels' else 'LBP histograms'}{projection}"
    return summary


def cross_validated(cfg: DictConfig) -> dict:
    """The baseline on the same identity-disjoint folds as `metric.train cv.folds=k` (same cv.seed)."""
    per_fold = [{"fold": fold.fold, **raw_pixel_summary(cfg, fold)} for fold in requested_folds(cfg.cv)]
    return aggregate_folds(per_fold)


@hydra.main(version_base="1.3", config_path="../conf", config_name="raw_pixels")
def main(cfg: DictConfig) -> None:
    with exit_on_config_error():
        if cross_validation_requested(cfg.get("cv")):
            print(format_cv_table(cross_validated(cfg)))
        else:
            print(format_table(raw_pixel_summary(cfg)))


if __name__ == "__main__":
    main()
