"""The presentation-attack-detection LightningModule: live/spoof loss (plus optional spoof-type, illumination,
Fourier heads),
validation EER each epoch, and the final liveness scores of the best checkpoint on the validation and test splits."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from datamodules.base import FINAL_SPLITS
from metric.errors import check_number
from metric.metrics.liveness import pad_eer
from metric.model.checkpoint import CHECKPOINT_KEY, liveness_record
from metric.model.liveness_net import LivenessNet, fourier_target
from metric.modules.distributed import gather_in_order
from metric.modules.trainer_build import optimizer_config

Scored = tuple[
    np.ndarray, np.ndarray
]  # (liveness scores, (N, 4) targets: spoof, spoof type, illumination, environment)


class LivenessModule(pl.LightningModule):
    """Binary cross-entropy on live vs attack; with the net's aux heads, `aux_weight` x the cross-entropy of the spoof
    type and of the illumination (CelebA-Spoof's semantic labels); with its Fourier head, `fourier_weight` x the mean
    squared error of the predicted spectrum. Logs val_eer, the pooled liveness EER."""

    def __init__(
        self,
        net: LivenessNet,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        aux_weight: float = 0.5,
        fourier_weight: float = 1.0,
        preprocess: dict | None = None,
    ):
        super().__init__()
        check_number(aux_weight, "module.aux_weight", 0)
        check_number(fourier_weight, "module.fourier_weight", 0)
        self.net = net
        self.aux_weight = float(aux_weight)
        self.fourier_weight = float(fourier_weight)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.preprocess = dict(preprocess or {})
        self._collected: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        self.final_scores: dict[str, Scored] = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.liveness(images)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, targets = batch
        out = self.net(images)
        loss = F.binary_cross_entropy_with_logits(out["live"].float(), (1 - targets[:, 0]).float())
        self.log("train_live_loss", loss, prog_bar=True)
        if self.net.aux_heads and self.aux_weight:
            aux = F.cross_entropy(out["spoof_type"].float(), targets[:, 1]) + F.cross_entropy(
                out["illumination"].float(), targets[:, 2]
            )
            self.log("train_aux_loss", aux)
            loss = loss + self.aux_weight * aux
        if "spectrum" in out and self.fourier_weight:
            predicted = out["spectrum"].float()
            fourier = F.mse_loss(predicted, fourier_target(images, tuple(predicted.shape[-2:])))
            self.log("train_fourier_loss", fourier)
            loss = loss + self.fourier_weight * fourier
        self.log("train_loss", loss)
        return loss

    # evaluation ---------------------------------------------------------------------------
    def _collect(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        images, targets = batch
        scores, seen = self._collected.setdefault(split, ([], []))
        scores.append(self.net.liveness(images).detach().cpu())
        seen.append(targets.cpu())

    def _gathered(self, split: str) -> Scored:
        scores, targets = self._collected.pop(split)
        return (
            gather_in_order(self, torch.cat(scores)).numpy().astype(np.float64),
            gather_in_order(self, torch.cat(targets)).numpy(),
        )

    def validation_step(self, batch, batch_idx: int) -> None:
        self._collect("val", batch)

    def on_validation_epoch_end(self) -> None:
        scores, targets = self._gathered("val")
        if targets[:, 0].all() or not targets[:, 0].any():
            return  # a truncated debug run may see one class only
        rate = pad_eer(scores, targets[:, 1])[0]
        self.log("val_eer", torch.tensor(rate, dtype=torch.float64, device=self.device), prog_bar=True)

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        with torch.autocast(device_type=self.device.type, enabled=False):
            self._collect(FINAL_SPLITS[dataloader_idx], (batch[0].float(), batch[1]))

    def on_test_epoch_end(self) -> None:
        self.final_scores = {split: self._gathered(split) for split in FINAL_SPLITS}

    # training wiring ----------------------------------------------------------------------
    def configure_optimizers(self):
        return optimizer_config(self.parameters(), self.optimizer_factory, self.scheduler_factory)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = liveness_record(self.net, self.preprocess)
