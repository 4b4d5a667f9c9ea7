"""Identity-classification losses (ArcFace, SubCenterArcFace, CosFace) over the training identities, as embedding losses."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_metric_learning import losses
from torch import nn

from metric.errors import ConfigError

KINDS = {
    "arcface": losses.ArcFaceLoss,
    "subcenter_arcface": losses.SubCenterArcFaceLoss,
    "cosface": losses.CosFaceLoss,
}


class IdentityClassLoss(nn.Module):
    """A margin softmax over the training identities, one learned class centre (or `sub_centers`) per identity.

    Identity labels in a split are arbitrary integers, so they are mapped to 0..C-1 here; the class weights are
    parameters of this module, so the optimizer trains them with the net. metric.train passes `train_labels`
    and `embedding_size` (the config checks recognise this class and refuse a miner with it); the rest comes from config (pytorch-metric-learning's margin is in degrees for
    ArcFace and a cosine offset for CosFace)."""

    def __init__(self, kind: str, train_labels: np.ndarray | torch.Tensor, embedding_size: int,
                 margin: float | None = None, scale: float = 64.0, sub_centers: int = 3):
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"loss.kind={kind!r} is not one of {', '.join(KINDS)}.")
        identities = torch.as_tensor(np.unique(np.asarray(train_labels)), dtype=torch.long)
        if identities.numel() < 2:
            raise ConfigError(f"loss.kind={kind}: classification needs at least 2 training identities, "
                              f"the train split has {identities.numel()}.")
        if kind == "cosface" and margin is not None and not 0 <= margin < 1:
            raise ConfigError(f"loss.margin={margin} for cosface: it is a cosine offset in [0, 1), e.g. 0.35 "
                              "(ArcFace's margin is in degrees), or null for the default.")
        self.register_buffer("identities", identities, persistent=False)  # sorted: class i is identities[i]
        options = {"scale": scale} | ({"margin": margin} if margin is not None else {})
        if kind == "subcenter_arcface":
            options["sub_centers"] = sub_centers
        self.kind = kind
        self.num_classes = identities.numel()
        self.loss = KINDS[kind](num_classes=self.num_classes, embedding_size=embedding_size, **options)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple=None) -> torch.Tensor:
        """The classification loss of the batch; `indices_tuple` (a miner's output) is not used."""
        classes = torch.searchsorted(self.identities, labels).clamp(max=self.num_classes - 1)
        known = self.identities[classes] == labels
        if not known.all():
            unknown = sorted(set(labels[~known].tolist()))[:5]
            raise ValueError(f"identities {unknown} are not among the {self.num_classes} training identities "
                             "this classification loss was built for.")
        return self.loss(embeddings, classes)
