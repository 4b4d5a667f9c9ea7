"""metric.train's pipeline: the task the module declares (verification or liveness); a verification training runs once
or once per identity-disjoint cross-validation fold, each run a single fit or, with a `self_train` node, a
self-training."""

from __future__ import annotations

import copy
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from datamodules.folds import CrossValidation, CVFold
from metric.config_factory import build_from_config, locate_class
from metric.pipelines.fit import train_once
from metric.pipelines.folds import cross_validate
from metric.pipelines.liveness import train_liveness
from metric.pipelines.self_training import train_self
from metric.report.self_training import format_rounds, rounds_across_folds
from metric.report.summary import format_cv_table, write_summary


def train(cfg: DictConfig) -> dict | None:
    """The pipeline of the task the configured module declares (`task`: verification or liveness)."""
    task = getattr(locate_class(cfg.module, "module"), "task", "verification")
    return TASKS[task](cfg)


def train_verification(cfg: DictConfig) -> dict | None:
    """One training, or with `cv.folds=k` one per identity-disjoint fold and their cross-validated summary (written
    to <run dir>/summary.json; fold i into <run dir>/fold_<i>/). With a `self_train` node, each of those runs is a
    self-training (its rounds). None on DDP ranks other than 0."""
    self_training = cfg.get("self_train") is not None

    def run(run_cfg: DictConfig, fold: CVFold | None = None) -> dict | None:
        return train_self(run_cfg, fold) if self_training else train_once(run_cfg, fold)

    cv: CrossValidation = build_from_config(cfg.cv)
    if not cv.enabled:
        return run(cfg)
    output_dir = Path(cfg.paths.output_dir)
    folds: list[dict] = []

    def run_fold(fold: CVFold) -> dict | None:
        fold_cfg = copy.deepcopy(cfg)  # a shallow copy would share (and rewrite) the caller's paths node
        OmegaConf.update(fold_cfg, "paths.output_dir", str(output_dir / f"fold_{fold.fold}"))
        result = run(fold_cfg, fold)
        folds.append(result or {})
        return result

    summary = cross_validate(cv, run_fold)
    if summary is not None:
        if self_training:
            summary["self_training_rounds"] = rounds_across_folds([f["self_training_rounds"] for f in folds])
        write_summary(summary, output_dir / "summary.json")
        print(format_cv_table(summary))
        if self_training:
            print(format_rounds(summary["self_training_rounds"]))
    return summary


TASKS = {"verification": train_verification, "liveness": train_liveness}
