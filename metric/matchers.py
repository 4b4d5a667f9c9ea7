"""Matchers: how two embeddings become a score (higher = more alike), for pairs of rows or whole blocks."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from metric.errors import ConfigError
from metric.heads import LogisticDistanceHead


class Matcher:
    """score(a, b): paired rows (N, D) x (N, D) -> (N,); score_matrix(A, B): (N, D) x (M, D) -> (N, M)."""

    name = "matcher"

    def score(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score_matrix(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def numpy_block(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """score_matrix on numpy arrays: the `score_block` that metric.verification.pair_scores takes."""
        return self.score_matrix(torch.from_numpy(a), torch.from_numpy(b)).numpy()


class CosineMatcher(Matcher):
    name = "cosine"

    def score(self, a, b):
        return (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1)

    def score_matrix(self, a, b):
        return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


class EuclideanMatcher(Matcher):
    """1 - d/2, with d the L2 distance between the normalised embeddings (d in [0, 2], score in [0, 1])."""

    name = "euclidean"

    def score(self, a, b):
        return 1.0 - (F.normalize(a, dim=-1) - F.normalize(b, dim=-1)).norm(dim=-1) / 2

    def score_matrix(self, a, b):
        return 1.0 - torch.cdist(F.normalize(a, dim=-1), F.normalize(b, dim=-1)) / 2


class MSEMatcher(Matcher):
    """Minus the mean squared difference of the embeddings as given."""

    name = "mse"

    def score(self, a, b):
        return -(a - b).square().mean(-1)

    def score_matrix(self, a, b):
        return -torch.cdist(a, b).square() / a.shape[-1]


class LogisticMatcher(Matcher):
    """The trained logistic-distance head; its score is the probability that both images show one identity."""

    name = "logistic"
    block_elements = 1 << 24  # (rows x columns x dim) floats per chunk of score_matrix: 64 MiB

    def __init__(self, head: LogisticDistanceHead):
        self.head = head

    def score(self, a, b):
        return self.head(a, b)

    def score_matrix(self, a, b):
        rows = max(1, self.block_elements // max(1, b.shape[0] * b.shape[1]))
        return torch.cat([self.head(a[i : i + rows, None, :], b[None, :, :]) for i in range(0, a.shape[0], rows)])


MATCHERS = {m.name: m for m in (CosineMatcher, EuclideanMatcher, MSEMatcher, LogisticMatcher)}


def make_matcher(name: str, head: LogisticDistanceHead | None = None) -> Matcher:
    """The matcher called `name`; `logistic` needs the model's trained head."""
    if name not in MATCHERS:
        raise ConfigError(f"matcher={name!r} is not one of {', '.join(MATCHERS)}.")
    if name == "logistic":
        if head is None:
            raise ConfigError(
                "matcher=logistic needs a model trained with a logistic-distance head (+experiment=siamese); "
                "this one has none. Use matcher=cosine, matcher=euclidean or matcher=mse."
            )
        return LogisticMatcher(head)
    return MATCHERS[name]()
