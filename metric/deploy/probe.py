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
from datamodules.images import BadImage, as_array, read_image, resize

ImageInput = str | Path | np.ndarray


class NamedPixels(np.ndarray):
    """Decoded pixels that remember where they came from (the service's uploads: "image 2 of 3, 'me.jpg'"), so that a
    message about them names the upload a client sent and not "the image array"."""

    source: str = "the image array"
    advice: str | None = None  # what the sender can do when no face is found (None: --no-detect)


def named(pixels: np.ndarray, source: str, advice: str) -> NamedPixels:
    """The pixels, unchanged, with the name and the advice a message about them gives."""
    out = np.asarray(pixels).view(NamedPixels)
    out.source, out.advice = source, advice
    return out


class SeveralFaces(BadImage):
    """An enrollment photo with more than one face: which face is the person is not known."""


def print_note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


class ProbeReader:
    """A model's preprocessing record and face front end, applied to every image (detect=False: the images are
    already aligned face crops)."""

    def __init__(
        self,
        preprocess: dict,
        front_end: FaceFrontEnd | None = None,
        detect: bool = True,
        note: Callable[[str], None] = print_note,
    ):
        self.preprocess = preprocess
        self.size = tuple(preprocess["image_size"])
        self.faces = FaceLoader(front_end or FaceFrontEnd(), preprocess["channels"], self.size)
        self.detect = detect and self.faces.front_end.active
        self.note = note

    def picture(self, image: np.ndarray) -> Image.Image:
        pixels = np.asarray(image)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[-1] != self.preprocess["channels"]:
            raise BadImage(
                f"{source_of(image)} must be uint8 (H, W, {self.preprocess['channels']}); got "
                f"{pixels.dtype} {pixels.shape}."
            )
        return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)

    def crops(self, image: ImageInput, all_faces: bool = False) -> list[FaceCrop]:
        """The image through the front end: its largest face (and, with all_faces, every other); NoFace when none."""
        if isinstance(image, (str, Path)):
            crop = self.faces.load_face(image, all_faces)
        else:
            picture = self.picture(image)
            try:
                found = self.faces.front_end.crop(picture, self.size, all_faces)
            except BadImage as error:
                raise BadImage(f"{source_of(image)}: {error}") from None
            crop = require_face(found, source_of(image), self.faces.front_end, getattr(image, "advice", None))
        if crop.faces > 1 and not all_faces:
            self.note(
                f"{source_of(image)}: {crop.faces} faces found; using the largest (identify --all-faces "
                "identifies each)."
            )
        return [crop, *crop.others]

    def face(self, image: ImageInput) -> FaceCrop:
        """The face a decision uses: the front end's largest face (with how many were found and its box), or, without
        detection (detect=False, or a checkpoint trained with face=none), the whole image read and resized exactly as
        in training, a file or decoded pixels alike (faces -1)."""
        if self.detect:
            return self.crops(image)[0]
        if isinstance(image, (str, Path)):
            return FaceCrop(read_image(image, self.preprocess["channels"], self.size), faces=-1)
        return FaceCrop(as_array(resize(self.picture(image), self.size)), faces=-1)

    def load(self, image: ImageInput) -> np.ndarray:
        """The model's uint8 (H, W, C) input (see face())."""
        return self.face(image).image

    def load_single(self, image: ImageInput) -> np.ndarray:
        """As load(), but SeveralFaces for a photo with more than one face: enrollment must know whose face it is."""
        crop = self.face(image)
        if crop.faces > 1:
            raise SeveralFaces(
                f"{source_of(image)}: {crop.faces} faces found; an enrollment photo must show one person "
                "only (which face would be enrolled?): crop it to the person, or send another photo."
            )
        return crop.image


def source_of(image: ImageInput) -> str:
    """How a message names an image: its path, an upload's name, or "the image array"."""
    return str(image) if isinstance(image, (str, Path)) else getattr(image, "source", "the image array")
