"""How every attack is judged: input purification at inference (`purify=null|jpeg|median`), then the embedding of
each probe and its score against its reference's embedding at the calibrated threshold (metric.attack)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from datamodules.normalisation import PIXEL_RANGE, normalise, to_pixels
from metric.errors import ConfigError
from metric.scoring.embed import embed_batch, embed_images
from metric.scoring.matchers import Matcher

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
        elif (isinstance(self.kernel, bool) or not isinstance(self.kernel, int) or self.kernel < 3
              or self.kernel % 2 == 0):
            raise ConfigError(f"purify_kernel={self.kernel!r} must be an odd integer >= 3 (the median filter's side, "
                              "e.g. 3).")

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


@dataclass
class Verifier:
    """A frozen net and matcher at its calibrated threshold, seeing every image through the purification (if any):
    what an attack has to fool. Attacks are optimised on the net alone (a non-adaptive evaluation of purification)."""

    net: torch.nn.Module
    matcher: Matcher
    threshold: float
    purifier: Purifier | None = None
    batch: int = 64

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Embeddings of float pixel values (N, C, H, W) after the purification, `batch` at a time."""
        with torch.no_grad():
            parts = [embed_batch(self.net, normalise(self.purify(pixels[start : start + self.batch])))
                     for start in range(0, len(pixels), self.batch)]
        return torch.cat(parts) if parts else torch.zeros(0, 0)

    def purify(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels if self.purifier is None else self.purifier(pixels)

    def references(self, images: np.ndarray) -> torch.Tensor:
        """Reference embeddings of uint8 images (N, H, W, C): references are never attacked, but a deployed verifier
        purifies every image it embeds, enrolment included."""
        if self.purifier is None:
            return torch.from_numpy(embed_images(self.net, images))
        return self.embed(to_pixels(images))

    def scores(self, probes: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
        """Scores of probes (float pixel values, N x C x H x W) against their references' embeddings, after the
        purification, `batch` at a time."""
        out = []
        with torch.no_grad():
            for start in range(0, len(probes), self.batch):
                inputs = normalise(self.purify(probes[start : start + self.batch]))
                refs = targets[start : start + self.batch]
                out.append(self.matcher.score(embed_batch(self.net, inputs), refs).numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def attack_scores(self, probes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Differentiable scores (no purification): the objective every attack climbs."""
        return self.matcher.score(self.net(normalise(probes)), targets)


@dataclass
class PairSet:
    """Test pairs of one kind, ready to attack: impostor pairs are attacked by impersonation (success: accepted),
    genuine pairs by dodging (success: rejected). The first image of each pair is the probe; the second is the
    reference, never perturbed."""

    pairs: np.ndarray  # (P, 2) indices into the split
    probes: torch.Tensor  # float pixel values (P, C, H, W)
    targets: torch.Tensor  # reference embeddings (P, D)
    clean: np.ndarray  # clean scores, through the purification
    genuine: bool

    @classmethod
    def build(cls, verifier: Verifier, images: np.ndarray, pairs: np.ndarray, genuine: bool) -> "PairSet":
        probes = to_pixels(images[pairs[:, 0]])
        targets = verifier.references(images[pairs[:, 1]])
        return cls(pairs, probes, targets, verifier.scores(probes, targets), genuine)

    @property
    def raise_score(self) -> bool:
        return not self.genuine

    def success(self, scores: np.ndarray, threshold: float) -> float:
        """Share of pairs the attack won: impostors accepted (score >= threshold), genuines rejected."""
        if not len(scores):
            return 0.0
        won = scores < threshold if self.genuine else scores >= threshold
        return float(won.mean())
