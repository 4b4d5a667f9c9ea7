"""Input purification at inference (`purify=null|jpeg|median`): JPEG re-compression or a median filter applied to
every image before it is embedded (metric.attack judges every attack through it)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from datamodules.normalisation import PIXEL_RANGE, to_pixels
from metric.errors import ConfigError

PURIFIERS = ("jpeg", "median")


def whole_number(value: object, key: str, low: int, high: int, hint: str) -> int:
    """An integer setting in [low, high], or one clear error naming its key."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{key}={value!r} must be an integer from {low} to {high} ({hint}).")
    return value


@dataclass(frozen=True)
class Purifier:
    """JPEG re-compression at `quality` (PIL) or a `kernel` x `kernel` median filter (reflected edges), applied to
    float pixel values (N, C, H, W); JPEG first rounds them to whole pixel values, as a saved image would."""

    name: str
    quality: int = 75
    kernel: int = 3

    def __post_init__(self) -> None:
        if self.name not in PURIFIERS:
            raise ConfigError(f"purify={self.name!r} is not one of null, {', '.join(PURIFIERS)}.")
        if self.name == "jpeg":
            whole_number(self.quality, "purify_quality", 1, 95, "the JPEG quality; 75 is PIL's default")
        elif (
            isinstance(self.kernel, bool) or not isinstance(self.kernel, int) or self.kernel < 3 or self.kernel % 2 == 0
        ):
            raise ConfigError(
                f"purify_kernel={self.kernel!r} must be an odd integer >= 3 (the median filter's side, e.g. 3)."
            )

    def spec(self) -> dict:
        return {"name": self.name, **({"quality": self.quality} if self.name == "jpeg" else {"kernel": self.kernel})}

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.jpeg(pixels) if self.name == "jpeg" else self.median(pixels)

    def jpeg(self, pixels: torch.Tensor) -> torch.Tensor:
        images = pixels.detach().round().clamp(*PIXEL_RANGE).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        out = []
        for image in images:
            buffer = io.BytesIO()
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, "JPEG", quality=self.quality)
            mode = "L" if image.shape[-1] == 1 else "RGB"
            decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(mode))
            out.append(decoded.reshape(image.shape))
        return to_pixels(np.stack(out)) if out else pixels.detach().clone()

    def median(self, pixels: torch.Tensor) -> torch.Tensor:
        n, c, h, w = pixels.shape
        pad = self.kernel // 2
        padded = F.pad(pixels.detach(), (pad, pad, pad, pad), mode="reflect" if min(h, w) > pad else "replicate")
        windows = F.unfold(padded, self.kernel)  # (N, C * k * k, H * W)
        return windows.view(n, c, self.kernel**2, h * w).median(dim=2).values.view(n, c, h, w)


def build_purifier(name: str | None, quality: int = 75, kernel: int = 3) -> Purifier | None:
    """The purification `purify` names (null: none), its settings checked before any data is read."""
    return None if name is None else Purifier(name, quality, kernel)
