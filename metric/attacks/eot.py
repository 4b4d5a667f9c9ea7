"""Expectation over transformation for patches: random views of images, and scores and rates under seeded views."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.normalisation import PIXEL_RANGE
from metric.attacks.verifier import PairSet, Verifier

# Expectation over transformation: each view of the composite is shifted by up to EOT_SHIFT of the image side (a few
# pixels), rotated by up to EOT_ROTATION degrees, scaled by 1 +- EOT_SCALE and its brightness multiplied by
# 1 +- EOT_BRIGHTNESS, each drawn uniformly.
EOT_SHIFT, EOT_ROTATION, EOT_SCALE, EOT_BRIGHTNESS = 0.04, 5.0, 0.05, 0.10


def random_views(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image (N, C, H, W, float pixel values) under one random shift, rotation, scale and brightness
    (differentiable: affine_grid and grid_sample, borders repeated)."""
    n, _, height, width = images.shape

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * 2 - 1) * limit

    angle, scale = uniform(math.radians(EOT_ROTATION)), 1 + uniform(EOT_SCALE)
    shift_x, shift_y = uniform(EOT_SHIFT * width), uniform(EOT_SHIFT * height)
    brightness = 1 + uniform(EOT_BRIGHTNESS)
    # output pixel offset p -> input offset R(-angle) p / scale - shift, written in affine_grid's [-1, 1] units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    aspect = width / height
    theta = torch.stack(
        [
            torch.stack([cos, sin / aspect, -2 * shift_x / width], 1),
            torch.stack([-sin * aspect, cos, -2 * shift_y / height], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    views = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (views * brightness.view(n, 1, 1, 1)).clamp(*PIXEL_RANGE)


def eot_scores(verifier: Verifier, probes: torch.Tensor, targets: torch.Tensor, samples: int, seed: int) -> np.ndarray:
    """Scores (samples, N) of the probes under `samples` random views each, seeded: every evaluation with the same
    seed and probe count sees the same transformations (clean and patched probes alike)."""
    generator = torch.Generator().manual_seed(seed)
    return np.stack([verifier.scores(random_views(probes, generator), targets) for _ in range(samples)])


def view_success(pairs: PairSet, views: np.ndarray, clean_views: np.ndarray, threshold: float) -> float:
    """Success under random views: per view, the share of the pairs decided right on the clean probe under that view
    that the patched probe under the same view decides wrong; the mean over the views where any pair was decided
    right (0 when none was)."""
    rates = [
        pairs.success(v, threshold, clean=c) for v, c in zip(views, clean_views) if (~pairs.wrong(c, threshold)).any()
    ]
    return float(np.mean(rates)) if rates else 0.0


def view_error_rate(pairs: PairSet, views: np.ndarray, threshold: float) -> float:
    """The FAR (impostor pairs) or FRR (genuine pairs) under random views, averaged over views."""
    return float(np.mean([pairs.error_rate(v, threshold) for v in views])) if len(views) else 0.0
