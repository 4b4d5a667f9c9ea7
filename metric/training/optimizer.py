"""The optimizer and per-epoch scheduler a LightningModule hands to Lightning, from the configured factories."""

from __future__ import annotations

from collections.abc import Callable

import torch


def optimizer_config(
    parameters,
    optimizer: Callable[..., torch.optim.Optimizer],
    scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None,
):
    """A LightningModule's configure_optimizers answer: the optimizer, with its per-epoch scheduler when there is
    one."""
    built = optimizer(params=parameters)
    if scheduler is None:
        return built
    return {"optimizer": built, "lr_scheduler": {"scheduler": scheduler(optimizer=built), "interval": "epoch"}}
