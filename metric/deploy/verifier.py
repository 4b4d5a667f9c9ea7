"""One-call 1:1 verification from a checkpoint: `Verifier.from_checkpoint(path).verify(image_a, image_b)`, optionally
behind a liveness gate (`liveness=<liveness ckpt>`): a spoofed image is rejected before anything is matched."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datamodules.faces.frontend import FaceCrop
from metric.deploy.liveness import LivenessCheck, LivenessGate
from metric.deploy.probe import ImageInput, ProbeReader
from metric.scoring.embed import embed_images
from metric.scoring.load import load_for_eval
from metric.scoring.matchers import Matcher


@dataclass(frozen=True)
class Verification:
    """Both stages of a decision: the liveness check (None without a gate) and the match (score NaN when a spoof
    stopped it before matching)."""

    score: float
    threshold: float
    accepted: bool
    matcher: str
    liveness: LivenessCheck | None = None
    faces: int | None = None  # faces the front end found in the probe (-1: no detection ran); None: not reported
    box: tuple[float, float, float, float] | None = None  # the probe's face used, x0, y0, x1, y1 in its pixels

    @property
    def spoof(self) -> bool:
        return self.liveness is not None and not self.liveness.live

    @property
    def decision(self) -> str:
        return "ACCEPT" if self.accepted else "REJECT (presentation attack)" if self.spoof else "REJECT"

    def describe(self) -> str:
        """One line per stage, as the command line prints them."""
        gate = self.liveness.describe() if self.liveness is not None else "liveness  not checked (no liveness model)"
        match = (
            "match     not attempted: the image was rejected as a presentation attack"
            if self.spoof
            else f"match     score {self.score:.4f}  threshold {self.threshold:.4f}  ({self.matcher})"
        )
        return f"{gate}\n{match}\n-> {self.decision}"


class Verifier(ProbeReader):
    """A trained net, its matcher, the threshold calibrated for that matcher, and the face front end it was trained
    with, applied to every image (detect=False: the images are already aligned face crops)."""

    def __init__(
        self,
        net: torch.nn.Module,
        matcher: Matcher,
        threshold: float,
        liveness: LivenessGate | None = None,
        **reader: Any,
    ):
        """`reader`: ProbeReader's preprocessing record, face front end, `detect` and `note`."""
        super().__init__(**reader)
        self.net = net
        self.matcher = matcher
        self.threshold = threshold
        self.liveness = liveness
        self.embedder: Callable[[np.ndarray], np.ndarray] = self.embed_net  # embed_through() replaces it

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, matcher: str | None = None, detect: bool = True, liveness: str | Path | None = None
    ) -> Verifier:
        """The checkpoint's net with a calibrated matcher (the training one, or any added by metric.calibrate) and
        the checkpoint's face front end; with `liveness`, that liveness checkpoint gates every image first."""
        loaded = load_for_eval(path, matcher=matcher)
        gate = LivenessGate.from_checkpoint(liveness, detect) if liveness is not None else None
        return cls(
            loaded.net,
            loaded.matcher,
            loaded.calibration()["threshold"],
            liveness=gate,
            preprocess=loaded.preprocess,
            front_end=loaded.front_end() if detect else None,
            detect=detect,
        )

    def check_liveness(self, image: ImageInput) -> LivenessCheck | None:
        """The gate's verdict on the image (None without a gate)."""
        return self.liveness.check(image) if self.liveness is not None else None

    def rejected(self, check: LivenessCheck) -> Verification:
        """The decision for an image the gate rejected: nothing was matched."""
        return Verification(math.nan, self.threshold, False, self.matcher.name, check)

    def embed_net(self, pixels: np.ndarray) -> np.ndarray:
        """Embeddings of model inputs (N, H, W, C) uint8 from one forward pass of the net."""
        return embed_images(self.net, pixels)

    def embed_through(self, embedder: Callable[[np.ndarray], np.ndarray]) -> None:
        """Send every later embedding through `embedder` (the service's micro-batcher, which calls embed_net)."""
        self.embedder = embedder

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Embeddings of model inputs (N, H, W, C) uint8: by embed_net, or the embedder given to embed_through."""
        return self.embedder(pixels)

    def embed(self, images: list[ImageInput]) -> torch.Tensor:
        return torch.from_numpy(self.embed_pixels(np.stack([self.load(i) for i in images])))

    def score(
        self, a: torch.Tensor, b: torch.Tensor, liveness: LivenessCheck | None = None, face: FaceCrop | None = None
    ) -> Verification:
        """The decision for one pair of embeddings (1 x D each) at the calibrated threshold; `face`: the probe's."""
        with torch.no_grad():
            value = float(self.matcher.score(a, b)[0])
        return Verification(
            value,
            self.threshold,
            value >= self.threshold,
            self.matcher.name,
            liveness,
            face.faces if face else None,
            face.box if face else None,
        )

    def verify(self, image_a: ImageInput, image_b: ImageInput) -> Verification:
        """Behind a gate both images must be live; the least live one's check is reported."""
        checks = [c for c in (self.check_liveness(image_a), self.check_liveness(image_b)) if c is not None]
        check = min(checks, key=lambda c: c.margin) if checks else None
        if check is not None and not check.live:
            return self.rejected(check)
        a, b = self.embed([image_a, image_b])
        return self.score(a[None], b[None], check)
