"""`module=pair` (the siamese experiment): a logistic-distance head trained with binary cross-entropy on genuine and
impostor pairs of each P x K batch; with `augment.mix`, also on (clean, mixed) pairs with soft targets
(metric.losses.mixing)."""

from __future__ import annotations

import torch
from torch import nn

from datamodules.mixing import BatchMix
from metric.errors import ConfigError
from metric.losses.mixing import check_soft_targets, mixed_term, soft_pair_loss
from metric.model.heads import LogisticDistanceHead
from metric.modules.embedding import EmbeddingModule
from metric.scoring.pairs import label_pairs
from metric.training.distributed import gather_batch

IMPOSTOR_STRATEGIES = ("random", "hard")
ADVERSARIAL_NEEDS_METRIC_LOSS = (
    "adversarial=fgsm|pgd|patch perturbs the batches of an embedding loss: use it with "
    "module=metric_loss (e.g. +experiment=triplet_adversarial), or remove it with "
    "~adversarial."
)
PAIR_TAKES_NO_MINER = "module=pair picks its own impostor pairs (module.impostors): remove the miner with ~miner."


class PairModule(EmbeddingModule):
    """Each P x K batch gives all of its genuine pairs and as many impostor pairs (random or hardest). With `mix`, a
    batch it mixes adds the loss over every (clean, mixed) pair of this rank, each with its interpolated target."""

    default_matcher = "logistic"
    has_head = True
    refuses = {
        "identity_loss": "loss.kind={kind} learns from embeddings and identity labels: use it with module=metric_loss "
        "(or distill), not the pair objective of module=pair.",
        "adversarial": ADVERSARIAL_NEEDS_METRIC_LOSS,
        "miner": PAIR_TAKES_NO_MINER,
    }

    def __init__(
        self,
        net,
        head: LogisticDistanceHead,
        loss: nn.Module,
        impostors: str = "random",
        miner: nn.Module | None = None,
        adversarial=None,
        mix: BatchMix | None = None,
        **kwargs,
    ):
        super().__init__(net, **kwargs)
        if adversarial:
            raise ConfigError(ADVERSARIAL_NEEDS_METRIC_LOSS)
        if impostors not in IMPOSTOR_STRATEGIES:
            raise ConfigError(f"module.impostors={impostors!r} is not one of {', '.join(IMPOSTOR_STRATEGIES)}.")
        if miner is not None:
            raise ConfigError(PAIR_TAKES_NO_MINER)
        if head.embedding_dim != net.embedding_dim:
            raise ConfigError(
                f"module.head.embedding_dim={head.embedding_dim} differs from model.embedding_dim={net.embedding_dim}."
            )
        if mix is not None:
            check_soft_targets(loss)
        self.head = head
        self.loss_fn = loss
        self.impostors = impostors
        self.mix = mix

    def select_pairs(
        self, embeddings: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(first, second, target) indices: every genuine pair, plus as many impostor pairs."""
        first, second, same = label_pairs(labels)
        gen_a, gen_b = first[same], second[same]
        imp_a, imp_b = first[~same], second[~same]
        count = min(gen_a.numel(), imp_a.numel())
        if self.impostors == "hard":
            with torch.no_grad():
                chosen = self.head.logits(embeddings[imp_a], embeddings[imp_b]).topk(count).indices
        else:
            chosen = torch.randperm(imp_a.numel(), device=labels.device)[:count]
        a = torch.cat([gen_a, imp_a[chosen]])
        b = torch.cat([gen_b, imp_b[chosen]])
        target = torch.cat([torch.ones(gen_a.numel()), torch.zeros(count)]).to(embeddings)
        return a, b, target

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, local_labels = batch
        local = self.net(images)
        embeddings, labels = gather_batch(self, local, local_labels)  # the global batch under DDP
        a, b, target = self.select_pairs(embeddings, labels)
        logits = self.head.logits(embeddings[a], embeddings[b])
        loss = self.loss_fn(logits, target)
        mix_loss = mixed_term(
            self,
            images,
            local_labels,
            lambda mixed, mix: soft_pair_loss(self.head, self.loss_fn, local, local_labels, mixed, mix),
        )
        accuracy = ((logits > 0).float() == target).float().mean()
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=labels.numel())
        self.log("train_pair_accuracy", accuracy, on_step=False, on_epoch=True, batch_size=labels.numel())
        # active pairs: those the head still puts on the wrong side of p = 0.5 (they drive the BCE gradient most)
        self.log("train_active_pair_fraction", 1.0 - accuracy, on_step=False, on_epoch=True, batch_size=labels.numel())
        return loss + mix_loss
