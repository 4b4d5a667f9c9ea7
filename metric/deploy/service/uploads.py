"""Image uploads checked for size, file count, format (by content) and pixel count before any pixel is decoded."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from datamodules.images import as_array, draft_large_jpeg, to_channels
from metric.errors import ConfigError

STATUS = {
    "too_large": 413,
    "too_many_files": 413,
    "too_many_pixels": 413,
    "not_an_image": 400,
    "unsupported_format": 400,
    "corrupt_image": 400,
    "no_image": 400,
}


@dataclass(frozen=True)
class UploadLimits:
    """What one request may hold; `formats` are PIL format names (a PGM file reports "PPM")."""

    max_request_bytes: int = 10 * 2**20
    max_files: int = 10
    max_pixels: int = 25_000_000
    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "PPM", "TIFF")
    body_timeout_s: float = 10.0  # a request body that stalls this long between chunks: 408
    max_uploads: int = 16  # request bodies received at once (at most max_uploads x max_request_bytes held): 503 above
    max_decodes: int = 2  # images decoded at once, whatever the number of workers (decoded pixels dwarf the bytes)

    def __post_init__(self):
        if (
            isinstance(self.body_timeout_s, bool)
            or not isinstance(self.body_timeout_s, (int, float))
            or not self.body_timeout_s > 0
        ):
            raise ConfigError(
                f"upload limit body_timeout_s={self.body_timeout_s!r} must be a positive number of seconds, e.g. 10."
            )
        for name in ("max_request_bytes", "max_files", "max_pixels", "max_uploads", "max_decodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"upload limit {name}={value!r} must be a positive integer.")
        if isinstance(self.formats, str) or not self.formats or not all(isinstance(f, str) for f in self.formats):
            raise ConfigError(
                f"upload formats={self.formats!r} must be a non-empty list of PIL format names, e.g. [JPEG, PNG]."
            )
        object.__setattr__(self, "formats", tuple(self.formats))
        pil_limit = Image.MAX_IMAGE_PIXELS
        if pil_limit is not None and self.max_pixels > pil_limit:  # else PIL would refuse images under our limit
            raise ConfigError(
                f"upload max_pixels={self.max_pixels:,} is above PIL's decompression-bomb limit "
                f"(PIL.Image.MAX_IMAGE_PIXELS={pil_limit:,}): lower max_pixels, or raise "
                "PIL.Image.MAX_IMAGE_PIXELS to at least max_pixels before building the limits."
            )


class UploadError(Exception):
    """A refused upload: `status` (HTTP 400 or 413), `code` (a stable name for clients) and `message` (how to fix).
    Size, file count, format and pixel count are checked before any pixel is decoded."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.status = STATUS[code]
        self.code = code
        self.message = message


def describe(filename: str | None) -> str:
    """How a message names an upload: by the client's file name (its last part only), else as 'the upload'."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1][:100]
    return f"upload {name!r}" if name else "the upload"


def check_file_count(count: int, limits: UploadLimits) -> None:
    """Refuse a request with no image, or more than limits.max_files."""
    if count < 1:
        raise UploadError("no_image", "the request holds no image: attach at least one image file.")
    if count > limits.max_files:
        raise UploadError(
            "too_many_files",
            f"the request holds {count} files, over the limit of {limits.max_files}: "
            f"send at most {limits.max_files} images per request.",
        )


def too_many_pixels(upload: str, limits: UploadLimits) -> UploadError:
    """The refusal of an image over the pixel limit whose size is not known (PIL's own bomb check stopped it)."""
    return UploadError(
        "too_many_pixels",
        f"{upload} has more pixels than the limit of {limits.max_pixels:,}: scale it down (a face needs far fewer).",
    )


def check_size(data: bytes, upload: str, limits: UploadLimits) -> None:
    """Refuse an empty upload, or one over limits.max_request_bytes."""
    if not data:
        raise UploadError("no_image", f"{upload} is empty: send the image file's bytes.")
    if len(data) > limits.max_request_bytes:
        raise UploadError(
            "too_large",
            f"{upload} is {len(data):,} bytes, over the limit of "
            f"{limits.max_request_bytes:,}: send a smaller image (scale it down or "
            "compress it).",
        )


def open_upload(data: bytes, upload: str, limits: UploadLimits) -> Image.Image:
    """The image opened from its header alone: no pixel is decoded yet."""
    try:
        return Image.open(BytesIO(data))  # reads the header only; the content, not the name, decides the format
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # over PIL's limit, which is above ours
        raise too_many_pixels(upload, limits) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise UploadError(
            "not_an_image",
            f"{upload} is not an image (judged by its content, not its name): send a {', '.join(limits.formats)} file.",
        ) from None


def check_header(image: Image.Image, upload: str, limits: UploadLimits) -> None:
    """Refuse an opened image of a format not allowed, or over the pixel limit, before any pixel is decoded."""
    # a phone's JPEG with extra frames (a depth map, a preview) reads as MPO: its first frame is the JPEG
    kind = "JPEG" if image.format == "MPO" else image.format
    if kind not in limits.formats:
        raise UploadError(
            "unsupported_format",
            f"{upload} is a {image.format} image; the formats allowed are {', '.join(limits.formats)}: convert it to "
            "one of them.",
        )
    width, height = image.size
    if width * height > limits.max_pixels:
        raise UploadError(
            "too_many_pixels",
            f"{upload} is {width} x {height} = {width * height:,} pixels, over "
            f"the limit of {limits.max_pixels:,}: scale it down (a face needs "
            "far fewer).",
        )


def load_upright(image: Image.Image, upload: str, limits: UploadLimits) -> Image.Image:
    """The opened image's pixels, decoded as the command line decodes the same file, upright by its EXIF orientation."""
    try:
        draft_large_jpeg(image)  # as the command line decodes the same file
        image.load()
        return ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # a frame or tile larger than the image
        raise too_many_pixels(upload, limits) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error) as error:
        raise UploadError(
            "corrupt_image",
            f"{upload} is a {image.format} image that cannot be decoded "
            f"({type(error).__name__}: {error}): it is truncated or corrupt; send "
            "the complete file again.",
        ) from None


def decode_upload(data: bytes, filename: str | None, channels: int, limits: UploadLimits) -> np.ndarray:
    """The uploaded image as uint8 (H, W, channels), upright by its EXIF orientation; UploadError when refused."""
    if channels not in (1, 3):
        raise ConfigError(f"channels={channels!r} must be 1 (grey) or 3 (RGB).")
    upload = describe(filename)
    check_size(data, upload, limits)
    with open_upload(data, upload, limits) as image:
        check_header(image, upload, limits)
        upright = load_upright(image, upload, limits)
        try:
            return as_array(to_channels(upright, channels))
        except ValueError:  # a pixel mode PIL cannot convert to RGB or grey (e.g. LAB)
            raise UploadError(
                "unsupported_format",
                f"{upload} is a {image.format} image in mode {upright.mode}, "
                "which cannot be converted to RGB or grey: save it as an 8-bit "
                "RGB or grey image.",
            ) from None
