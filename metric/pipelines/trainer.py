"""What every training run does the same way: the optimizer and scheduler checks and wiring, the trainer with its
callbacks and loggers (the whole composed config logged as hyperparameters), and fit-then-test-the-best-epoch."""

from __future__ import annotations

import os

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from metric.config_factory import build_from_config
from metric.errors import ConfigError
from metric.training.distributed import end_process_group


def made_or_refused(node: DictConfig, group: str, make):
    """make(the partial `node` instantiates), or one clear error naming the group's settings when the torch class
    refuses them (it raises ValueError on lr=-1, say)."""
    try:
        return make(build_from_config(node))
    except (ValueError, TypeError) as error:
        settings = ", ".join(f"{k}={v}" for k, v in node.items() if not k.startswith("_"))
        raise ConfigError(
            f"{group} settings ({settings}) are refused by {node._target_}: {error}. "
            f"Fix the value with {group}.<key>=<value>."
        ) from None


class ParameterSummary(pl.callbacks.ModelSummary):
    """Lightning's model summary as one line of parameter counts: its table's FLOPs read 0 without an example input,
    which only misleads."""

    @staticmethod
    def summarize(
        summary_data,
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes,
        total_flops: int = 0,
        **kwargs,
    ) -> None:
        columns = dict(summary_data)
        parts = ", ".join(
            f"{name} ({kind}, {count.strip()})"
            for name, kind, count in zip(columns.get("Name", []), columns.get("Type", []), columns.get("Params", []))
        )
        print(
            f"model: {parts}; {total_parameters / 1e6:.2f} M parameters, {trainable_parameters / 1e6:.2f} M "
            f"trainable, {model_size:.1f} MB"
        )


def check_torch_settings(cfg: DictConfig) -> None:
    """The optimizer and scheduler validate their own settings, on a stand-in parameter, before any data is read."""
    probe = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = made_or_refused(cfg.optimizer, "optimizer", lambda make: make(params=probe))
    if cfg.get("scheduler") is not None:
        made_or_refused(cfg.scheduler, "scheduler", lambda make: make(optimizer=optimizer))


def build_trainer(cfg: DictConfig) -> pl.Trainer:
    """The configured Trainer with its callbacks and loggers; each logger receives the whole composed config."""
    callbacks = [build_from_config(c) for c in cfg.get("callbacks", {}).values() if c is not None]
    loggers = [build_from_config(c) for c in cfg.get("logger", {}).values() if c is not None]
    trainer = build_from_config(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return trainer


def fit_and_test_best(trainer: pl.Trainer, module: pl.LightningModule, datamodule) -> tuple[object, str]:
    """Fit, then run trainer.test on the best checkpoint by validation EER (the module collects its final outputs
    there); returns (that ModelCheckpoint callback or None, the best checkpoint's path or "")."""
    env_before = set(os.environ)
    trainer.fit(module, datamodule=datamodule)
    best = next((c for c in trainer.checkpoint_callbacks if c.monitor == "val_eer"), None)
    best_path = best.best_model_path if best is not None else ""
    trainer.test(module, datamodule=datamodule, ckpt_path=best_path or None, verbose=False)
    end_process_group(env_before)
    return best, best_path
