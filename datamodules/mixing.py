"""`augment.mix=mixup|cutmix`: mixed pairs of identities for metric learning, made per training batch from the
model inputs (the data side; the loss side is metric.losses.mixing).

The formulation (interpolated targets, Metrix; Venkataramanan et al., ICLR 2022) is in metric.losses.mixing.

Here: with probability `prob` a batch of B images gets B//2 mixed samples: x_i from a random B//2 subset, each with
a random partner x_j of a different identity. mixup takes lam*x_i + (1-lam)*x_j; cutmix pastes a box of x_j, of
area (1-lam) of the image (clipped to it), into x_i, and lam becomes the share of x_i's pixels that remain. Every
draw uses torch's global random state, so a seeded run (Lightning's seed_everything) mixes the same way again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from metric.errors import ConfigError

MIX_KINDS = ("mixup", "cutmix")


@dataclass
class MixedBatch:
    """Mixed samples of one batch: `images[k]` mixes batch rows `first[k]` (share `lam`) and `second[k]`
    (share 1 - lam), whose identities differ."""

    images: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor
    lam: float


class BatchMix:
    """Makes the mixed samples of a training batch (model inputs, N x C x H x W), or None for a batch it leaves
    alone (not drawn, or a single identity)."""

    def __init__(self, kind: str, alpha: float = 1.0, prob: float = 0.5):
        if kind not in MIX_KINDS:
            raise ConfigError(f"augment.mix={kind!r} must be mixup or cutmix (or null: no mixing).")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ConfigError(
                f"augment.mix_alpha={alpha!r} must be > 0: the Beta(alpha, alpha) of the mixing ratio, "
                "e.g. 1.0 (uniform) or 0.4 (mostly one image)."
            )
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 < prob <= 1:
            raise ConfigError(
                f"augment.mix_prob={prob!r} must lie in (0, 1]: the share of training batches that "
                "get mixed samples, e.g. 0.5."
            )
        self.kind, self.alpha, self.prob = kind, float(alpha), float(prob)

    def __repr__(self) -> str:
        return f"BatchMix(kind={self.kind!r}, alpha={self.alpha}, prob={self.prob})"

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> MixedBatch | None:
        if float(torch.rand(())) >= self.prob:
            return None
        pairs = partners(labels)
        if pairs is None:
            return None
        return self.mix(images, *pairs, self.draw_lam())

    def draw_lam(self) -> float:
        """The mixing ratio of one batch, lam ~ Beta(alpha, alpha)."""
        alpha = torch.tensor(self.alpha)
        return float(torch.distributions.Beta(alpha, alpha).sample())

    def mix(self, images: torch.Tensor, first: torch.Tensor, second: torch.Tensor, lam: float) -> MixedBatch:
        """Rows `first` mixed with rows `second` at ratio lam (for cutmix, the lam of the pasted box's pixels)."""
        a, b = images[first], images[second]
        if self.kind == "mixup":
            mixed = lam * a + (1.0 - lam) * b
            mixed = torch.minimum(torch.maximum(mixed, torch.minimum(a, b)), torch.maximum(a, b))  # float rounding
            return MixedBatch(mixed, first, second, float(lam))
        height, width = images.shape[-2:]
        top, bottom, left, right = cutmix_box(height, width, lam)
        mixed = a.clone()
        mixed[..., top:bottom, left:right] = b[..., top:bottom, left:right]
        pasted = (bottom - top) * (right - left) / (height * width)
        return MixedBatch(mixed, first, second, 1.0 - pasted)


def partners(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(first, second): a random half of the batch rows and, for each, a random row of a different identity;
    None when the batch has fewer than two identities."""
    count = labels.numel() // 2
    if count == 0 or bool((labels == labels[0]).all()):
        return None
    first = torch.randperm(labels.numel(), device=labels.device)[:count]
    other = (labels[first][:, None] != labels[None, :]).float()  # (count, B): the allowed partners of each row
    second = torch.multinomial(other, 1).squeeze(1)
    return first, second


def cutmix_box(height: int, width: int, lam: float) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a box of area (1 - lam) x the image, with the image's side ratio, centred
    uniformly at random and clipped to the image."""
    ratio = math.sqrt(max(0.0, 1.0 - lam))
    box_h, box_w = round(height * ratio), round(width * ratio)
    cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
    top, bottom = max(cy - box_h // 2, 0), min(cy - box_h // 2 + box_h, height)
    left, right = max(cx - box_w // 2, 0), min(cx - box_w // 2 + box_w, width)
    return top, bottom, left, right
