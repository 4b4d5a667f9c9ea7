"""The one pixel normalisation between images and every model: pixel value / 127.5 - 1 (RGB or grey).

Datamodules, the embedding loop, attacks, adversarial training and export all call these functions, and
every checkpoint records NORMALISATION as `preprocess.normalisation`; a reader refuses any other value.
"""

from __future__ import annotations

import numpy as np
import torch

NORMALISATION = "uint8 pixels / 127.5 - 1, channels in RGB order (or one grey channel)"
PIXEL_RANGE = (0.0, 255.0)  # pixel values, as attacks and budgets count them
INPUT_RANGE = (-1.0, 1.0)  # the same range in model-input units: normalise(0), normalise(255)


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """Float pixel values in [0, 255], (N, C, H, W) -> the model's input in [-1, 1] (keeps the memory layout)."""
    return pixels / 127.5 - 1.0


def to_model_input(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W, C) -> the model's float input (N, C, H, W)."""
    return normalise(to_pixels(images))


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W, C) -> float pixel values (N, C, H, W), the space attacks perturb in (a read-only
    array, such as a decoded photo's, is copied first: torch warns on one)."""
    return torch.from_numpy(np.require(images, requirements=["C_CONTIGUOUS", "WRITEABLE"])).permute(0, 3, 1, 2).float()


def to_uint8_images(inputs: torch.Tensor) -> np.ndarray:
    """The model's input (N, C, H, W) -> the uint8 images (N, H, W, C) it was made from (exact: the inverse of
    to_model_input on whole pixel values)."""
    pixels = ((inputs.detach().float().cpu() + 1.0) * 127.5).round().clamp(*PIXEL_RANGE).to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(0, 2, 3, 1).numpy())


def input_units(pixel_values: float) -> float:
    """A distance in pixel values (e.g. an attack budget of 4/255 of the range = 4) in model-input units."""
    return pixel_values / 127.5
