"""An adapted embedder (`+experiment=adapt`): a frozen outside embedder followed by a small trained projection.

The projection starts as the identity (linear: an identity matrix; mlp: a residual branch whose last layer is zero),
so training starts from the frozen embedder's own embeddings. Its stored `bypass` flag switches it off: the net is
then the frozen embedder itself (what an adapt run keeps when the head does not beat it on validation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from metric.errors import ConfigError
from metric.model.embedders import NOT_DIFFERENTIABLE, ExternalEmbedder, embedder_from_spec


class Projection(nn.Module):
    """features (N, in_dim) -> L2-normalised embeddings (N, out_dim): `linear`, or `mlp` (x + W2 relu(W1 x), or
    without the residual when the sizes differ). With `bypass` set, the normalised features pass through unchanged."""

    KINDS = ("linear", "mlp")

    def __init__(
        self, in_dim: int, out_dim: int | None = None, kind: str = "linear", hidden: int = 512, dropout: float = 0.0
    ):
        super().__init__()
        out_dim = out_dim or in_dim
        if kind not in self.KINDS:
            raise ConfigError(f"adapt.head={kind!r} is not one of {', '.join(self.KINDS)}.")
        if not isinstance(out_dim, int) or out_dim < 2 or not isinstance(hidden, int) or hidden < 1:
            raise ConfigError(f"adapt.embedding_dim={out_dim!r} and adapt.hidden={hidden!r} must be positive integers.")
        self.kind, self.in_dim, self.out_dim, self.hidden = kind, in_dim, out_dim, hidden
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("bypass", torch.tensor(False))
        if kind == "linear":
            self.layers = nn.Linear(in_dim, out_dim)
            if in_dim == out_dim:
                with torch.no_grad():
                    self.layers.weight.copy_(torch.eye(in_dim))
                    self.layers.bias.zero_()
        else:
            self.layers = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
            if in_dim == out_dim:
                nn.init.zeros_(self.layers[-1].weight)
                nn.init.zeros_(self.layers[-1].bias)

    @property
    def residual(self) -> bool:
        return self.kind == "mlp" and self.in_dim == self.out_dim

    @property
    def embedding_dim(self) -> int:
        return self.in_dim if bool(self.bypass) else self.out_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if bool(self.bypass):
            return F.normalize(features, dim=1)
        out = self.layers(self.dropout(features))
        return F.normalize(features + out if self.residual else out, dim=1)

    def spec(self) -> dict:
        return {"in_dim": self.in_dim, "out_dim": self.out_dim, "kind": self.kind, "hidden": self.hidden}


class AdaptedNet(nn.Module):
    """images -> the frozen embedder -> the projection. Only the projection's weights are stored (`net.projection.*`);
    the embedder is rebuilt from its spec and its model file checked by sha256."""

    kind = "adapted"

    def __init__(self, embedder: ExternalEmbedder, projection: Projection):
        super().__init__()
        if projection.in_dim != embedder.embedding_dim:
            raise ConfigError(
                f"the projection reads {projection.in_dim}-d features but model={embedder.kind} gives "
                f"{embedder.embedding_dim}-d ones."
            )
        self.embedder = [embedder]  # a list: not a submodule (it holds no torch weights)
        self.projection = projection

    @property
    def differentiable(self) -> bool:
        return getattr(self.embedder[0], "differentiable", True)

    @property
    def embedding_dim(self) -> int:
        return self.projection.embedding_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.embedder[0](images)
        return self.projection(features.to(self.projection.bypass.device))

    def spec(self) -> dict:
        return {"kind": self.kind, "embedder": self.embedder[0].spec(), "projection": self.projection.spec()}

    @classmethod
    def from_spec(cls, spec: dict) -> AdaptedNet:
        return cls(embedder_from_spec(spec["embedder"]), Projection(**spec["projection"]))


def outside_embedder(net) -> ExternalEmbedder | None:
    """The outside embedder a net is, or that an adapted net starts with; None for a trained timm net."""
    outside = net.embedder[0] if isinstance(net, AdaptedNet) else net
    return outside if isinstance(outside, ExternalEmbedder) else None


def require_gradients(net, what: str) -> None:
    """One clear error when `what` (an attack, an export, training) needs a torch net with gradients: an outside
    embedder, or a net that starts with one, cannot give them."""
    outside = outside_embedder(net)
    if outside is not None:
        raise ConfigError(NOT_DIFFERENTIABLE.format(kind=outside.kind, what=what))
