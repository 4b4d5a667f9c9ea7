"""Reading an image file into the uint8 array the models expect: decode, crop or align, channel conversion, resize."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from metric.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pgm", ".bmp", ".webp")

# Canonical 5-point face template (left eye, right eye, nose tip, left and right mouth corners) as
# fractions of a square output, the layout most face recognisers align to (112 x 112 in pixels).
FIVE_POINT_TEMPLATE = np.array(
    [[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]], dtype=np.float64
) / 112.0


class BadImage(ValueError):
    """An image file that is missing, truncated or not an image."""


def check_image_size(size) -> tuple[int, int]:
    """`datamodule.image_size` as (height, width) of positive integers, or one clear error before any file is read."""
    values = list(size) if isinstance(size, Sequence) and not isinstance(size, str) else None  # also ListConfig
    if not values or len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ConfigError(f"datamodule.image_size={size!r} must be [height, width] in pixels, two positive "
                          "integers, e.g. [64, 64].")
    return int(values[0]), int(values[1])


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """2 x 3 matrix of the scale + rotation + shift that best maps source points onto target (least squares)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(t.T @ s / len(source))
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(sigma) @ sign) / (s**2).sum(1).mean()
    shift = mu_t - scale * rotation @ mu_s
    return np.hstack([scale * rotation, shift[:, None]])


def align_to_template(image: Image.Image, landmarks: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """Warp so the 5 landmarks land on the canonical template scaled to size=(H, W)."""
    height, width = size
    target = FIVE_POINT_TEMPLATE * np.array([width, height])
    forward = similarity_transform(np.asarray(landmarks, dtype=np.float64), target)
    inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2]  # PIL maps output pixels back to input
    return image.transform((width, height), Image.Transform.AFFINE, inverse.ravel(), Image.Resampling.BILINEAR)


def read_image(
    path: str | Path,
    channels: int,
    size: tuple[int, int] | None = None,
    box: tuple[float, float, float, float] | None = None,
    landmarks: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 array (H, W, channels): cropped to box (x0, y0, x1, y1) or aligned by 5 landmarks, then resized."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB" if channels == 3 else "L")
            if landmarks is not None and size is not None:
                image = align_to_template(image, landmarks, size)
            elif box is not None:
                image = image.crop(tuple(int(round(v)) for v in box))
            if size is not None and (image.height, image.width) != tuple(size):
                image = image.resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise BadImage(f"{path}: cannot be read as an image ({type(error).__name__}: {error})") from None
    return array[..., None] if array.ndim == 2 else array
