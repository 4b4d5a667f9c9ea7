"""Printability penalties for physical patches: distance to a fixed printable palette and total variation."""

from __future__ import annotations

import numpy as np
import torch

from datamodules.normalisation import PIXEL_RANGE

# The printable palette (an assumption, not a measured printer profile): a 5-level grid per channel over [0.1, 0.9]
# of the range, i.e. 125 RGB colours (5 greys for grey images), kept away from pure black, white and saturated
# primaries that office printers do not reproduce.
PALETTE_LEVELS = np.linspace(0.1, 0.9, 5)


def palette(channels: int) -> torch.Tensor:
    """The printable colours (K, channels), in [0, 1] of the pixel range."""
    grids = np.meshgrid(*[PALETTE_LEVELS] * channels, indexing="ij")
    return torch.from_numpy(np.stack([g.ravel() for g in grids], 1)).float()


def non_printability(patterns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per pattern (N, C, H, W): the mean, over mask pixels, of each pixel colour's distance to the nearest printable
    colour (fractions of the range; 0 when every colour is printable or the mask is empty)."""
    colours = palette(patterns.shape[1])
    pixels = (patterns / PIXEL_RANGE[1]).permute(0, 2, 3, 1)  # (N, H, W, C)
    nearest = torch.cdist(pixels.reshape(len(patterns), -1, patterns.shape[1]), colours[None]).min(-1).values
    weights = mask.reshape(1, -1)
    return (nearest * weights).sum(1) / weights.sum().clamp(min=1)


def total_variation(patterns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per pattern (N, C, H, W): the mean absolute step between neighbouring pixels that are both in the mask
    (fractions of the range, averaged over channels)."""
    values = patterns / PIXEL_RANGE[1]
    m = mask.reshape(1, 1, *mask.shape[-2:])
    across = (values[..., :, 1:] - values[..., :, :-1]).abs() * (m[..., :, 1:] * m[..., :, :-1])
    down = (values[..., 1:, :] - values[..., :-1, :]).abs() * (m[..., 1:, :] * m[..., :-1, :])
    count = (m[..., :, 1:] * m[..., :, :-1]).sum() + (m[..., 1:, :] * m[..., :-1, :]).sum()
    return (across.sum((1, 2, 3)) + down.sum((1, 2, 3))) / (patterns.shape[1] * count.clamp(min=1))
