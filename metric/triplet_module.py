"""Triplet objective: pytorch-metric-learning miner + TripletMarginLoss over P x K batches."""

from __future__ import annotations

import torch
from torch import nn

from metric.distributed import gather_batch
from metric.embedding_module import EmbeddingModule


class TripletModule(EmbeddingModule):
    """Embeds the whole batch with one shared net, mines triplets, and applies the triplet loss."""

    def __init__(self, net, loss: nn.Module, miner: nn.Module | None = None, **kwargs):
        super().__init__(net, **kwargs)
        self.loss_fn = loss
        self.miner = miner

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        embeddings, labels = gather_batch(self, self.net(images), labels)  # the global batch under DDP
        triplets = self.miner(embeddings, labels) if self.miner is not None else None
        loss = self.loss_fn(embeddings, labels, triplets)
        batch_size = labels.numel()
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size)
        if triplets is not None:
            self.log("train_active_triplet_fraction", active_fraction(triplets, labels), on_step=False,
                     on_epoch=True, batch_size=batch_size)
        return loss


def active_fraction(triplets: tuple[torch.Tensor, ...], labels: torch.Tensor) -> float:
    """Mined triplets as a share of every (anchor, positive, negative) triplet in the batch."""
    same = labels[:, None] == labels[None, :]
    positives = same.sum(1) - 1
    negatives = (~same).sum(1)
    possible = int((positives * negatives).sum())
    return len(triplets[0]) / possible if possible else 0.0
