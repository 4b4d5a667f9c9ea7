"""`attack=patch`: physical-world patches (adversarial eyeglass frames by default) optimised per attacked pair with
Adam under expectation over transformation, with optional printability penalties; success against mask area.

Budget: an L0 / region budget. Inside the mask every pixel is free in [0, 255]; outside it nothing changes (the
composite is torch.where(mask, pattern, probe), so outside pixels are the probe's bit for bit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from datamodules.normalisation import PIXEL_RANGE
from metric.attacks.eot import eot_scores, random_views, view_error_rate, view_success
from metric.attacks.masks import build_masks, check_mask
from metric.attacks.printability import non_printability, total_variation
from metric.attacks.verifier import PairSet, Verifier
from metric.errors import ConfigError, check_number
from metric.report.plots import plot_masks, plot_probe_rows, plot_success_curves

EVAL_SEED_OFFSET = 1  # the transformations drawn at test time come from seed + 1, never the optimisation's draws


@dataclass(frozen=True)
class PatchAttack:
    """`attack=patch`: per attacked pair, a pattern inside `mask` (drawn at each of `mask_scale`; 0: the empty mask,
    the attack off) optimised by Adam for `steps` steps of `lr` (pixel values), over `eot_samples` random views per
    step when `eot`, with non-printability and total-variation penalties weighted by `nps_weight` and `tv_weight`;
    `batch` pairs at a time.
    `assume_aligned` takes crops of a face=none checkpoint as aligned to the arcface template (margin 0)."""

    name: str = "patch"
    mask: str = "glasses"
    mask_scale: list[float] = field(default_factory=lambda: [0.0, 0.5, 0.75, 1.0])
    assume_aligned: bool = False
    steps: int = 40
    lr: float = 16.0
    eot: bool = True
    eot_samples: int = 4
    nps_weight: float = 0.0
    tv_weight: float = 0.0
    batch: int = 32

    def __post_init__(self) -> None:
        check_mask(self.mask)
        scales = self.mask_scale if isinstance(self.mask_scale, (list, tuple)) else [self.mask_scale]
        if not scales or any(isinstance(s, bool) or not isinstance(s, (int, float)) or s < 0 for s in scales):
            raise ConfigError(
                f"attack.mask_scale={self.mask_scale!r} must be a list of sizes >= 0 (multiples of the "
                "mask's size at scale 1, set by the eye distance; 0 is an empty mask, the attack off), "
                "e.g. [0,0.5,0.75,1.0]."
            )
        object.__setattr__(self, "mask_scale", [float(s) for s in scales])
        check_number(self.steps, "attack.steps", 0, integer=True)
        check_number(self.lr, "attack.lr", 0, above=True)
        check_number(self.eot_samples, "attack.eot_samples", 1, integer=True)
        check_number(self.nps_weight, "attack.nps_weight", 0)
        check_number(self.tv_weight, "attack.tv_weight", 0)
        check_number(self.batch, "attack.batch", 1, integer=True)

    def masks(self, preprocess: dict) -> list[np.ndarray]:
        """One mask per scale for the checkpoint's crops; every refusal comes before any data is read."""
        return build_masks(preprocess, self.mask, self.mask_scale, self.assume_aligned)

    def patterns(
        self,
        verifier: Verifier,
        probes: torch.Tensor,
        targets: torch.Tensor,
        mask: np.ndarray,
        raise_score: bool,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Optimised patterns (float pixel values in [0, 255], like probes) for one batch of pairs; the patterned
        probes are composite(probes, patterns, mask)."""
        region = torch.from_numpy(mask)
        pattern = torch.full_like(probes, sum(PIXEL_RANGE) / 2)  # mid-grey frames to start from
        if not region.any():
            return pattern
        pattern.requires_grad_(True)
        optimiser = torch.optim.Adam([pattern], lr=self.lr)
        direction = 1.0 if raise_score else -1.0
        weight = region.float()
        for _ in range(self.steps):
            adv = composite(probes, pattern, region)
            if self.eot:
                views = random_views(adv.repeat(self.eot_samples, 1, 1, 1), generator)
                scores = verifier.attack_scores(views, targets.repeat(self.eot_samples, 1))
                scores = scores.view(self.eot_samples, len(probes)).mean(0)
            else:
                scores = verifier.attack_scores(adv, targets)
            objective = direction * scores
            if self.nps_weight:
                objective = objective - self.nps_weight * non_printability(pattern, weight)
            if self.tv_weight:
                objective = objective - self.tv_weight * total_variation(pattern, weight)
            optimiser.zero_grad()
            (-objective.sum()).backward()
            optimiser.step()
            with torch.no_grad():
                pattern.clamp_(*PIXEL_RANGE)
        return pattern.detach()


def composite(probes: torch.Tensor, patterns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The probes wearing the patterns: the pattern inside the mask (H, W, bool), the probe's own pixels outside."""
    return torch.where(mask, patterns, probes)


def attack_set(attack: PatchAttack, verifier: Verifier, pairs: PairSet, mask: np.ndarray, seed: int) -> dict:
    """Patch every pair of the set, `attack.batch` at a time; their scores without and under random views, and the
    patterns' mean printability and variation."""
    generator = torch.Generator().manual_seed(seed)
    region, weight = torch.from_numpy(mask), torch.from_numpy(mask).float()
    patched, nps, tv = [], [], []
    for start in range(0, len(pairs.pairs), attack.batch):
        probes, targets = pairs.probes[start : start + attack.batch], pairs.targets[start : start + attack.batch]
        patterns = attack.patterns(verifier, probes, targets, mask, pairs.raise_score, generator)
        patched.append(composite(probes, patterns, region))
        with torch.no_grad():
            nps.append(non_printability(patterns, weight))
            tv.append(total_variation(patterns, weight))
    adv = torch.cat(patched) if patched else pairs.probes.clone()
    scores = verifier.scores(adv, pairs.targets)
    views = eot_scores(verifier, adv, pairs.targets, attack.eot_samples, seed + EVAL_SEED_OFFSET)
    return {
        "adv": adv,
        "scores": scores,
        "views": views,
        "nps": torch.cat(nps).numpy() if nps else np.zeros(0),
        "tv": torch.cat(tv).numpy() if tv else np.zeros(0),
    }


def run_patch(
    attack: PatchAttack,
    masks: list[np.ndarray],
    verifier: Verifier,
    impostor: PairSet,
    genuine: PairSet,
    seed: int,
    out: Path,
) -> dict:
    """Every mask scale against the test pairs: rows of success without and under random views (one per scale;
    under views, judged against the clean probes under the same views), the FAR and FRR after the attack, the clean
    rates under those views, and mask.png, patched_probes.png and attack_success.png in `out`."""
    threshold = verifier.threshold
    clean_views = {
        name: eot_scores(verifier, s.probes, s.targets, attack.eot_samples, seed + EVAL_SEED_OFFSET)
        for name, s in (("imp", impostor), ("gen", genuine))
    }
    rows, last = [], None
    for scale, mask in zip(attack.mask_scale, masks):
        row, last = scale_row(attack, verifier, impostor, genuine, scale, mask, clean_views, seed)
        rows.append(row)
    plot_patch(attack, masks, impostor, rows, last, threshold, out)
    return {
        "mask": attack.mask,
        "steps": attack.steps,
        "lr": attack.lr,
        "eot": attack.eot,
        "eot_samples": attack.eot_samples,
        "nps_weight": attack.nps_weight,
        "tv_weight": attack.tv_weight,
        "clean_far_eot": view_error_rate(impostor, clean_views["imp"], threshold),
        "clean_frr_eot": view_error_rate(genuine, clean_views["gen"], threshold),
        "rows": rows,
    }


def scale_row(
    attack: PatchAttack,
    verifier: Verifier,
    impostor: PairSet,
    genuine: PairSet,
    scale: float,
    mask: np.ndarray,
    clean_views: dict[str, np.ndarray],
    seed: int,
) -> tuple[dict, dict]:
    """One mask scale against the impostor and genuine test pairs: its row of run_patch, and the impostor pairs'
    attack_set (the showcase of the last scale reads it)."""
    threshold = verifier.threshold
    imp = attack_set(attack, verifier, impostor, mask, seed)
    gen = attack_set(attack, verifier, genuine, mask, seed)
    both = np.concatenate([imp["nps"], gen["nps"]]), np.concatenate([imp["tv"], gen["tv"]])
    row = {
        "mask_scale": scale,
        "mask_pixels": int(mask.sum()),
        "mask_area_share": float(mask.mean()),
        "impersonation_success": impostor.success(imp["scores"], threshold),
        "impersonation_success_eot": view_success(impostor, imp["views"], clean_views["imp"], threshold),
        "dodging_success": genuine.success(gen["scores"], threshold),
        "dodging_success_eot": view_success(genuine, gen["views"], clean_views["gen"], threshold),
        "far": impostor.error_rate(imp["scores"], threshold),
        "frr": genuine.error_rate(gen["scores"], threshold),
        "mean_nps": float(both[0].mean()) if both[0].size else 0.0,
        "mean_tv": float(both[1].mean()) if both[1].size else 0.0,
    }
    return row, imp


def plot_patch(
    attack: PatchAttack,
    masks: list[np.ndarray],
    impostor: PairSet,
    rows: list[dict],
    last: dict | None,
    threshold: float,
    out: Path,
) -> None:
    """mask.png (the masks on the first probe), patched_probes.png (the impostor probes the last scale turned) and
    attack_success.png (success against mask area) in `out`."""
    images = impostor.probes.permute(0, 2, 3, 1).numpy()
    plot_masks(images[0] if len(images) else None, masks, attack.mask_scale, attack.mask, out / "mask.png")
    shown = impostor.showcase(last["scores"], threshold) if last is not None else []
    if len(shown):
        plot_probe_rows(
            [
                ("clean", images[shown], impostor.clean[shown]),
                (
                    f"{attack.mask} x{attack.mask_scale[-1]:g}",
                    last["adv"][shown].permute(0, 2, 3, 1).numpy(),
                    last["scores"][shown],
                ),
            ],
            threshold,
            f"impostor probes rejected when clean, wearing the optimised {attack.mask} (scale "
            f"{attack.mask_scale[-1]:g}; those it turned first); scores before and after",
            out / "patched_probes.png",
        )
    x = [r["mask_area_share"] for r in rows]
    plot_success_curves(
        x,
        {name: [r[key] for r in rows] for name, key in SUCCESS_CURVES},
        "mask area (share of pixels)",
        f"PATCH ({attack.mask}) at threshold {threshold:.3f}",
        out / "attack_success.png",
    )


SUCCESS_CURVES = (
    ("impersonation", "impersonation_success"),
    ("impersonation, random views", "impersonation_success_eot"),
    ("dodging", "dodging_success"),
    ("dodging, random views", "dodging_success_eot"),
)


def format_patch_rows(summary: dict) -> list[str]:
    lines = [
        f"{'scale':>6} {'area':>7} {'imp':>7} {'imp EOT':>8} {'dodge':>7} {'dodge EOT':>9} {'FAR':>7} {'FRR':>7} "
        f"{'NPS':>7} {'TV':>7}"
    ]
    for r in summary["rows"]:
        lines.append(
            f"{r['mask_scale']:6g} {r['mask_area_share']:7.4f} {r['impersonation_success']:7.4f} "
            f"{r['impersonation_success_eot']:8.4f} {r['dodging_success']:7.4f} "
            f"{r['dodging_success_eot']:9.4f} {r['far']:7.4f} {r['frr']:7.4f} "
            f"{r['mean_nps']:7.4f} {r['mean_tv']:7.4f}"
        )
    return lines
