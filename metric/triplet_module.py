"""Embedding-loss objective over P x K batches: a pytorch-metric-learning miner and loss (triplet margin, multi-similarity, ...)."""

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
        if triplets is not None and len(triplets) == 3:  # (anchor, positive, negative) from a triplet miner
            self.log("train_active_triplet_fraction", active_fraction(triplets, labels), on_step=False,
                     on_epoch=True, batch_size=batch_size)
        elif triplets is not None:  # (anchor, positive, anchor, negative) pairs from a pair miner
            self.log("train_active_pair_fraction", active_pair_fraction(triplets, labels), on_step=False,
                     on_epoch=True, batch_size=batch_size)
        return loss


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
