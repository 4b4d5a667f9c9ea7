"""A second model an attack's perturbation is tried on (`attack.transfer_ckpt`), reading its own crops of the same
photos: the same size and front end as the attacked model, or another aligned crop (dlib's 150 x 150 chip beside
MobileFaceNet's 112 x 112 ArcFace crop), into which the perturbation is carried by the similarity transform that
maps the attacked crop's eye points onto the transfer crop's: the pattern stays on the same part of the face."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.images import similarity_transform
from metric.attacks.masks import eye_points
from metric.attacks.verifier import Verifier
from metric.errors import ConfigError
from metric.model.checkpoint import face_spec

Warp = Callable[[torch.Tensor], torch.Tensor]  # (C, H, W) perturbation in the attacked crop -> the transfer crop


def same_crop(attacked: dict, transfer: dict) -> bool:
    """Whether two preprocessing records cut the same crops (size, channels, face front end)."""
    keys = ("image_size", "channels")
    return [list(attacked[k]) if k == "image_size" else attacked[k] for k in keys] == [
        list(transfer[k]) if k == "image_size" else transfer[k] for k in keys
    ] and face_spec(attacked) == face_spec(transfer)


def check_transferable(attacked: dict, transfer: dict, path: str) -> None:
    """Another crop is reachable only between aligned crops of the same channels (the eyes have known places)."""
    if same_crop(attacked, transfer):
        return
    if attacked["channels"] != transfer["channels"]:
        raise ConfigError(
            f"attack.transfer_ckpt={path!r} reads {transfer['channels']}-channel images and the attacked "
            f"checkpoint {attacked['channels']}-channel ones: one perturbation cannot apply to both."
        )
    for name, preprocess in (("attacked checkpoint", attacked), ("transfer checkpoint", transfer)):
        if face_spec(preprocess)["name"] == "none":
            raise ConfigError(
                f"attack.transfer_ckpt={path!r} reads other crops than the attacked checkpoint, and the "
                f"{name} was trained on crops that are not aligned (face=none), so the perturbation has "
                "no known place on its faces: give a transfer model that reads the same crops (size and "
                "front end), or models trained with face=mtcnn or face=dlib."
            )


def crop_warp(attacked: dict, transfer: dict) -> Warp:
    """The map that carries a perturbation from the attacked crop into the transfer crop (bilinear; zero where the
    transfer crop sees outside the attacked one). The identity when both read the same crops."""
    if same_crop(attacked, transfer):
        return lambda delta: delta
    source = eye_points(attacked, "transfer", group="attack")  # (left, right) eye in attacked-crop pixels
    target = eye_points(transfer, "transfer", group="attack")
    forward = np.vstack([similarity_transform(source, target), [0, 0, 1]])
    inverse = torch.from_numpy(np.linalg.inv(forward)[:2]).float()  # transfer-crop point -> attacked-crop point
    height, width = (int(v) for v in transfer["image_size"])
    src_height, src_width = (int(v) for v in attacked["image_size"])
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1) @ inverse.T  # pixel centres, attacked-crop pixels
    grid = torch.stack([points[..., 0] / src_width * 2 - 1, points[..., 1] / src_height * 2 - 1], dim=-1)[None]

    def warp(delta: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(delta[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]

    return warp


@dataclass
class Transfer:
    """The transfer model at its calibrated threshold, its crops of the attacked split (`images`), where each of the
    attacked split's images is among them (`index`, -1: its front end found no face there) and the `warp` that
    carries a perturbation into its crops."""

    checkpoint: str
    verifier: Verifier
    images: np.ndarray
    index: np.ndarray
    warp: Warp

    @classmethod
    def of_split(
        cls,
        checkpoint: str,
        verifier: Verifier,
        attacked_sources: list[str],
        images: np.ndarray,
        sources: list[str],
        warp: Warp,
    ) -> Transfer:
        position = {source: i for i, source in enumerate(sources)}
        index = np.array([position.get(source, -1) for source in attacked_sources], dtype=np.int64)
        return cls(checkpoint, verifier, images, index, warp)

    def pairs(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The attacked split's pairs in the transfer split's indices, and which of them both crops hold."""
        mapped = self.index[pairs] if len(pairs) else pairs.reshape(0, 2)
        kept = (mapped >= 0).all(axis=1) if len(mapped) else np.zeros(0, dtype=bool)
        return mapped[kept], kept
