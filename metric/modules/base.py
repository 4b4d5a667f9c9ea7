"""The base every LightningModule here shares: validation and test outputs collected per split and gathered across
ranks in dataset order, full-precision final outputs, the optimizer wiring and the checkpoint record."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch

from datamodules.base import FINAL_SPLITS
from metric.training.distributed import gather_in_order
from metric.training.optimizer import optimizer_config

Gathered = tuple[np.ndarray, np.ndarray]  # (one output per image, its labels or targets), in dataset order


class EvaluatedModule(pl.LightningModule):
    """Subclasses say what one batch of images gives (`outputs`), what validation logs (`on_validation_epoch_end`)
    and what the checkpoint records (`checkpoint_record`); `trainer.test` fills `final_outputs` with the gathered
    validation and test splits (FINAL_SPLITS). A class may also check a composed config (`check_config`)."""

    def __init__(
        self,
        net: torch.nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        preprocess: dict | None = None,
    ):
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.preprocess = dict(preprocess or {})
        self._collected: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        self.final_outputs: dict[str, Gathered] = {}

    def outputs(self, images: torch.Tensor) -> torch.Tensor:
        """What validation and test keep of one batch of images, on the CPU."""
        raise NotImplementedError

    def checkpoint_record(self) -> dict:
        """What a checkpoint stores to rebuild the net without this class (metric.model.checkpoint)."""
        raise NotImplementedError

    def _collect(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        images, labels = batch
        outputs, seen = self._collected.setdefault(split, ([], []))
        outputs.append(self.outputs(images))
        seen.append(labels.cpu())

    def _gathered(self, split: str) -> Gathered:
        """This split's outputs and labels from every rank, in dataset order (under DDP each rank had a shard)."""
        outputs, labels = self._collected.pop(split)
        return gather_in_order(self, torch.cat(outputs)).numpy(), gather_in_order(self, torch.cat(labels)).numpy()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._collect("val", batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        # the final outputs (calibration, the stored threshold, the test figures) are full precision under any
        # trainer precision, as metric.evaluate computes them
        with torch.autocast(device_type=self.device.type, enabled=False):
            self._collect(FINAL_SPLITS[dataloader_idx], (batch[0].float(), batch[1]))

    def on_test_epoch_end(self) -> None:
        self.final_outputs = {split: self._gathered(split) for split in FINAL_SPLITS}

    def optimizer_parameters(self):
        """The parameters (or parameter groups) the optimizer updates."""
        return self.parameters()

    def configure_optimizers(self):
        return optimizer_config(self.optimizer_parameters(), self.optimizer_factory, self.scheduler_factory)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        from metric.model.checkpoint import CHECKPOINT_KEY

        checkpoint[CHECKPOINT_KEY] = self.checkpoint_record()
