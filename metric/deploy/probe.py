"""Reading a probe as a model was trained to see it: a file or an array through the model's face front end, or read
and resized as in training when detection is off. The verifier and the liveness gate both read probes this way."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.faces.frontend import FaceCrop, FaceFrontEnd
from datamodules.faces.loader import FaceLoader, require_face
from datamodules.images import BadImage, read_image

ImageInput = str | Path | np.ndarray


def print_note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


class ProbeReader:
    """A model's preprocessing record and face front end, applied to every image (detect=False: the images are
    already aligned face crops)."""

    def __init__(self, preprocess: dict, front_end: FaceFrontEnd | None = None, detect: bool = True,
                 note: Callable[[str], None] = print_note):
        self.preprocess = preprocess
        self.size = tuple(preprocess["image_size"])
        self.faces = FaceLoader(front_end or FaceFrontEnd(), preprocess["channels"], self.size)
        self.detect = detect and self.faces.front_end.active
        self.note = note

    def crops(self, image: ImageInput, all_faces: bool = False) -> list[FaceCrop]:
        """The image through the front end: its largest face (and, with all_faces, every other); NoFace when none."""
        if isinstance(image, (str, Path)):
            crop = self.faces.load_face(image, all_faces)
        else:
            pixels = np.asarray(image)
            if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[-1] != self.preprocess["channels"]:
                raise BadImage(f"an image array must be uint8 (H, W, {self.preprocess['channels']}); got "
                               f"{pixels.dtype} {pixels.shape}.")
            picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
            image = "the image array"
            crop = require_face(self.faces.front_end.crop(picture, self.size, all_faces), image, self.faces.front_end)
        if crop.faces > 1 and not all_faces:
            self.note(f"{image}: {crop.faces} faces found; using the largest (identify --all-faces identifies each).")
        return [crop, *crop.others]

    def load(self, image: ImageInput) -> np.ndarray:
        """The model's uint8 (H, W, C) input: the aligned largest face, or (detect=False, or a checkpoint trained
        with face=none) a path read and resized as in training and an array taken as it is, at that size."""
        if self.detect:
            return self.crops(image)[0].image
        if isinstance(image, (str, Path)):
            return read_image(image, self.preprocess["channels"], self.size)
        if tuple(np.shape(image)[:2]) != self.size:
            raise BadImage(f"an image array given without detection must already be {self.size[0]}x{self.size[1]} "
                           f"(the training size); got {np.shape(image)}.")
        return image
