"""Checks that run before anything is built, and an instantiate that lets ConfigError through unwrapped."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from metric.errors import ConfigError
from metric.nets import check_head_args, check_model_args

TRIPLET_TYPES = ("semihard", "hard", "all", "easy")


CLASS_LOSS_TARGET = "metric.class_losses.IdentityClassLoss"


def check_class_loss(cfg: DictConfig) -> None:
    """A classification loss (loss=arcface, ...) needs the embedding objective and no miner."""
    if cfg.get("loss") is None or cfg.loss.get("_target_") != CLASS_LOSS_TARGET:
        return
    if not str(cfg.module.get("_target_")).startswith("metric.triplet_module."):
        raise ConfigError(f"loss.kind={cfg.loss.kind} learns from embeddings and identity labels: use it with "
                          "module=triplet (or distill), not the pair objective of module=siamese.")
    if cfg.get("miner") is not None:
        raise ConfigError(f"loss.kind={cfg.loss.kind} is a classification loss and uses no miner: remove it with "
                          "~miner on the command line (or `- override /miner: null` in an experiment).")


def check_config(cfg: DictConfig) -> None:
    """Reject values that would only fail deep inside a library, with the key and the fix."""
    model = cfg.model
    if "teacher" in cfg.keys() and OmegaConf.is_missing(cfg.teacher, "ckpt"):
        raise ConfigError("distillation needs its teacher: add teacher.ckpt=<ckpt>, for example the best checkpoint "
                          "of `python -m metric.train +experiment=triplet`.")
    if "pretrained_checkpoint" in cfg.keys() and OmegaConf.is_missing(cfg, "pretrained_checkpoint"):
        raise ConfigError(
            "this experiment fine-tunes a pretrained net: add pretrained_checkpoint=<ckpt>, for example the best "
            "checkpoint of `python -m metric.train +experiment=triplet` (trained on the synthetic faces)."
        )
    check_model_args(model.backbone, model.embedding_dim, model.get("pretrained", False), model.get("weights"))
    check_head_args(model.get("pool", "avg"), [1, 1], model.get("dropout", 0.0))  # input_size comes from the data
    check_class_loss(cfg)
    miner = cfg.get("miner")
    if miner is not None and "type_of_triplets" in miner and miner.type_of_triplets not in TRIPLET_TYPES:
        raise ConfigError(
            f"miner.type_of_triplets={miner.type_of_triplets!r} is not one of {', '.join(TRIPLET_TYPES)}; "
            "or pick a miner config: miner=semihard, miner=hard or miner=all."
        )


def build_from_config(node: DictConfig, **kwargs: Any) -> Any:
    """hydra.utils.instantiate with plain Python containers (never OmegaConf objects, which cannot be stored
    in a weights-only checkpoint), and a ConfigError raised by the target reaches the user as itself."""
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise
