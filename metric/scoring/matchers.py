"""Matchers: how two embeddings become a score (higher = more alike), for pairs of rows or whole blocks.

Each `matcher=<name>` config instantiates one of these classes; its `target_far` is the FAR its threshold is
calibrated at. Checkpoints record a matcher by `name`, which `make_matcher` turns back into the class.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from metric.config_factory import build_from_config, locate_class
from metric.errors import ConfigError
from metric.metrics.calibration import check_target_far
from metric.model.heads import LogisticDistanceHead
from metric.registry import Registry

NEEDS_HEAD = (
    "matcher=logistic needs a model trained with a logistic-distance head (+experiment=siamese); this one "
    "has none. Use matcher=cosine, matcher=euclidean or matcher=mse."
)


MATCHERS: Registry[type] = Registry("matcher", key="name")  # the names checkpoints and galleries store


class Matcher:
    """score(a, b): paired rows (N, D) x (N, D) -> (N,); score_matrix(A, B): (N, D) x (M, D) -> (N, M)."""

    name = "matcher"
    needs_head = False  # read by the config checks: a matcher that scores with a trained head

    @classmethod
    def check_config(cls, cfg) -> None:
        """A matcher that scores with a trained head needs a module that trains one; the FAR lies in (0, 1)."""
        if cls.needs_head and not getattr(locate_class(cfg.module, "module"), "has_head", False):
            raise ConfigError(NEEDS_HEAD)
        check_target_far(cfg.matcher.target_far)

    def __init__(self, target_far: float = 0.001):
        self.target_far = check_target_far(target_far)

    def score(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score_matrix(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score_range(self, dim: int) -> tuple[float, float]:
        """The interval every score of unit embeddings of this size falls in (the score grid's bins span it)."""
        raise NotImplementedError

    @torch.no_grad()
    def numpy_block(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """score_matrix on numpy arrays: the `score_block` that metric.scoring.pairs.pair_scores takes."""
        return self.score_matrix(torch.from_numpy(a), torch.from_numpy(b)).numpy()


@MATCHERS.register
class CosineMatcher(Matcher):
    name = "cosine"

    def score(self, a, b):
        return (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1)

    def score_matrix(self, a, b):
        return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T

    def score_range(self, dim):
        return -1.0, 1.0


@MATCHERS.register
class EuclideanMatcher(Matcher):
    """1 - d/2, with d the L2 distance between the normalised embeddings (d in [0, 2], score in [0, 1])."""

    name = "euclidean"

    def score(self, a, b):
        return 1.0 - (F.normalize(a, dim=-1) - F.normalize(b, dim=-1)).norm(dim=-1) / 2

    def score_matrix(self, a, b):
        return 1.0 - torch.cdist(F.normalize(a, dim=-1), F.normalize(b, dim=-1)) / 2

    def score_range(self, dim):
        return 0.0, 1.0


@MATCHERS.register
class MSEMatcher(Matcher):
    """Minus the mean squared difference of the embeddings as given."""

    name = "mse"

    def score(self, a, b):
        return -(a - b).square().mean(-1)

    def score_matrix(self, a, b):
        return -torch.cdist(a, b).square() / a.shape[-1]

    def score_range(self, dim):
        return -4.0 / dim, 0.0  # unit vectors: mean squared difference <= 4 / dim


@MATCHERS.register
class LogisticMatcher(Matcher):
    """The trained logistic-distance head; its score is the probability that both images show one identity."""

    name = "logistic"
    needs_head = True
    block_elements = 1 << 24  # (rows x columns x dim) floats per chunk of score_matrix: 64 MiB

    def __init__(self, head: LogisticDistanceHead | None = None, target_far: float = 0.001):
        super().__init__(target_far)
        if head is None:
            raise ConfigError(NEEDS_HEAD)
        self.head = head

    def score(self, a, b):
        return self.head(a, b)

    def score_matrix(self, a, b):
        rows = max(1, self.block_elements // max(1, b.shape[0] * b.shape[1]))
        return torch.cat([self.head(a[i : i + rows, None, :], b[None, :, :]) for i in range(0, a.shape[0], rows)])

    def score_range(self, dim):
        return 0.0, 1.0


def make_matcher(name: str, head: LogisticDistanceHead | None = None, target_far: float = 0.001) -> Matcher:
    """The matcher a checkpoint records by `name`; `logistic` needs the model's trained head."""
    if name not in MATCHERS:
        raise ConfigError(f"matcher={name!r} is not one of {', '.join(MATCHERS)}.")
    cls = MATCHERS[name]
    return cls(head, target_far) if cls.needs_head else cls(target_far)


def build_matcher(node, head: LogisticDistanceHead | None = None) -> Matcher:
    """The matcher a `matcher=<name>` config node instantiates, given the model's head (used where it needs one)."""
    cls = locate_class(node, "matcher")
    if not issubclass(cls, Matcher):
        raise ConfigError(f"matcher._target_={node['_target_']!r} is not a Matcher.")
    return build_from_config(node, **({"head": head} if cls.needs_head else {}))
