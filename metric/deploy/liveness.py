"""The liveness gate: a liveness checkpoint (+experiment=liveness) scores each probe before it is matched or
enrolled."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datamodules.faces.registry import front_end_from_spec
from datamodules.fingerprint import file_sha256
from datamodules.images import BadImage
from datamodules.normalisation import to_model_input
from metric.deploy.probe import ImageInput, ProbeReader
from metric.errors import ConfigError
from metric.model.checkpoint import CHECKPOINT_KEY, build_liveness_net, face_spec, read_checkpoint
from metric.model.liveness_net import LivenessNet


@dataclass(frozen=True)
class LivenessCheck:
    """A probe's liveness score against the gate's threshold (live when score >= threshold)."""

    score: float
    threshold: float

    @property
    def live(self) -> bool:
        return self.score >= self.threshold

    @property
    def margin(self) -> float:
        return self.score - self.threshold

    @property
    def decision(self) -> str:
        return "LIVE" if self.live else "SPOOF"

    def describe(self) -> str:
        sign = ">=" if self.live else "<"
        return f"liveness  score {self.score:.4f} {sign} threshold {self.threshold:.4f}  {self.decision}"


class SpoofDetected(BadImage):
    """An image the liveness gate rejected as a presentation attack (enrollment refuses it)."""

    def __init__(self, image, check: LivenessCheck):
        super().__init__(
            f"{image}: rejected as a presentation attack ({' '.join(check.describe().split())}); "
            "nothing was matched or enrolled from it."
        )
        self.check = check


PEER = "faceantispoofing"  # the pretrained liveness peer, given by name where a liveness checkpoint is asked for


class LivenessGate(ProbeReader):
    """A liveness net, the threshold calibrated for it on validation, and the face front end it was trained with."""

    def __init__(self, net: LivenessNet, threshold: float, path: Path | None = None, **reader: Any):
        """`reader`: ProbeReader's preprocessing record, face front end, `detect` and `note`."""
        super().__init__(**reader)
        self.net = net.eval()
        self.threshold = float(threshold)
        self.path = path
        self.sha256 = file_sha256(path) if path is not None else None

    @classmethod
    def from_checkpoint(cls, path: str | Path, detect: bool = True) -> LivenessGate:
        """A liveness checkpoint with its stored threshold; a verification checkpoint here is refused clearly."""
        if str(path) == PEER:  # the pretrained peer, by name: its weight-store file is the recorded guard
            from metric.model.faceantispoofing import PREPROCESS, THRESHOLD, FaceAntiSpoofing

            net = FaceAntiSpoofing()
            front_end = front_end_from_spec(PREPROCESS["face"]) if detect else None
            gate = cls(net, THRESHOLD, path=None, preprocess=PREPROCESS, front_end=front_end, detect=detect)
            gate.path, gate.sha256 = net.path, net.sha256
            return gate
        path = Path(path)
        if path.name == "FaceAntiSpoofing.tflite":  # the peer's file, as a gallery records it
            return cls.from_checkpoint(PEER, detect)
        checkpoint = read_checkpoint(path, task="liveness", name="liveness")
        meta = checkpoint[CHECKPOINT_KEY]
        if not meta.get("threshold"):
            raise ConfigError(
                f"liveness={str(path)!r} holds no calibrated threshold: use the best checkpoint of a "
                "finished `metric.train +experiment=liveness` run (it stores the threshold there)."
            )
        net = build_liveness_net(checkpoint)
        front_end = front_end_from_spec(face_spec(meta["preprocess"])) if detect else None
        threshold = meta["threshold"]["threshold"]
        return cls(
            net, threshold, path=path.resolve(), preprocess=meta["preprocess"], front_end=front_end, detect=detect
        )

    def scores(self, images: np.ndarray) -> np.ndarray:
        """Liveness scores of uint8 (N, H, W, C) model inputs."""
        with torch.no_grad():
            return self.net.liveness(to_model_input(images)).numpy().astype(np.float64)

    def check(self, image: ImageInput) -> LivenessCheck:
        return LivenessCheck(float(self.scores(self.load(image)[None])[0]), self.threshold)

    def require_live(self, image: ImageInput) -> LivenessCheck:
        """The check of an image that must be live (enrollment): SpoofDetected when it is not."""
        check = self.check(image)
        if not check.live:
            raise SpoofDetected(image, check)
        return check
