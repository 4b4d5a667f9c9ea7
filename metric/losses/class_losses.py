"""Identity-classification losses (ArcFace, SubCenterArcFace, CosFace) over the training identities, as embedding
losses."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses
from torch import nn

from metric.errors import ConfigError

INITS = ("random", "imprint")
KINDS = {
    "arcface": losses.ArcFaceLoss,
    "subcenter_arcface": losses.SubCenterArcFaceLoss,
    "cosface": losses.CosFaceLoss,
}


def needs_identity_labels(cfg) -> bool:
    """Whether the configured loss's class takes the training identities' labels (its `needs_identity_labels`; a
    pytorch-metric-learning loss does not)."""
    from metric.config_factory import locate_class

    loss = cfg.get("loss")
    return loss is not None and getattr(locate_class(loss, "loss"), "needs_identity_labels", False)


class IdentityClassLoss(nn.Module):
    """A margin softmax over the training identities, one learned class centre (or `sub_centers`) per identity.

    Identity labels in a split are arbitrary integers, so they are mapped to 0..C-1 here; the class weights are
    parameters of this module, so the optimizer trains them with the net. metric.train passes `train_labels`
    and `embedding_size` (it says so with `needs_identity_labels`, and refuses a miner); the rest comes from
    config (pytorch-metric-learning's margin is in degrees for
    ArcFace and a cosine offset for CosFace)."""

    needs_identity_labels = True  # metric.train passes train_labels and embedding_size; modules read it

    @classmethod
    def check_config(cls, cfg) -> None:
        """A classification loss uses no miner."""
        if cfg.get("miner") is not None:
            raise ConfigError(
                f"loss.kind={cfg.loss.kind} is a classification loss and uses no miner: remove it with ~miner on the "
                "command line (or `- override /miner: null` in an experiment)."
            )

    def __init__(
        self,
        kind: str,
        train_labels: np.ndarray | torch.Tensor,
        embedding_size: int,
        margin: float | None = None,
        scale: float = 64.0,
        sub_centers: int = 3,
        init: str = "random",
    ):
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"loss.kind={kind!r} is not one of {', '.join(KINDS)}.")
        if init not in INITS:
            raise ConfigError(
                f"loss.init={init!r} is not one of {', '.join(INITS)} (imprint: each identity's centre "
                "starts at its mean embedding, for fine-tuning a pretrained net)."
            )
        self.init = init
        identities = torch.as_tensor(np.unique(np.asarray(train_labels)), dtype=torch.long)
        if identities.numel() < 2:
            raise ConfigError(
                f"loss.kind={kind}: classification needs at least 2 training identities, "
                f"the train split has {identities.numel()}."
            )
        if kind == "cosface" and margin is not None and not 0 <= margin < 1:
            raise ConfigError(
                f"loss.margin={margin} for cosface: it is a cosine offset in [0, 1), e.g. 0.35 "
                "(ArcFace's margin is in degrees), or null for the default."
            )
        self.register_buffer("identities", identities, persistent=False)  # sorted: class i is identities[i]
        options = {"scale": scale} | ({"margin": margin} if margin is not None else {})
        if kind == "subcenter_arcface":
            options["sub_centers"] = sub_centers
        self.kind = kind
        self.num_classes = identities.numel()
        self.loss = KINDS[kind](num_classes=self.num_classes, embedding_size=embedding_size, **options)

    @torch.no_grad()
    def imprint(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Weight imprinting (Qi et al., CVPR 2018): each identity's centre (every sub-centre) set to the direction of
        its mean embedding, so a pretrained net's fine-tuning starts from its own geometry, not from random centres
        whose first gradients would scramble it."""
        classes = torch.searchsorted(self.identities, labels.to(self.identities.device))
        means = torch.zeros(self.num_classes, embeddings.shape[1], dtype=embeddings.dtype)
        means.index_add_(0, classes.cpu(), F.normalize(embeddings, dim=1).cpu())
        per_class = self.loss.W.shape[1] // self.num_classes
        self.loss.W.copy_(F.normalize(means, dim=1).repeat_interleave(per_class, dim=0).T.to(self.loss.W))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple=None) -> torch.Tensor:
        """The classification loss of the batch; `indices_tuple` (a miner's output) is not used."""
        classes = torch.searchsorted(self.identities, labels).clamp(max=self.num_classes - 1)
        known = self.identities[classes] == labels
        if not known.all():
            unknown = sorted(set(labels[~known].tolist()))[:5]
            raise ValueError(
                f"identities {unknown} are not among the {self.num_classes} training identities "
                "this classification loss was built for."
            )
        return self.loss(embeddings, classes)
