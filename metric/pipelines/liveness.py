"""Liveness training (`metric.train +experiment=liveness`): check the config, fit, score the best checkpoint on
validation
and test subjects it never saw, calibrate the threshold on validation at the target APCER, store it, and report."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig

from metric.config_factory import build_from_config
from metric.errors import ConfigError
from metric.metrics.liveness import pad_rates, threshold_at_apcer
from metric.model.checkpoint import store_liveness_threshold
from metric.modules.liveness import check_target_apcer
from metric.pipelines.checks import check_components
from metric.pipelines.trainer import build_trainer, fit_and_test_best
from metric.report.liveness import breakdown_tables, format_liveness_summary, liveness_summary, write_liveness_report
from metric.report.summary import write_summary


def train_liveness(cfg: DictConfig) -> dict | None:
    """Fit; then the best checkpoint scores validation and test; the threshold at cfg.target_apcer on validation is
    stored in that checkpoint and the test rates at it are reported. None on DDP ranks other than 0."""
    check_components(cfg)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    augment = build_from_config(cfg.augment) if cfg.get("augment") else None
    if getattr(augment, "batch_mix", None) is not None:
        raise ConfigError(
            "augment.mix is for identity losses; the liveness model learns live vs attack: set augment.mix=null."
        )
    datamodule = build_from_config(cfg.datamodule, augment=augment)
    datamodule.setup("fit")
    module = build_from_config(
        cfg.module,
        net=build_from_config(cfg.model, in_chans=datamodule.channels),
        optimizer=build_from_config(cfg.optimizer),
        scheduler=build_from_config(cfg.scheduler) if cfg.get("scheduler") else None,
        preprocess=datamodule.preprocessing,
    )
    trainer = build_trainer(cfg)
    best, best_path = fit_and_test_best(trainer, module, datamodule)
    if not trainer.is_global_zero:
        return None
    val, test = module.final_scores["val"], module.final_scores["test"]
    target = check_target_apcer(cfg.target_apcer)
    threshold = threshold_at_apcer(val[0], val[1][:, 1], target)
    if best_path:
        calibrated = pad_rates(val[0], val[1][:, 1], threshold)
        store_liveness_threshold(
            best_path,
            {
                "threshold": threshold,
                "target_apcer": target,
                "val_apcer_max": calibrated.apcer_max,
                "val_bpcer": calibrated.bpcer,
            },
        )
    summary = liveness_summary(val, test, threshold, target)
    split = datamodule.splits["test"]
    tables = breakdown_tables(test, threshold, datamodule.breakdowns(split))
    write_liveness_report(out, test, split.images, split.sources, threshold, tables)
    summary.update({f"data_{key}": value for key, value in datamodule.notes.items()})
    summary["best_val_eer"] = (
        float(best.best_model_score) if best is not None and best.best_model_score is not None else None
    )
    summary["best_checkpoint"] = best_path or None
    write_summary(summary, out / "summary.json")
    print(format_liveness_summary(summary, tables))
    return summary
