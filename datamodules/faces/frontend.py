"""What every face front end gives (`FaceCrop`), `face=none` itself, and rebuilding a front end from a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from datamodules.images import BadImage, as_array, resize
from metric.errors import ConfigError

ON_MISS = ("skip", "whole")


class NoFace(BadImage):
    """An image in which the front end found no usable face."""


@dataclass(frozen=True)
class FaceCrop:
    """One image through the front end: the aligned crop (None for a miss), the face used and how many were found."""

    image: np.ndarray | None  # uint8 (H, W, C) at the output size
    faces: int  # faces found; -1 when no detector ran (face=none)
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 of the face used, in the original
    landmarks: tuple[tuple[float, float], ...] | None = None  # its landmarks, in the original's pixels
    reason: str | None = None  # why there is no face: "no face", "too small: ..."
    others: list["FaceCrop"] = field(default_factory=list, compare=False)  # the other faces, largest first

    @property
    def found(self) -> bool:
        return self.faces != 0 and self.reason is None

    def record(self) -> dict:
        """The detection as JSON (cache index, faces.png), without the pixels."""
        return {"faces": self.faces, "box": list(self.box) if self.box else None,
                "landmarks": [list(p) for p in self.landmarks] if self.landmarks else None, "reason": self.reason}


class FaceFrontEnd:
    """face=none: the image is already a face crop; it is only resized. Subclasses detect and align."""

    name = "none"
    active = False  # whether a detector runs
    on_miss = "skip"

    def spec(self) -> dict:
        """What changes the crops: recorded in checkpoints, export sidecars and cache keys."""
        return {"name": self.name}

    def describe(self) -> str:
        return "face=none (images used as given, resized)"

    def crop(self, image: Image.Image, size: tuple[int, int], all_faces: bool = False) -> FaceCrop:
        """The largest face of `image` aligned at size=(H, W), the others in `others` when all_faces."""
        return FaceCrop(as_array(resize(image, size)), faces=-1)


def check_on_miss(on_miss: str) -> str:
    if on_miss not in ON_MISS:
        raise ConfigError(f"face.on_miss={on_miss!r} is not one of {', '.join(ON_MISS)}: skip drops a photo without a "
                          "face from a dataset, whole falls back to the whole image.")
    return on_miss
