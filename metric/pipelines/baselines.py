"""Baselines without a network (metric.raw_pixels), scored exactly like a trained model: the same splits or folds,
a threshold calibrated on validation identities, the same summary schema."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from datamodules.folds import CrossValidation, CVFold
from metric.baselines.classical import ClassicalBaseline
from metric.config_factory import build_from_config
from metric.pipelines.folds import cross_validate
from metric.report.summary import write_summary
from metric.scoring.feature_cache import FeatureCache
from metric.scoring.load import Pretrained, pretrained_model
from metric.scoring.matchers import build_matcher
from metric.scoring.summary import verification_summary


def baseline_summary(
    cfg: DictConfig,
    fold: CVFold | None = None,
    features: FeatureCache | None = None,
    pretrained: Pretrained | None = None,
) -> dict:
    """The baseline fit on the training identities, calibrated on validation and scored on test; with `pretrained`
    (model=dlib|onnx|mobilefacenet) and its `features`, on its embeddings instead of pixels."""
    baseline: ClassicalBaseline = build_from_config(cfg.baseline)
    matcher = build_matcher(cfg.matcher)
    if pretrained is not None:
        datamodule = pretrained.datamodule(cfg.datamodule)
        baseline.use_embedder(features.embed, f"model={pretrained.label} embeddings")
    else:
        datamodule = build_from_config(cfg.datamodule)
    if fold is not None:
        datamodule.use_fold(fold)
    datamodule.setup("test")
    splits = datamodule.splits
    baseline.fit(splits["train"].images, splits["train"].labels)
    summary, _, _ = verification_summary(
        (baseline.embed(splits["val"].images), splits["val"].labels),
        (baseline.embed(splits["test"].images), splits["test"].labels),
        matcher,
        datamodule.max_impostor_pairs,
    )
    summary["matcher"] = f"{matcher.name} on {baseline.description}"
    return summary


def run_baseline(cfg: DictConfig) -> dict:
    """One summary, or with `cv.folds=k` the cross-validated one on the same folds as metric.train (same cv.seed),
    written to <run dir>/summary.json; a pretrained model (model=) embeds each distinct image once over all folds."""
    cv: CrossValidation = build_from_config(cfg.cv)
    features = pretrained = None
    if cfg.get("model") is not None:
        pretrained = pretrained_model(cfg.model, cfg.datamodule.get("face"))
        features = FeatureCache(pretrained.model, pretrained.spec, cfg.datamodule.get("cache_dir"))
    if not cv.enabled:
        summary = baseline_summary(cfg, None, features, pretrained)
    else:
        summary = cross_validate(cv, lambda fold: baseline_summary(cfg, fold, features, pretrained))
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_summary(summary, out / "summary.json")
    return summary
