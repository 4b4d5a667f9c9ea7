"""Logistic-distance head: p(same | i, j) = sigmoid(sum_k w_k * d_k(f_i, f_j) + b), the classical Siamese verifier."""

from __future__ import annotations

import torch
from torch import nn

from metric.errors import ConfigError

DISTANCES = ("abs", "chi2")


class LogisticDistanceHead(nn.Module):
    """A logistic regression unit over the element-wise distance between two embeddings.

    distance="abs":  d_k = |f_i,k - f_j,k|
    distance="chi2": d_k = (f_i,k - f_j,k)^2 / (|f_i,k| + |f_j,k| + eps). For non-negative features the
    denominator is the classical f_i,k + f_j,k; with absolute values it stays positive for signed
    embeddings, and d_k <= |f_i,k| + |f_j,k|, so it is finite everywhere and 0 at f_i = f_j = 0.
    """

    def __init__(self, embedding_dim: int, distance: str = "abs", eps: float = 1e-6):
        super().__init__()
        if distance not in DISTANCES:
            raise ConfigError(f"module.head.distance={distance!r} is not one of {', '.join(DISTANCES)}.")
        self.embedding_dim = embedding_dim
        self.distance_name = distance
        self.eps = eps
        self.weight = nn.Parameter(torch.full((embedding_dim,), -1.0))  # larger distance -> less alike
        self.bias = nn.Parameter(torch.tensor(1.0))

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        diff = a - b
        if self.distance_name == "abs":
            return diff.abs()
        return diff.square() / (a.abs() + b.abs() + self.eps)

    def logits(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores of paired rows (..., D) x (..., D) -> (...)."""
        return self.distance(a, b) @ self.weight + self.bias

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(a, b))

    def spec(self) -> dict:
        return {"embedding_dim": self.embedding_dim, "distance": self.distance_name, "eps": self.eps}
