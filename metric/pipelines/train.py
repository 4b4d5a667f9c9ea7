"""Training (metric.train): check the composed config by type, build datamodule, module and trainer, fit, evaluate
the best checkpoint on identities it never saw, and store its calibrated threshold; k times under cross-validation."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from datamodules.base import IdentityDataModule
from datamodules.folds import CrossValidation, CVFold
from datamodules.pk_sampler import check_pk_fits
from datamodules.split import IdentitySplit
from metric.config_factory import build_from_config, locate_class
from metric.errors import ConfigError
from metric.metrics.cross_validation import cross_validate
from metric.metrics.protocols import official_pairs_summary, official_test_pairs
from metric.model.checkpoint import store_calibration
from metric.model.embedders import NOT_DIFFERENTIABLE, ExternalEmbedder
from metric.model.nets import EmbeddingNet, check_face_input, check_head_args, check_model_args
from metric.modules.adapt import AdaptModule, adapt_inputs
from metric.modules.class_losses import IdentityClassLoss
from metric.modules.distill import build_teacher, teacher_embedder
from metric.modules.embedding import EmbeddingModule
from metric.modules.liveness import LivenessModule
from metric.modules.liveness_training import train_liveness
from metric.modules.metric_loss import MetricLossModule
from metric.modules.pair import ADVERSARIAL_NEEDS_METRIC_LOSS, PAIR_TAKES_NO_MINER, PairModule
from metric.modules.self_training import train_self
from metric.modules.trainer_build import build_trainer, check_torch_settings, fit_and_test_best
from metric.report.self_training import format_rounds, rounds_across_folds
from metric.report.summary import format_cv_table, format_summary, verification_summary, write_summary
from metric.report.wandb_logger import find_wandb_logger
from metric.scoring.load import embedder_datamodule, embedder_front_end
from metric.scoring.matchers import NEEDS_HEAD, Matcher, build_matcher, check_target_far

TRIPLET_TYPES = ("semihard", "hard", "all", "easy")
TrainOverride = Callable[[IdentitySplit], IdentitySplit]


def check_config(cfg: DictConfig) -> None:
    """Reject values that would only fail deep inside a library, with the key and the fix; reads the classes the
    config groups name (their types and class attributes), never `_target_` strings, and builds nothing heavy."""
    teacher = cfg.get("teacher")
    if teacher is not None and "ckpt" in teacher.keys() and OmegaConf.is_missing(teacher, "ckpt"):
        raise ConfigError(
            "distillation needs its teacher: add teacher.ckpt=<ckpt>, for example the best checkpoint "
            "of `python -m metric.train +experiment=triplet`, or teacher=dlib."
        )
    if (
        teacher is not None
        and teacher.get("model") is not None
        and "path" in teacher.model.keys()
        and OmegaConf.is_missing(teacher.model, "path")
    ):
        raise ConfigError("teacher=onnx needs its model file: add teacher.model.path=<file.onnx>.")
    if "pretrained_checkpoint" in cfg.keys() and OmegaConf.is_missing(cfg, "pretrained_checkpoint"):
        raise ConfigError(
            "this experiment fine-tunes a pretrained net: add pretrained_checkpoint=<ckpt>, for example the best "
            "checkpoint of `python -m metric.train +experiment=triplet` (trained on the synthetic faces)."
        )
    model = cfg.model
    module_cls = locate_class(cfg.module, "module")
    if not issubclass(module_cls, EmbeddingModule):
        raise ConfigError(f"module._target_={cfg.module._target_!r} is not an EmbeddingModule.")
    if issubclass(module_cls, AdaptModule) and cfg.get("augment") and cfg.augment.get("mix"):
        raise ConfigError(
            "augment.mix mixes images, but +experiment=adapt trains a head on cached embedder features: "
            "remove it with ~augment.mix or augment.mix=null."
        )
    model_cls = locate_class(model, "model")
    if issubclass(module_cls, AdaptModule) != issubclass(model_cls, ExternalEmbedder):
        if issubclass(model_cls, ExternalEmbedder):
            raise ConfigError(NOT_DIFFERENTIABLE.format(kind=model_cls.kind, what="training"))
        raise ConfigError(
            "+experiment=adapt trains a head on a frozen pretrained embedder: set model=dlib or "
            "model=onnx model.path=<file>."
        )
    if not issubclass(module_cls, AdaptModule):
        if not issubclass(model_cls, EmbeddingNet):
            raise ConfigError(f"model._target_={model._target_!r} is not an EmbeddingNet.")
        check_model_args(model.backbone, model.embedding_dim, model.get("pretrained", False), model.get("weights"))
        check_head_args(model.get("pool", "avg"), [1, 1], model.get("dropout", 0.0))  # input_size comes from the data
        check_face_input(
            model.backbone,
            model.get("pretrained", False),
            cfg.datamodule.get("image_size", [0, 0]),
            cfg.datamodule.get("channels", 3),
            face_settings(cfg.get("face")),
        )
    check_finetune(cfg, module_cls)
    loss = cfg.get("loss")
    if loss is not None and issubclass(locate_class(loss, "loss"), IdentityClassLoss):
        if issubclass(module_cls, AdaptModule):
            raise ConfigError(
                f"loss.kind={loss.kind} is a classification loss; adapt trains its head with a metric "
                "loss: loss=multi_similarity (the default) or loss=triplet_margin miner=semihard."
            )
        if not issubclass(module_cls, MetricLossModule):
            raise ConfigError(
                f"loss.kind={loss.kind} learns from embeddings and identity labels: use it with "
                "module=metric_loss (or distill), not the pair objective of module=pair."
            )
        if cfg.get("miner") is not None:
            raise ConfigError(
                f"loss.kind={loss.kind} is a classification loss and uses no miner: remove it with "
                "~miner on the command line (or `- override /miner: null` in an experiment)."
            )
    if issubclass(module_cls, PairModule):
        if cfg.get("adversarial") is not None:
            raise ConfigError(ADVERSARIAL_NEEDS_METRIC_LOSS)
        if cfg.get("miner") is not None:
            raise ConfigError(PAIR_TAKES_NO_MINER)
    miner = cfg.get("miner")
    if miner is not None and "type_of_triplets" in miner and miner.type_of_triplets not in TRIPLET_TYPES:
        raise ConfigError(
            f"miner.type_of_triplets={miner.type_of_triplets!r} is not one of {', '.join(TRIPLET_TYPES)}; "
            "or pick a miner config: miner=semihard, miner=hard or miner=all."
        )
    matcher_cls = locate_class(cfg.matcher, "matcher")
    if not issubclass(matcher_cls, Matcher):
        raise ConfigError(f"matcher._target_={cfg.matcher._target_!r} is not a Matcher.")
    if matcher_cls.needs_head and not module_cls.has_head:
        raise ConfigError(NEEDS_HEAD)
    check_target_far(cfg.matcher.target_far)
    check_torch_settings(cfg)


def face_settings(face: DictConfig | None) -> dict | None:
    """The front end a `face` node names, as the name, template and margin its crops are cut with (nothing built)."""
    if face is None:
        return None
    return {
        "name": locate_class(face, "face").name,
        "template": face.get("template", "arcface"),
        "margin": face.get("margin", 0.0),
    }


def check_finetune(cfg: DictConfig, module_cls: type) -> None:
    """A `finetune` node starts from pretrained weights, on a trainable net."""
    if cfg.get("finetune") is None:
        return
    if issubclass(module_cls, AdaptModule):
        raise ConfigError(
            "finetune trains the backbone itself; +experiment=adapt trains a head on a frozen outside "
            "embedder: remove finetune (~finetune), or fine-tune a torch backbone (model=mobilefacenet)."
        )
    model = cfg.model
    if not model.get("pretrained", False) and not model.get("weights"):
        raise ConfigError(
            f"finetune starts from pretrained weights, but model.backbone={model.get('backbone')} has "
            "none (model.pretrained=false, no model.weights): use model=mobilefacenet (python -m "
            "metric.weights fetch mobilefacenet), set model.weights=<file>, or drop finetune (~finetune) "
            "to train from scratch."
        )
    settings = build_from_config(cfg.finetune)  # its own checks, before any data is read
    if settings.keep_pretrained and module_cls.default_matcher != "cosine":
        raise ConfigError(
            f"finetune.keep_pretrained=true compares the fine-tuned net with the pretrained one by cosine, "
            f"but module={module_cls.__name__} scores with its {module_cls.default_matcher} head: set "
            "finetune.keep_pretrained=false."
        )


def build_loss(cfg: DictConfig, datamodule: IdentityDataModule):
    """The configured loss; a classification loss also gets the training identities and the embedding size, which
    only the data and the model know."""
    if issubclass(locate_class(cfg.loss, "loss"), IdentityClassLoss):
        return build_from_config(
            cfg.loss, train_labels=datamodule.splits["train"].labels, embedding_size=cfg.model.embedding_dim
        )
    return build_from_config(cfg.loss)


def build(cfg: DictConfig, fold: CVFold | None = None, train_override: TrainOverride | None = None):
    """Instantiate datamodule, module, callbacks, loggers and trainer; the datamodule is set up (and checked) here,
    on the splits of cross-validation fold `fold` when one is given, with its train split replaced by
    `train_override(train split)` when one is given (self-training)."""
    check_config(cfg)
    extra = {}
    if issubclass(locate_class(cfg.module, "module"), AdaptModule):  # a head on cached embedder outputs
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


def train(cfg: DictConfig) -> dict | None:
    """One training, or with `cv.folds=k` one per identity-disjoint fold and their cross-validated summary (written
    to <run dir>/summary.json; fold i into <run dir>/fold_<i>/). With a `self_train` node, each of those runs is a
    self-training (its rounds). None on DDP ranks other than 0."""
    if issubclass(locate_class(cfg.module, "module"), LivenessModule):
        return train_liveness(cfg)
    self_training = cfg.get("self_train") is not None

    def run(run_cfg: DictConfig, fold: CVFold | None = None) -> dict | None:
        return train_self(run_cfg, train_once, fold) if self_training else train_once(run_cfg, fold)

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
