"""Reading an image file into the uint8 array the models expect: decode, channel conversion, resize."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pgm", ".bmp", ".webp")


class BadImage(ValueError):
    """An image file that is missing, truncated or not an image."""


def read_image(path: str | Path, channels: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 array (H, W, channels); resized to size=(H, W) with bilinear filtering when given."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if channels == 3 else "L")
            if size is not None and (image.height, image.width) != tuple(size):
                image = image.resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise BadImage(f"{path}: cannot be read as an image ({type(error).__name__}: {error})") from None
    return array[..., None] if array.ndim == 2 else array
