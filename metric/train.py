"""Training entry point: `python -m metric.train +experiment=triplet`; returns the best validation EER."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from metric.checkpoint import read_checkpoint, store_calibration
from datamodules.cv import CVFold, cross_validation_requested, requested_folds
from datamodules.pk_sampler import check_pk_fits
from metric.config_checks import CLASS_LOSS_TARGET, build_from_config, check_config
from metric.cross_validation import aggregate_folds, format_cv_table
from metric.distributed import end_process_group, run_ddp_children_as_this_job
from metric.errors import exit_on_config_error
from metric.summary import embed_split, format_table, verification_summary, write_summary
from metric.wandb_logger import find_wandb_logger

# Groups that conf/train.yaml declares as `group: null`. Hydra 1.3 accepts `group=x` for them but rejects
# `+group=x` ("Multiple values"); the README's front door is `+experiment=...`, so both spellings are accepted.
NULL_DEFAULT_GROUPS = ("experiment", "hparams_search", "debug")


def make_dirs(path: str) -> str:
    """`${metric.make_dirs:<dir>}` in a config: the directory, created if missing (e.g. for a SQLite file)."""
    Path(path).mkdir(parents=True, exist_ok=True)
    return str(Path(path).resolve())


OmegaConf.register_new_resolver("metric.make_dirs", make_dirs, replace=True)


# `adversarial=true|false` reads naturally, but Hydra parses the value as a bool, which it refuses as a group
# option (a ValueError deep in its defaults list): the spellings are mapped to the group's options instead.
BOOLEAN_GROUP_OPTIONS = {"adversarial=true": "adversarial=fgsm", "adversarial=false": "adversarial=none"}


def accept_plus_overrides(argv: list[str]) -> list[str]:
    """Rewrite `+experiment=x` (and the other null-default groups) to `experiment=x`, and `adversarial=true|false`
    to `adversarial=fgsm|none`."""
    argv = [BOOLEAN_GROUP_OPTIONS.get(a.lower(), a) for a in argv]
    return [a[1:] if a.startswith("+") and a[1:].split("=", 1)[0] in NULL_DEFAULT_GROUPS else a for a in argv]


def build_loss(cfg: DictConfig, datamodule):
    """The configured loss; a classification loss (loss=arcface, ...) also gets the training identities and the
    embedding size, which only the data and the model know."""
    if cfg.loss.get("_target_") == CLASS_LOSS_TARGET:  # its module and miner were checked by check_config
        return build_from_config(cfg.loss, train_labels=datamodule.splits["train"].labels,
                                 embedding_size=cfg.model.embedding_dim)
    return build_from_config(cfg.loss)


def build(cfg: DictConfig, fold: CVFold | None = None):
    """Instantiate datamodule, module, callbacks, loggers and trainer; the datamodule is set up (and checked) here,
    on the splits of cross-validation fold `fold` when one is given."""
    check_config(cfg)
    augment = build_from_config(cfg.augment) if cfg.get("augment") else None
    datamodule = build_from_config(cfg.datamodule, augment=augment)
    if fold is not None:
        datamodule.use_fold(fold)
    datamodule.setup("fit")  # parses data and checks P x K before any training
    net = build_from_config(cfg.model, in_chans=datamodule.channels,
                            input_size=list(datamodule.preprocessing["image_size"]))
    module = build_from_config(
        cfg.module,
        net=net,
        loss=build_loss(cfg, datamodule),
        miner=build_from_config(cfg.miner) if cfg.get("miner") else None,
        optimizer=build_from_config(cfg.optimizer),
        scheduler=build_from_config(cfg.scheduler) if cfg.get("scheduler") else None,
        max_impostor_pairs=datamodule.max_impostor_pairs,
        preprocess=datamodule.preprocessing,
        **({"adversarial": dict(cfg.adversarial)} if cfg.get("adversarial", {}).get("enabled") else {}),
    )
    module.matcher(cfg.matcher.name)  # matcher=logistic on a model without a head stops here, before training
    callbacks = [build_from_config(c) for c in cfg.get("callbacks", {}).values() if c is not None]
    loggers = [build_from_config(c) for c in cfg.get("logger", {}).values() if c is not None]
    trainer = build_from_config(cfg.trainer, callbacks=callbacks, logger=loggers)
    ranks = trainer.num_nodes * trainer.num_devices
    if ranks > 1:  # each rank draws its own P identities per step: P x ranks must fit the train split
        check_pk_fits(datamodule.splits["train"].labels, datamodule.batch_identities,
                      datamodule.batch_images_per_identity, replicas=ranks)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))  # the whole composed config
    return datamodule, module, trainer


def train(cfg: DictConfig) -> dict:
    """One training, or with `cv.folds=k` one per identity-disjoint fold and their cross-validated summary."""
    if cross_validation_requested(cfg.get("cv")):
        return cross_validate(cfg)
    return train_once(cfg)


def cross_validate(cfg: DictConfig) -> dict:
    """k trainings, fold i tested on its own identities (into <run dir>/fold_<i>/); writes summary.json with the
    fold means (best_val_eer, test_eer: what sweeps compare), their std and 95% intervals, and every fold."""
    output_dir = Path(cfg.paths.output_dir)
    per_fold = []
    for fold in requested_folds(cfg.cv):  # all k, or only cv.fold (to spread folds over jobs: -m cv.fold=0,1,2)
        fold_cfg = copy.deepcopy(cfg)  # a shallow copy would share (and rewrite) the caller's paths node
        OmegaConf.update(fold_cfg, "paths.output_dir", str(output_dir / f"fold_{fold.fold}"))
        print(f"cross-validation: fold {fold.fold + 1} of {fold.folds}")
        per_fold.append({"fold": fold.fold, **train_once(fold_cfg, fold)})
    if per_fold[0].get("test_eer") is None:  # a DDP rank other than 0: rank 0 writes the summary
        return {"best_val_eer": None}
    summary = aggregate_folds(per_fold)
    write_summary(summary, output_dir / "summary.json")
    print(format_cv_table(summary))
    return summary


def train_once(cfg: DictConfig, fold: CVFold | None = None) -> dict:
    """Fit, reload the best checkpoint, calibrate the threshold on validation (stored in that checkpoint), report on test."""
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    datamodule, module, trainer = build(cfg, fold)
    env_before = set(os.environ)
    trainer.fit(module, datamodule=datamodule)
    end_process_group(env_before)
    if not trainer.is_global_zero:  # under DDP the final evaluation and every file write happen on rank 0 only
        return {"best_val_eer": None}

    checkpoint = next((c for c in trainer.checkpoint_callbacks if c.monitor == "val_eer"), None)
    best_path = getattr(checkpoint, "best_model_path", "") if checkpoint else ""
    if best_path:
        module.load_state_dict(read_checkpoint(best_path)["state_dict"])
    module.eval()
    matcher = module.matcher(cfg.matcher.name)
    test_embedded = embed_split(module.net, datamodule.splits["test"])
    summary, calibration, test_pairs = verification_summary(
        embed_split(module.net, datamodule.splits["val"]),
        test_embedded,
        matcher,
        cfg.matcher.target_far,
        datamodule.max_impostor_pairs,
    )
    if best_path:
        store_calibration(best_path, calibration.to_dict(), make_default=True)
    summary.update({f"data_{key}": value for key, value in datamodule.notes.items()})
    summary["best_val_eer"] = module.best_val_eer if module.best_val_eer < float("inf") else None
    summary["best_checkpoint"] = best_path or None
    write_summary(summary, output_dir / "summary.json")
    print(format_table(summary))
    wandb_logger = find_wandb_logger(trainer)
    if wandb_logger is not None:
        test = datamodule.splits["test"]
        wandb_logger.log_verification_report(test.images, test_embedded[0], test.labels, test_pairs,
                                             calibration.threshold, summary, best_path or None)
        wandb_logger.experiment.finish()
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    with exit_on_config_error():
        summary = train(cfg)
    return summary["best_val_eer"]


if __name__ == "__main__":
    sys.argv = accept_plus_overrides(sys.argv)
    run_ddp_children_as_this_job()
    main()
