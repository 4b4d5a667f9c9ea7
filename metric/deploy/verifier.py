"""One-call 1:1 verification from a checkpoint: `Verifier.from_checkpoint(path).verify(image_a, image_b)`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datamodules.faces.frontend import FaceCrop, FaceFrontEnd
from datamodules.faces.loader import FaceLoader, require_face
from datamodules.images import BadImage, read_image
from metric.scoring.embed import embed_images
from metric.scoring.load import load_for_eval
from metric.scoring.matchers import Matcher

ImageInput = str | Path | np.ndarray


@dataclass(frozen=True)
class Verification:
    score: float
    threshold: float
    accepted: bool
    matcher: str

    @property
    def decision(self) -> str:
        return "ACCEPT" if self.accepted else "REJECT"


def print_note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


class Verifier:
    """A trained net, its matcher, the threshold calibrated for that matcher, and the face front end it was trained
    with, applied to every image (detect=False: the images are already aligned face crops)."""

    def __init__(self, net: torch.nn.Module, matcher: Matcher, threshold: float, preprocess: dict,
                 front_end: FaceFrontEnd | None = None, detect: bool = True,
                 note: Callable[[str], None] = print_note):
        self.net = net
        self.matcher = matcher
        self.threshold = threshold
        self.preprocess = preprocess
        self.size = tuple(preprocess["image_size"])
        self.faces = FaceLoader(front_end or FaceFrontEnd(), preprocess["channels"], self.size)
        self.detect = detect and self.faces.front_end.active
        self.note = note

    @classmethod
    def from_checkpoint(cls, path: str | Path, matcher: str | None = None, detect: bool = True) -> "Verifier":
        """The checkpoint's net with a calibrated matcher (the training one, or any added by metric.calibrate) and
        the checkpoint's face front end."""
        loaded = load_for_eval(path, matcher=matcher)
        return cls(loaded.net, loaded.matcher, loaded.calibration()["threshold"], loaded.preprocess,
                   loaded.front_end() if detect else None, detect)

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

    def embed(self, images: list[ImageInput]) -> torch.Tensor:
        return torch.from_numpy(embed_images(self.net, np.stack([self.load(i) for i in images])))

    def score(self, a: torch.Tensor, b: torch.Tensor) -> Verification:
        """The decision for one pair of embeddings (1 x D each) at the calibrated threshold."""
        with torch.no_grad():
            value = float(self.matcher.score(a, b)[0])
        return Verification(value, self.threshold, value >= self.threshold, self.matcher.name)

    def verify(self, image_a: ImageInput, image_b: ImageInput) -> Verification:
        a, b = self.embed([image_a, image_b])
        return self.score(a[None], b[None])
