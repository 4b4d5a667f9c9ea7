"""The loss side of `augment.mix=mixup|cutmix` (the mixed samples themselves come from datamodules.mixing).

Formulation: mixup with interpolated targets as in "It Takes Two to Tango: Mixup for Deep Metric Learning"
(Metrix; Venkataramanan et al., ICLR 2022). A pair (clean a, mixed m = mix(x_i, x_j, lam)) has target
lam*[y_a == y_i] + (1-lam)*[y_a == y_j], and the mixed term covers only the (mixed, clean) pairs, on top of the
plain loss of the clean batch:
- the siamese pair objective (BCE on the logistic-distance head's logits) takes that soft target directly;
- a pytorch-metric-learning loss (triplet margin, multi-similarity, contrastive) is computed with the mixed samples
  as anchors against the clean batch (its `ref_emb`), once with each mixed sample labelled y_i and once y_j, and
  interpolated: lam * L(m -> y_i) + (1-lam) * L(m -> y_j). For a loss that sums over pairs (contrastive) this is
  exactly Metrix's soft-target term; for triplet and multi-similarity, whose aggregation is not linear, it is the
  interpolation of the two losses. The miner mines the same (mixed, clean) pairs under the same labelling;
- an identity-classification loss (ArcFace, CosFace) takes lam * L(m, y_i) + (1-lam) * L(m, y_j), the mixup of
  Zhang et al. (2018).
One lam per mixed batch, lam ~ Beta(alpha, alpha). A term of weight 0 is skipped, so lam 0 or 1 is exactly the
plain loss of the mixed samples (then pure images) against the clean batch.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn

from datamodules.mixing import MixedBatch
from metric.errors import ConfigError
from metric.losses.class_losses import IdentityClassLoss

SOFT_TARGET_LOSSES = (nn.BCEWithLogitsLoss,)  # the pair module gives logits, so BCELoss (probabilities) is out


def mixed_term(
    module: pl.LightningModule,
    images: torch.Tensor,
    labels: torch.Tensor,
    loss_of: Callable[[torch.Tensor, MixedBatch], torch.Tensor],
) -> torch.Tensor | float:
    """A training step's mixed-sample term: 0 when `module.mix` leaves the batch alone, else `loss_of(the mixed
    samples' embeddings by module.net, the mixed batch)`, logged as train_mix_loss. The mixed samples index this
    rank's rows (`images`, `labels`)."""
    mixed = module.mix(images, labels) if module.mix is not None else None
    if mixed is None:
        return 0.0
    loss = loss_of(module.net(mixed.images), mixed)
    module.log("train_mix_loss", loss, on_step=False, on_epoch=True, batch_size=len(mixed.images), sync_dist=True)
    return loss


def interpolated_metric_loss(
    loss_fn: nn.Module,
    miner: nn.Module | None,
    clean: torch.Tensor,
    labels: torch.Tensor,
    mixed: torch.Tensor,
    mix: MixedBatch,
) -> torch.Tensor:
    """lam * L(mixed labelled y_first) + (1 - lam) * L(mixed labelled y_second): the mixed embeddings as anchors
    against the clean ones (`ref_emb`; a classification loss takes the mixed embeddings alone)."""
    total = None
    for weight, rows in ((mix.lam, mix.first), (1.0 - mix.lam, mix.second)):
        if weight == 0:
            continue
        mixed_labels = labels[rows]
        if isinstance(loss_fn, IdentityClassLoss):
            loss = loss_fn(mixed, mixed_labels)
        else:
            tuples = miner(mixed, mixed_labels, clean, labels) if miner is not None else None
            loss = loss_fn(mixed, mixed_labels, tuples, clean, labels)
        total = weight * loss if total is None else total + weight * loss
    return total


def soft_pair_targets(labels_clean: torch.Tensor, mix: MixedBatch) -> torch.Tensor:
    """(clean rows, mixed samples): lam * [y_a == y_first] + (1 - lam) * [y_a == y_second], the share of each mixed
    sample that is the clean image's identity. `labels_clean` are the labels of the batch the mixing indexed."""
    same_first = (labels_clean[:, None] == labels_clean[mix.first][None, :]).float()
    same_second = (labels_clean[:, None] == labels_clean[mix.second][None, :]).float()
    return mix.lam * same_first + (1.0 - mix.lam) * same_second


def soft_pair_loss(
    head: nn.Module, loss_fn: nn.Module, clean: torch.Tensor, labels: torch.Tensor, mixed: torch.Tensor, mix: MixedBatch
) -> torch.Tensor:
    """The pair objective over every (clean, mixed) pair: loss_fn(head logits, soft targets)."""
    targets = soft_pair_targets(labels, mix).to(clean.dtype)
    rows, cols = targets.shape
    logits = head.logits(clean[:, None, :].expand(rows, cols, -1), mixed[None, :, :].expand(rows, cols, -1))
    return loss_fn(logits, targets)


def check_soft_targets(loss: nn.Module) -> None:
    """module=pair with mixing needs a loss defined for targets between 0 and 1."""
    if not isinstance(loss, SOFT_TARGET_LOSSES):
        name = f"{type(loss).__module__}.{type(loss).__qualname__}"
        raise ConfigError(
            "augment.mix with module=pair needs a loss that takes soft (interpolated) targets: loss=bce "
            f"(torch.nn.BCEWithLogitsLoss); {name} takes 0/1 labels only."
        )
