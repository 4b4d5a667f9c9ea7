"""A toy loss added from outside the package: contrastive loss on cosine similarity (a new file plus
conf/loss/toy.yaml)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ToyContrastiveLoss(nn.Module):
    """Pulls same-identity embeddings together (1 - cosine) and pushes others below `margin` cosine."""

    def __init__(self, margin: float = 0.3):
        super().__init__()
        self.margin = margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple=None) -> torch.Tensor:
        similarity = F.normalize(embeddings, dim=1) @ F.normalize(embeddings, dim=1).T
        same = labels[:, None] == labels[None, :]
        off_diagonal = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        pull = (1 - similarity)[same & off_diagonal]
        push = F.relu(similarity - self.margin)[~same]
        return pull.mean() + push.mean()
