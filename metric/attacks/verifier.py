"""How every attack is judged: each image through the input purification (if any), embedded, and each probe scored
against its reference's embedding at the calibrated threshold; success is the share of pairs the attack turns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from datamodules.normalisation import normalise, to_pixels
from metric.attacks.purify import Purifier
from metric.scoring.embed import embed_batch, embed_images
from metric.scoring.matchers import Matcher


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
            parts = [
                embed_batch(self.net, normalise(self.purify(pixels[start : start + self.batch])))
                for start in range(0, len(pixels), self.batch)
            ]
        return torch.cat(parts) if parts else torch.zeros(0, 0)

    def purify(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels if self.purifier is None else self.purifier(pixels)

    def references(self, images: np.ndarray) -> torch.Tensor:
        """Embeddings of uint8 images (N, H, W, C), `batch` at a time: references are never attacked, but a deployed
        verifier purifies every image it embeds, enrolment included."""
        if self.purifier is None:
            return torch.from_numpy(embed_images(self.net, images))
        parts = [
            self.embed(to_pixels(images[start : start + self.batch])) for start in range(0, len(images), self.batch)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, 0)

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
    """Test pairs of one kind, ready to attack: impostor pairs are attacked by impersonation (turned: accepted),
    genuine pairs by dodging (turned: rejected); success is the share of the pairs decided right when clean that
    the attack turns. The first image of each pair is the probe; the second is the reference, never perturbed."""

    pairs: np.ndarray  # (P, 2) indices into the split
    probes: torch.Tensor  # float pixel values (P, C, H, W)
    targets: torch.Tensor  # reference embeddings (P, D)
    clean: np.ndarray  # clean scores, through the purification
    genuine: bool

    @classmethod
    def build(cls, verifier: Verifier, images: np.ndarray, pairs: np.ndarray, genuine: bool) -> PairSet:
        probes = to_pixels(images[pairs[:, 0]])
        targets = verifier.references(images[pairs[:, 1]])
        return cls(pairs, probes, targets, verifier.scores(probes, targets), genuine)

    @property
    def raise_score(self) -> bool:
        return not self.genuine

    def wrong(self, scores: np.ndarray, threshold: float) -> np.ndarray:
        """Per pair: decided wrong at the threshold (an impostor accepted, score >= threshold; a genuine rejected)."""
        return scores < threshold if self.genuine else scores >= threshold

    def error_rate(self, scores: np.ndarray, threshold: float) -> float:
        """Share of pairs decided wrong: the FAR of impostor pairs, the FRR of genuine pairs."""
        return float(self.wrong(scores, threshold).mean()) if len(scores) else 0.0

    def success(self, scores: np.ndarray, threshold: float, clean: np.ndarray | None = None) -> float:
        """Share of the pairs decided right when clean (`clean` scores; default: this set's) that the attacked
        `scores` decide wrong: impostors newly accepted, genuines newly rejected. 0 when no pair was decided right,
        and exactly 0 when the attack changes nothing."""
        right = ~self.wrong(self.clean if clean is None else clean, threshold)
        return float(self.wrong(scores, threshold)[right].mean()) if right.any() else 0.0

    def attackable(self, threshold: float) -> int:
        """Pairs decided right when clean: the pairs a success rate is a share of."""
        return int((~self.wrong(self.clean, threshold)).sum())

    def showcase(self, scores: np.ndarray, threshold: float, count: int = 6) -> np.ndarray:
        """Up to `count` pairs to show: pairs decided right when clean, those the attack turned first, each group
        spread evenly over the set, at most one pair per probe image."""
        right = ~self.wrong(self.clean, threshold)
        turned = right & self.wrong(scores, threshold)
        chosen: list[int] = []
        probes: set[int] = set()
        for group in (np.flatnonzero(turned), np.flatnonzero(right & ~turned)):
            if not len(group):
                continue
            for k in group[np.unique(np.linspace(0, len(group) - 1, min(len(group), 4 * count)).round().astype(int))]:
                if len(chosen) < count and int(self.pairs[k, 0]) not in probes:
                    chosen.append(int(k))
                    probes.add(int(self.pairs[k, 0]))
        return np.asarray(chosen, dtype=int)
