"""`module=metric_loss`: any embedding loss over P x K batches (a pytorch-metric-learning miner and loss: triplet
margin, multi-similarity, ...; or an identity-classification loss: ArcFace, CosFace), optionally with adversarial
examples mixed in, and with mixed pairs of identities (`augment.mix`, metric.losses.mixing)."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from datamodules.mixing import BatchMix
from metric.errors import ConfigError
from metric.losses.adversarial import AdversarialTraining
from metric.losses.mixing import interpolated_metric_loss, mixed_term
from metric.modules.embedding import EmbeddingModule
from metric.scoring.embed import embed_images
from metric.training.distributed import gather_batch

TRIPLET_TYPES = ("semihard", "hard", "all", "easy")


class MetricLossModule(EmbeddingModule):
    """Embeds the whole batch with one shared net, mines pairs or triplets when a miner is given, and applies the
    loss to the embeddings and identity labels. With `mix`, a batch it mixes adds the interpolated loss of the mixed
    samples against this rank's clean embeddings (metric.losses.mixing.interpolated_metric_loss)."""

    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        super().check_config(cfg)
        miner = cfg.get("miner")
        if miner is not None and "type_of_triplets" in miner and miner.type_of_triplets not in TRIPLET_TYPES:
            raise ConfigError(
                f"miner.type_of_triplets={miner.type_of_triplets!r} is not one of {', '.join(TRIPLET_TYPES)}; "
                "or pick a miner config: miner=semihard, miner=hard or miner=all."
            )

    def __init__(
        self,
        net,
        loss: nn.Module,
        miner: nn.Module | None = None,
        adversarial: AdversarialTraining | None = None,
        mix: BatchMix | None = None,
        **kwargs,
    ):
        super().__init__(net, **kwargs)
        self.loss_fn = loss
        self.miner = miner
        self.adversarial = adversarial.prepare(self.preprocess) if adversarial else None  # patch: its mask, now
        self.mix = mix

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if getattr(self.loss_fn, "init", None) == "imprint":  # loss.init=imprint: centres from the training faces
            train = self.trainer.datamodule.splits["train"]
            embeddings = torch.from_numpy(embed_images(self.net, train.images))
            self.loss_fn.imprint(embeddings, torch.from_numpy(np.asarray(train.labels)))
            print(f"loss.init=imprint: {self.loss_fn.num_classes} identity centres set to their mean embeddings")

    def batch_loss(self, embeddings: torch.Tensor, labels: torch.Tensor):
        triplets = self.miner(embeddings, labels) if self.miner is not None else None
        return self.loss_fn(embeddings, labels, triplets), triplets

    def adversarial_images(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The batch with adversarial.ratio of its images perturbed to raise this batch's loss."""
        return self.adversarial.perturb(self.net, lambda x: self.batch_loss(self.net(x), labels)[0], images)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        adv_images = self.adversarial_images(images, labels) if self.adversarial else None
        local = self.net(images)
        embeddings, labels_all = gather_batch(self, local, labels)  # the global batch under DDP
        loss, triplets = self.batch_loss(embeddings, labels_all)
        if adv_images is not None:
            adv_loss, _ = self.batch_loss(*gather_batch(self, self.net(adv_images), labels))
            self.log("train_adversarial_loss", adv_loss, on_step=False, on_epoch=True, batch_size=labels.numel())
            weight = self.adversarial.weight
            loss = (1.0 - weight) * loss + weight * adv_loss
        mix_loss = mixed_term(
            self,
            images,
            labels,
            lambda mixed, mix: interpolated_metric_loss(self.loss_fn, self.miner, local, labels, mixed, mix),
        )
        labels = labels_all
        batch_size = labels.numel()
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size)
        if triplets is not None:  # a triplet miner's (anchor, positive, negative), or a pair miner's 4 index lists
            name, fraction = (
                ("train_active_triplet_fraction", active_fraction)
                if len(triplets) == 3
                else ("train_active_pair_fraction", active_pair_fraction)
            )
            self.log(name, fraction(triplets, labels), on_step=False, on_epoch=True, batch_size=batch_size)
        return loss + mix_loss + self.extra_loss(images, local)

    def extra_loss(self, images: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor | float:
        """Terms a subclass adds to the logged objective, from this rank's images and their embeddings."""
        return 0.0


def active_pair_fraction(pairs: tuple[torch.Tensor, ...], labels: torch.Tensor) -> float:
    """Mined positive and negative pairs as a share of every ordered pair in the batch."""
    n = labels.numel()
    return (len(pairs[0]) + len(pairs[2])) / (n * (n - 1)) if n > 1 else 0.0


def active_fraction(triplets: tuple[torch.Tensor, ...], labels: torch.Tensor) -> float:
    """Mined triplets as a share of every (anchor, positive, negative) triplet in the batch."""
    same = labels[:, None] == labels[None, :]
    positives = same.sum(1) - 1
    negatives = (~same).sum(1)
    possible = int((positives * negatives).sum())
    return len(triplets[0]) / possible if possible else 0.0
