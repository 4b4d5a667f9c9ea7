"""Reading an image file into the uint8 array the models expect: decode, crop or align, channel conversion, resize."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from metric.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pgm", ".bmp", ".webp")
# A JPEG whose longer side is above this is decoded at 1/2, 1/4 or 1/8 scale by its DCT (PIL's draft mode), never
# below this side: a 25-megapixel photo then takes a quarter of the memory and time, and the face front ends, which
# detect on a copy of at most 1024 pixels, still align from more pixels than the face crop needs.
DRAFT_SIDE = 2048

# Canonical 5-point face template (left eye, right eye, nose tip, left and right mouth corners) as
# fractions of a square output, the layout most face recognisers align to (112 x 112 in pixels).
FIVE_POINT_TEMPLATE = (
    np.array([[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]], dtype=np.float64) / 112.0
)


class BadImage(ValueError):
    """An image file that is missing, truncated or not an image."""


def check_image_size(size) -> tuple[int, int]:
    """`datamodule.image_size` as (height, width) of positive integers, or one clear error before any file is read."""
    values = list(size) if isinstance(size, Sequence) and not isinstance(size, str) else None  # also ListConfig
    if not values or len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ConfigError(
            f"datamodule.image_size={size!r} must be [height, width] in pixels, two positive integers, e.g. [64, 64]."
        )
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


def check_margin(margin: float) -> float:
    if not -0.25 <= margin < 1:
        raise ConfigError(
            f"face.margin={margin} must lie in [-0.25, 1): the context added on each side of the tight "
            "aligned face, as a fraction of its side (negative: zoom in on the inner face)."
        )
    return float(margin)


def template_points(
    size: tuple[int, int],
    margin: float = 0.0,
    rows: Sequence[int] = (0, 1, 2, 3, 4),
    template: np.ndarray = FIVE_POINT_TEMPLATE,
) -> np.ndarray:
    """The template's points (those of `rows`) in pixels of an output of size=(H, W), with `margin` (a fraction of
    the tight crop's side) of extra context on every side: margin=0 is the classic tight 112 x 112 layout, a
    negative margin zooms in on the inner face."""
    check_margin(margin)
    height, width = size
    return (np.asarray(template)[list(rows)] + margin) / (1 + 2 * margin) * np.array([width, height])


def align_to_template(
    image: Image.Image,
    landmarks: np.ndarray,
    size: tuple[int, int],
    margin: float = 0.0,
    rows: Sequence[int] = (0, 1, 2, 3, 4),
    template: np.ndarray = FIVE_POINT_TEMPLATE,
) -> Image.Image:
    """The one aligner: warp by the similarity transform (rotation, scale, shift; no shear) that best maps the
    landmarks onto the points `rows` of `template` (fractions of the output), into an output of size=(H, W)."""
    height, width = size
    forward = similarity_transform(
        np.asarray(landmarks, dtype=np.float64), template_points(size, margin, rows, template)
    )
    inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2]  # PIL maps output pixels back to input
    return image.transform((width, height), Image.Transform.AFFINE, inverse.ravel(), Image.Resampling.BILINEAR)


def to_channels(image: Image.Image, channels: int) -> Image.Image:
    """Any PIL mode as RGB (channels=3) or grey (1): a palette is expanded, 16-bit and float images are scaled to
    8 bits (not clipped), and transparent pixels are composited onto white."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F":  # floats: [0, 1] or already in pixel values
            full_scale = 1.0 if values.max() <= 1.0 else 255.0
        else:  # 16-bit integers, unless every value fits in 8 bits
            full_scale = 65535.0 if values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / full_scale * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode in ("RGB", "L") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("RGB" if channels == 3 else "L")


def draft_large_jpeg(image: Image.Image) -> None:
    """Before decoding: ask PIL to decode a JPEG larger than DRAFT_SIDE at the smallest DCT scale that keeps its
    longer side at DRAFT_SIDE or more (other formats and smaller JPEGs are decoded in full)."""
    if image.format in ("JPEG", "MPO") and max(image.size) > DRAFT_SIDE:
        fraction = DRAFT_SIDE / max(image.size)
        image.draft(image.mode, (math.ceil(image.width * fraction), math.ceil(image.height * fraction)))


def open_image(path: str | Path, channels: int) -> Image.Image:
    """The decoded image in RGB (channels=3) or grey (1), loaded into memory (a large JPEG at a reduced scale:
    draft_large_jpeg); BadImage when it cannot be read."""
    try:
        with Image.open(path) as opened:
            draft_large_jpeg(opened)
            opened.load()
            return to_channels(ImageOps.exif_transpose(opened), channels)  # a phone's portrait photo stands upright
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadImage(f"{path}: cannot be read as an image ({type(error).__name__}: {error})") from None


def read_each(items: Iterable[T], read: Callable[[T], R]) -> list[R | BadImage]:
    """read(item) for each item, in order; an item that raises BadImage gives that error in its place."""
    out: list[R | BadImage] = []
    for item in items:
        try:
            out.append(read(item))
        except BadImage as error:
            out.append(error)
    return out


def as_array(image: Image.Image) -> np.ndarray:
    """uint8 (H, W, C), C = 1 for grey."""
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def read_image(
    path: str | Path,
    channels: int,
    size: tuple[int, int] | None = None,
    box: tuple[float, float, float, float] | None = None,
    landmarks: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 array (H, W, channels): cropped to box (x0, y0, x1, y1) or aligned by 5 landmarks, then resized."""
    image = open_image(path, channels)
    if landmarks is not None and size is not None:
        image = align_to_template(image, landmarks, size)
    elif box is not None:
        image = image.crop(tuple(int(round(v)) for v in box))
    return as_array(resize(image, size))


def downscale(image: Image.Image, max_side: int) -> tuple[Image.Image, float]:
    """A bilinear copy whose longer side is at most max_side (the image itself when it fits), and its scale;
    BadImage for an image so thin that its shorter side would vanish (e.g. 40 x 100000 pixels)."""
    scale = min(1.0, max_side / max(image.size))
    if scale == 1.0:
        return image, 1.0
    width, height = round(image.width * scale), round(image.height * scale)
    if min(width, height) < 1:
        raise BadImage(
            f"the image is {image.width}x{image.height} pixels, too thin to hold a face (scaled to "
            f"{max_side} pixels on its longer side, its shorter side would vanish): send a photo of the "
            "face, cropped to a normal aspect ratio."
        )
    return image.resize((width, height), Image.Resampling.BILINEAR), scale


def resize(image: Image.Image, size: tuple[int, int] | None) -> Image.Image:
    """Bilinear resize to size=(H, W); None or the same size leaves it as it is."""
    if size is None or (image.height, image.width) == tuple(size):
        return image
    return image.resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR)
