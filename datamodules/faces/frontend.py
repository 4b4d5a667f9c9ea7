"""What every face front end gives (`FaceCrop`), `face=none` itself, and rebuilding a front end from a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from datamodules.images import BadImage, as_array, check_margin, resize
from metric.errors import ConfigError
from metric.registry import Registry

# the face front ends checkpoints and export sidecars record by name; each registers itself above its class
FRONT_ENDS: Registry[type] = Registry("face front end", key="name")

ON_MISS = ("skip", "whole")
SELECT = ("largest", "centre")  # which face of a photo with several is the one used


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
    others: list[FaceCrop] = field(default_factory=list, compare=False)  # the other faces, largest first

    @property
    def found(self) -> bool:
        return self.faces != 0 and self.reason is None

    def record(self) -> dict:
        """The detection as JSON (cache index, faces.png), without the pixels."""
        return {
            "faces": self.faces,
            "box": list(self.box) if self.box else None,
            "landmarks": [list(p) for p in self.landmarks] if self.landmarks else None,
            "reason": self.reason,
        }


@FRONT_ENDS.register
class FaceFrontEnd:
    """face=none: the image is already a face crop; it is only resized. Subclasses detect and align."""

    name = "none"
    active = False  # whether a detector runs
    on_miss = "skip"

    def detection_settings(
        self, margin: float, max_side: int, on_miss: str, min_detection_rate: float, select: str
    ) -> None:
        """The settings every detecting front end shares, checked: the crop's margin, the largest side detection
        reads, what a photo without a face becomes, the share of photos that must have one, which face is kept."""
        if not 0 <= min_detection_rate <= 1:
            raise ConfigError(f"face.min_detection_rate={min_detection_rate} must lie in [0, 1].")
        self.margin, self.max_side = check_margin(margin), int(max_side)
        self.on_miss, self.select = check_on_miss(on_miss), check_select(select)
        self.min_detection_rate = float(min_detection_rate)

    @classmethod
    def from_spec(cls, settings: dict) -> FaceFrontEnd:
        """The front end a recorded spec's settings (its name removed) describe."""
        return cls(**settings)

    def spec(self) -> dict:
        """What changes the crops: recorded in checkpoints, export sidecars and cache keys."""
        return {"name": self.name}

    def describe(self) -> str:
        return "face=none (images used as given, resized)"

    def crop(self, image: Image.Image, size: tuple[int, int], all_faces: bool = False) -> FaceCrop:
        """The largest face of `image` aligned at size=(H, W), the others in `others` when all_faces."""
        return FaceCrop(as_array(resize(image, size)), faces=-1)


def check_select(select: str) -> str:
    if select not in SELECT:
        raise ConfigError(
            f"face.select={select!r} is not one of {', '.join(SELECT)}: largest uses the largest face of "
            "a photo with several (a camera facing one person), centre the one nearest the photo's centre "
            "(photo sets framed on their subject, as LFW and CelebA)."
        )
    return select


def face_order(boxes: list, size: tuple[int, int], select: str) -> list[int]:
    """Indices of the faces (boxes x0, y0, x1, y1 in a photo of size=(W, H)), the one to use first."""

    def key(i: int) -> float:
        x0, y0, x1, y1 = boxes[i]
        if select == "centre":
            return float(np.hypot((x0 + x1 - size[0]) / 2, (y0 + y1 - size[1]) / 2))
        return -float((x1 - x0) * (y1 - y0))

    return sorted(range(len(boxes)), key=key)


def select_spec(select: str) -> dict:
    """`select` in a front end's spec only when it is not the default, so records written before it still match."""
    return {} if select == "largest" else {"select": select}


def check_on_miss(on_miss: str) -> str:
    if on_miss not in ON_MISS:
        raise ConfigError(
            f"face.on_miss={on_miss!r} is not one of {', '.join(ON_MISS)}: skip drops a photo without a "
            "face from a dataset, whole falls back to the whole image."
        )
    return on_miss
