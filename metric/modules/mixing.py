"""The loss side of `augment.mix=mixup|cutmix` (the mixed samples themselves come from datamodules.mixing).

Formulation: mixup with interpolated targets as in "It Takes Two to Tango: Mixup for Deep Metric Learning"
(Metrix; Venkataramanan et al., ICLR 2022). A pair (clean anchor a, mixed sample m = mix(x_i, x_j, lam)) has target
lam*[y_a == y_i] + (1-lam)*[y_a == y_j]. For the siamese pair objective (BCE on the logistic-distance head's logits)
that soft target is used directly. For pytorch-metric-learning losses (triplet margin, multi-similarity,
contrastive, also ArcFace-style classification losses), whose aggregation over pairs is not linear, the loss is
computed under each of the two labellings of the mixed samples and interpolated:
lam * L(E, labels with mixed->y_i) + (1-lam) * L(E, labels with mixed->y_j), where E = clean embeddings followed by
mixed embeddings (the label-interpolation form of mixup, Zhang et al. 2018; it equals Metrix's form for losses linear
in pairs, e.g. contrastive). The miner, when there is one, mines under the same labelling as the loss term. One lam
per mixed batch, lam ~ Beta(alpha, alpha).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from datamodules.mixing import MixedBatch
from metric.errors import ConfigError

BatchLoss = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, object]]  # (embeddings, labels) -> (loss, tuples)
SOFT_TARGET_LOSSES = (nn.BCEWithLogitsLoss,)  # the pair module gives logits, so BCELoss (probabilities) is out


def interpolated_metric_loss(batch_loss: BatchLoss, clean: torch.Tensor, labels: torch.Tensor, mixed: torch.Tensor,
                             mix: MixedBatch) -> torch.Tensor:
    """lam * L(clean + mixed, mixed labelled y_first) + (1 - lam) * L(clean + mixed, mixed labelled y_second), with
    `batch_loss` (miner and loss) on the clean embeddings followed by the mixed ones; a term of weight 0 is skipped,
    so lam 0 or 1 is exactly the plain loss on the appended batch."""
    embeddings = torch.cat([clean, mixed])
    total = None
    for weight, rows in ((mix.lam, mix.first), (1.0 - mix.lam, mix.second)):
        if weight == 0:
            continue
        loss, _ = batch_loss(embeddings, torch.cat([labels, labels[rows]]))
        total = weight * loss if total is None else total + weight * loss
    return total


def soft_pair_targets(labels_clean: torch.Tensor, mix: MixedBatch) -> torch.Tensor:
    """(clean rows, mixed samples): lam * [y_a == y_first] + (1 - lam) * [y_a == y_second], the share of each mixed
    sample that is the clean image's identity. `labels_clean` are the labels of the batch the mixing indexed."""
    same_first = (labels_clean[:, None] == labels_clean[mix.first][None, :]).float()
    same_second = (labels_clean[:, None] == labels_clean[mix.second][None, :]).float()
    return mix.lam * same_first + (1.0 - mix.lam) * same_second


def soft_pair_loss(head: nn.Module, loss_fn: nn.Module, clean: torch.Tensor, labels: torch.Tensor,
                   mixed: torch.Tensor, mix: MixedBatch) -> torch.Tensor:
    """The pair objective over every (clean, mixed) pair: loss_fn(head logits, soft targets)."""
    targets = soft_pair_targets(labels, mix).to(clean.dtype)
    rows, cols = targets.shape
    logits = head.logits(clean[:, None, :].expand(rows, cols, -1), mixed[None, :, :].expand(rows, cols, -1))
    return loss_fn(logits, targets)


def check_soft_targets(loss: nn.Module) -> None:
    """module=pair with mixing needs a loss defined for targets between 0 and 1."""
    if not isinstance(loss, SOFT_TARGET_LOSSES):
        name = f"{type(loss).__module__}.{type(loss).__qualname__}"
        raise ConfigError("augment.mix with module=pair needs a loss that takes soft (interpolated) targets: loss=bce "
                          f"(torch.nn.BCEWithLogitsLoss); {name} takes 0/1 labels only.")
