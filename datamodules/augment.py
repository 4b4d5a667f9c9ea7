"""Training-image augmentation policies (uint8 HWC in, uint8 HWC out); validation and test are never augmented.

Each policy may also carry a per-batch mixing (`augment.mix=mixup|cutmix`, datamodules.mixing): it does not touch
the images one by one; the training module applies `batch_mix` to each batch of model inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from datamodules.mixing import BatchMix


class MixingAugment:
    """The per-batch mixing settings every policy takes (the policies pass them on as `**mix`): `batch_mix` is None
    unless `mix` is mixup or cutmix."""

    def __init__(self, mix: str | None = None, mix_alpha: float = 1.0, mix_prob: float = 0.5):
        self.batch_mix: BatchMix | None = BatchMix(mix, mix_alpha, mix_prob) if mix is not None else None


class BasicAugment(MixingAugment):
    """Horizontal flip, small shift, scale and rotation, and brightness and contrast jitter."""

    def __init__(
        self,
        flip: float = 0.5,
        degrees: float = 10.0,
        translate: float = 0.06,
        scale: float = 0.1,
        brightness: float = 0.2,
        contrast: float = 0.2,
        **mix: Any,
    ):
        super().__init__(**mix)
        self.transform = v2.Compose(
            [
                v2.RandomHorizontalFlip(flip),
                v2.RandomAffine(degrees=degrees, translate=(translate, translate), scale=(1 - scale, 1 + scale)),
                v2.ColorJitter(brightness=brightness, contrast=contrast),
            ]
        )

    def __call__(self, image: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        return self.transform(tensor).permute(1, 2, 0).numpy()


class RandAugment(MixingAugment):
    """timm's RandAugment with `num_ops` operations of `magnitude` (0-10) per image; grey images go through RGB."""

    def __init__(self, magnitude: int = 9, num_ops: int = 2, **mix: Any):
        super().__init__(**mix)
        from timm.data.auto_augment import rand_augment_transform

        self.transform = rand_augment_transform(f"rand-m{magnitude}-n{num_ops}", {"img_mean": (128, 128, 128)})

    def __call__(self, image: np.ndarray) -> np.ndarray:
        grey = image.shape[-1] == 1
        pil = Image.fromarray(image[..., 0] if grey else image).convert("RGB")
        out = self.transform(pil)
        return np.asarray(out.convert("L"))[..., None] if grey else np.asarray(out)
