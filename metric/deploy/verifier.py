"""One-call 1:1 verification from a checkpoint: `Verifier.from_checkpoint(path).verify(image_a, image_b)`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datamodules.images import read_image
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


class Verifier:
    """A trained net, its matcher and the threshold calibrated for that matcher."""

    def __init__(self, net: torch.nn.Module, matcher: Matcher, threshold: float, preprocess: dict):
        self.net = net
        self.matcher = matcher
        self.threshold = threshold
        self.preprocess = preprocess

    @classmethod
    def from_checkpoint(cls, path: str | Path, matcher: str | None = None) -> "Verifier":
        """The checkpoint's net with a calibrated matcher: the training one, or any added by metric.calibrate."""
        loaded = load_for_eval(path, matcher=matcher)
        return cls(loaded.net, loaded.matcher, loaded.calibration()["threshold"], loaded.preprocess)

    def load(self, image: ImageInput) -> np.ndarray:
        """A path is read and resized as in training; an array must already be uint8 (H, W, C) at that size."""
        if isinstance(image, (str, Path)):
            return read_image(image, self.preprocess["channels"], tuple(self.preprocess["image_size"]))
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
