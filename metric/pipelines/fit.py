"""One training run of metric.train: the components check the config, the datamodule, module and trainer are built,
the module is fitted, the best checkpoint is tested on identities it never saw, its calibrated threshold is stored
in it, and the summary is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig

from datamodules.base import IdentityDataModule
from datamodules.folds import CVFold
from datamodules.pk_sampler import check_pk_fits
from datamodules.split import IdentitySplit
from metric.config_factory import build_from_config, locate_class
from metric.losses.class_losses import needs_identity_labels
from metric.model.adapted import Projection
from metric.model.checkpoint import store_calibration
from metric.model.embedders import ExternalEmbedder
from metric.pipelines.checks import check_components
from metric.pipelines.trainer import build_trainer, fit_and_test_best
from metric.report.summary import format_summary, write_summary
from metric.report.wandb_logger import find_wandb_logger
from metric.scoring.feature_cache import FeatureCache
from metric.scoring.load import build_embedder, embedder_datamodule, embedder_front_end
from metric.scoring.matchers import build_matcher
from metric.scoring.protocols import official_pairs_summary, official_test_pairs
from metric.scoring.summary import verification_summary
from metric.training.features import FeatureDataModule
from metric.training.teachers import build_teacher, teacher_embedder

TrainOverride = Callable[[IdentitySplit], IdentitySplit]


def build_loss(cfg: DictConfig, datamodule: IdentityDataModule):
    """The configured loss; one that needs the training identities (`needs_identity_labels`: a classification loss)
    also gets their labels and the embedding size, which only the data and the model know."""
    if needs_identity_labels(cfg):
        return build_from_config(
            cfg.loss, train_labels=datamodule.splits["train"].labels, embedding_size=cfg.model.embedding_dim
        )
    return build_from_config(cfg.loss)


def adapt_inputs(cfg, fold=None) -> tuple[FeatureDataModule, Projection, ExternalEmbedder]:
    """The embedder (`model`), the datamodule of its cached features (set up, on cross-validation fold `fold`),
    and the head (`adapt`) to train on them."""
    embedder = build_embedder(cfg.model)
    images = embedder_datamodule(cfg.datamodule, embedder, embedder_front_end(embedder, cfg.datamodule.get("face")))
    if fold is not None:
        images.use_fold(fold)
    datamodule = FeatureDataModule(images, FeatureCache(embedder, embedder.spec(), cfg.adapt.cache_dir))
    datamodule.setup("fit")
    settings = cfg.adapt
    head = Projection(
        embedder.embedding_dim, settings.get("embedding_dim"), settings.head, settings.hidden, settings.dropout
    )
    return datamodule, head, embedder


def build(cfg: DictConfig, fold: CVFold | None = None, train_override: TrainOverride | None = None):
    """Instantiate datamodule, module, callbacks, loggers and trainer; the datamodule is set up (and checked) here,
    on the splits of cross-validation fold `fold` when one is given, with its train split replaced by
    `train_override(train split)` when one is given (self-training)."""
    check_components(cfg)
    extra = {}
    if locate_class(cfg.module, "module").trains_on_features:  # a head on cached embedder outputs
        datamodule, net, extra["embedder"] = adapt_inputs(cfg, fold)
    else:
        augment = build_from_config(cfg.augment) if cfg.get("augment") else None
        if getattr(augment, "batch_mix", None) is not None:  # augment.mix: the module mixes its training batches
            extra["mix"] = augment.batch_mix
        teacher = build_teacher(cfg.teacher) if cfg.get("teacher") is not None else None
        embedder = teacher_embedder(teacher) if teacher is not None else None
        if embedder is not None:  # an outside teacher: the student reads the images the teacher reads
            front_end = embedder_front_end(embedder, cfg.datamodule.get("face"))
            datamodule = embedder_datamodule(cfg.datamodule, embedder, front_end, augment=augment)
        else:
            datamodule = build_from_config(cfg.datamodule, augment=augment)
        if teacher is not None:
            extra["teacher"] = teacher
        if fold is not None:
            datamodule.use_fold(fold)
        datamodule.train_override = train_override
        datamodule.setup("fit")  # parses data and checks P x K before any training
        net = build_from_config(
            cfg.model, in_chans=datamodule.channels, input_size=list(datamodule.preprocessing["image_size"])
        )
    module = build_from_config(
        cfg.module,
        net=net,
        loss=build_loss(cfg, datamodule),
        miner=build_from_config(cfg.miner) if cfg.get("miner") else None,
        optimizer=build_from_config(cfg.optimizer),
        scheduler=build_from_config(cfg.scheduler) if cfg.get("scheduler") else None,
        max_impostor_pairs=datamodule.max_impostor_pairs,
        preprocess=datamodule.preprocessing,
        **({"adversarial": build_from_config(cfg.adversarial)} if cfg.get("adversarial") else {}),
        **({"finetune": build_from_config(cfg.finetune)} if cfg.get("finetune") else {}),
        **extra,
    )
    trainer = build_trainer(cfg)
    ranks = trainer.num_nodes * trainer.num_devices
    if ranks > 1:  # each rank draws its own P identities per step: P x ranks must fit the train split
        check_pk_fits(
            datamodule.splits["train"].labels,
            datamodule.batch_identities,
            datamodule.batch_images_per_identity,
            replicas=ranks,
        )
    return datamodule, module, trainer


def train_once(cfg: DictConfig, fold: CVFold | None = None, train_override: TrainOverride | None = None) -> dict | None:
    """Fit; then trainer.test restores the best checkpoint and embeds the validation and test identities; the
    threshold is calibrated on validation (and stored in that checkpoint), and the errors are measured on test."""
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    datamodule, module, trainer = build(cfg, fold, train_override)
    best, best_path = fit_and_test_best(trainer, module, datamodule)
    if not trainer.is_global_zero:  # under DDP every file write happens on rank 0 only
        return None
    val, test = module.final_embeddings["val"], module.final_embeddings["test"]
    summary, calibration, test_pairs = verification_summary(
        val, test, build_matcher(cfg.matcher, head=module.head), datamodule.max_impostor_pairs
    )
    if best_path:
        store_calibration(best_path, calibration.to_dict(), make_default=True)
    pairs = official_test_pairs(datamodule)
    if pairs is not None:  # the dataset's official test pairs (LFW)
        summary.update(
            official_pairs_summary(
                val, test[0], pairs, build_matcher(cfg.matcher, head=module.head), datamodule.max_impostor_pairs
            )
        )
    summary.update({f"data_{key}": value for key, value in datamodule.notes.items()})
    summary.update(module.run_notes)
    summary["best_val_eer"] = (
        float(best.best_model_score) if best is not None and best.best_model_score is not None else None
    )
    summary["best_checkpoint"] = best_path or None
    write_summary(summary, output_dir / "summary.json")
    print(format_summary(summary))
    wandb_logger = find_wandb_logger(trainer)
    if wandb_logger is not None:
        images = datamodule.splits["test"].images
        wandb_logger.log_verification_report(
            images, test[0], test[1], test_pairs, calibration.threshold, summary, best_path or None
        )
        wandb_logger.experiment.finish()
    return summary
