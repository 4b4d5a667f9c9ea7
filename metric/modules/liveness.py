"""The presentation-attack-detection LightningModule: live/spoof loss (plus optional spoof-type, illumination,
Fourier heads),
validation EER each epoch, and the final liveness scores of the best checkpoint on the validation and test splits."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from datamodules.liveness import LivenessData
from metric.config_factory import build_from_config, locate_class
from metric.errors import ConfigError, check_number
from metric.metrics.liveness import pad_eer
from metric.model.checkpoint import liveness_record
from metric.model.liveness_net import LivenessNet, fourier_target
from metric.modules.base import EvaluatedModule

Scored = tuple[
    np.ndarray, np.ndarray
]  # (liveness scores, (N, 4) targets: spoof, spoof type, illumination, environment)


def check_target_apcer(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(
            f"target_apcer={value!r} must lie in (0, 1), e.g. 0.05: the share of attacks of the worst "
            "type that the calibrated threshold may let through on validation."
        )
    return float(value)


class LivenessModule(EvaluatedModule):
    """Binary cross-entropy on live vs attack; with the net's aux heads, `aux_weight` x the cross-entropy of the spoof
    type and of the illumination (CelebA-Spoof's semantic labels); with its Fourier head, `fourier_weight` x the mean
    squared error of the predicted spectrum. Logs val_eer, the pooled liveness EER."""

    task = "liveness"

    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        """A liveness run needs a liveness datamodule and net, and takes none of the verification-only groups."""
        if not issubclass(locate_class(cfg.datamodule, "datamodule"), LivenessData):
            raise ConfigError(
                f"+experiment=liveness needs live/spoof data: datamodule=celeba_spoof or "
                f"datamodule=simulated_spoof, not {cfg.datamodule._target_}."
            )
        if not issubclass(locate_class(cfg.model, "model"), LivenessNet):
            raise ConfigError(
                f"+experiment=liveness trains a LivenessNet (model=liveness_net), not {cfg.model._target_}."
            )
        for group in ("loss", "miner", "matcher", "adversarial", "teacher"):
            if cfg.get(group) is not None:
                raise ConfigError(f"+experiment=liveness takes no {group}: remove it (~{group} on the command line).")
        if cfg.get("cv") is not None and build_from_config(cfg.cv).enabled:
            raise ConfigError(
                "+experiment=liveness does not cross-validate: remove cv.folds; its validation and test "
                "subjects are already disjoint from train."
            )
        check_target_apcer(cfg.target_apcer)

    def __init__(self, net: LivenessNet, aux_weight: float = 0.5, fourier_weight: float = 1.0, **base: Any):
        """`base`: EvaluatedModule's optimizer, scheduler and preprocessing record."""
        check_number(aux_weight, "module.aux_weight", 0)
        check_number(fourier_weight, "module.fourier_weight", 0)
        super().__init__(net, **base)
        self.aux_weight = float(aux_weight)
        self.fourier_weight = float(fourier_weight)

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
    def outputs(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.liveness(images).detach().cpu().double()  # scores in float64, as every rate is computed

    @property
    def final_scores(self) -> dict[str, Scored]:
        """The validation and test liveness scores and targets `trainer.test` gathered."""
        return self.final_outputs

    def on_validation_epoch_end(self) -> None:
        scores, targets = self._gathered("val")
        if targets[:, 0].all() or not targets[:, 0].any():
            return  # a truncated debug run may see one class only
        rate = pad_eer(scores, targets[:, 1])[0]
        self.log("val_eer", torch.tensor(rate, dtype=torch.float64, device=self.device), prog_bar=True)

    def checkpoint_record(self) -> dict:
        return liveness_record(self.net, self.preprocess)
