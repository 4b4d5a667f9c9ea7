"""L-infinity attacks on a verifier at its calibrated threshold (metric.attack): impersonation pushes impostor pairs
above it, dodging pushes genuine pairs below it, at each budget of the `attack=fgsm|pgd` config."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from datamodules.normalisation import PIXEL_RANGE, normalise, to_pixels
from metric.attacks.linf import linf_ascent
from metric.errors import ConfigError, build_from_config
from metric.report.plots import plot_attack_success, plot_attacked_probes
from metric.scoring.embed import embed_batch, embed_images
from metric.scoring.load import load_for_eval
from metric.scoring.matchers import Matcher
from metric.scoring.pairs import sample_pairs

KINDS = ("fgsm", "pgd")


@dataclass(frozen=True)
class LinfAttack:
    """`attack=fgsm|pgd`: FGSM takes one signed step of eps; PGD takes `steps` steps of `step_size` (null: 2.5 eps /
    steps), projected back into the eps ball each time. Budgets are pixel values (of 255)."""

    name: str
    eps: list[float] = field(default_factory=lambda: [0.0])
    steps: int = 1
    step_size: float | None = None

    def __post_init__(self) -> None:
        if self.name not in KINDS:
            raise ConfigError(f"attack={self.name!r} is not one of {', '.join(KINDS)}.")
        budgets = [float(e) for e in self.eps]
        if any(e < 0 for e in budgets):
            raise ConfigError(f"attack.eps={budgets}: budgets are >= 0, in pixel values of 255 (e.g. [0,1,2,4,8]).")
        object.__setattr__(self, "eps", budgets)

    def perturb(self, net: torch.nn.Module, matcher: Matcher, probes: torch.Tensor, targets: torch.Tensor,
                eps: float, raise_score: bool) -> torch.Tensor:
        """Adversarial probes (float pixel values, N x C x H x W) within |delta|_inf <= eps and the pixel range:
        raise_score=True pushes each probe's score against its reference embedding in `targets` up
        (impersonation), False pushes it down (dodging)."""
        if eps == 0:
            return probes.clone()
        direction = 1.0 if raise_score else -1.0

        def objective(adv: torch.Tensor) -> torch.Tensor:
            return direction * matcher.score(net(normalise(adv)), targets).sum()

        return linf_ascent(objective, probes, eps, *PIXEL_RANGE, self.name, self.steps, self.step_size)


def attack_pairs(attack: LinfAttack, net, matcher: Matcher, pixels: torch.Tensor, pairs: np.ndarray,
                 targets: torch.Tensor, eps: float, raise_score: bool, batch: int = 64) -> tuple[np.ndarray, torch.Tensor]:
    """Scores after the attack, and the attacked probes; `targets` are the pairs' reference embeddings."""
    scores, attacked = [], []
    for start in range(0, len(pairs), batch):
        probes, refs = pixels[pairs[start : start + batch, 0]], targets[start : start + batch]
        adv = attack.perturb(net, matcher, probes, refs, eps, raise_score)
        with torch.no_grad():
            scores.append(matcher.score(embed_batch(net, normalise(adv)), refs).numpy())
        attacked.append(adv)
    if not pairs.size:
        return np.zeros(0, np.float32), pixels[:0]
    return np.concatenate(scores), torch.cat(attacked)


def run_attack(cfg: DictConfig) -> dict:
    """Every budget of `cfg.attack` against the test identities, at the checkpoint's calibrated threshold; writes
    summary.json, attack_success.png and attacked_probes.png into the run directory."""
    attack: LinfAttack = build_from_config(cfg.attack)
    loaded = load_for_eval(cfg.ckpt, matcher=cfg.get("matcher"), datamodule=cfg.datamodule, calibrated=True,
                           needs_torch=f"attack={attack.name} (it follows the gradient of the score)")
    threshold = float(loaded.calibration()["threshold"])
    net, matcher = loaded.net.eval(), loaded.matcher
    for p in net.parameters():
        p.requires_grad_(False)
    split = loaded.datamodule.splits[cfg.split]
    pixels = to_pixels(split.images)
    impostor = sample_pairs(split.labels, False, cfg.max_pairs, cfg.seed)
    genuine = sample_pairs(split.labels, True, cfg.max_pairs, cfg.seed)
    # references are never perturbed: embed them once; eps 0 is the clean evaluation itself
    imp_targets = torch.from_numpy(embed_images(net, split.images[impostor[:, 1]]))
    gen_targets = torch.from_numpy(embed_images(net, split.images[genuine[:, 1]]))
    clean_imp, clean_probes = attack_pairs(attack, net, matcher, pixels, impostor, imp_targets, 0.0, True)
    clean_gen, _ = attack_pairs(attack, net, matcher, pixels, genuine, gen_targets, 0.0, False)
    rows, examples = [], None
    for eps in attack.eps:
        if eps == 0:
            (imp_scores, imp_adv), gen_scores = (clean_imp, clean_probes), clean_gen
        else:
            imp_scores, imp_adv = attack_pairs(attack, net, matcher, pixels, impostor, imp_targets, eps, True)
            gen_scores, _ = attack_pairs(attack, net, matcher, pixels, genuine, gen_targets, eps, False)
        budget = float((imp_adv - pixels[impostor[:, 0]]).abs().max()) if len(impostor) else 0.0
        rows.append({"eps": eps, "impersonation_success": float((imp_scores >= threshold).mean()),
                     "dodging_frr": float((gen_scores < threshold).mean()), "max_perturbation": budget})
        examples = (imp_adv, imp_scores, eps)
    summary = {
        "checkpoint": str(Path(cfg.ckpt).resolve()), "attack": attack.name,
        "steps": attack.steps if attack.name == "pgd" else 1, "matcher": matcher.name, "threshold": threshold,
        "split": cfg.split, "impostor_pairs": int(len(impostor)), "genuine_pairs": int(len(genuine)),
        "clean_far": float((clean_imp >= threshold).mean()), "clean_frr": float((clean_gen < threshold).mean()),
        "rows": rows,
    }
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_attack_success(rows, attack.name, threshold, out / "attack_success.png")
    if examples is not None and len(impostor):
        adv, adv_scores, eps = examples
        plot_attacked_probes(split.images[impostor[:, 0]], clean_imp, adv.permute(0, 2, 3, 1).numpy(), adv_scores,
                             eps, threshold, out / "attacked_probes.png")
    return summary


def format_rows(summary: dict) -> str:
    lines = [f"{summary['attack'].upper()} on {summary['impostor_pairs']} impostor and {summary['genuine_pairs']} "
             f"genuine test pairs; {summary['matcher']} threshold {summary['threshold']:.4f} "
             f"(clean FAR {summary['clean_far']:.4f}, FRR {summary['clean_frr']:.4f})",
             f"{'eps/255':>8} {'impersonation success':>22} {'dodging FRR':>12} {'max |delta|*255':>16}"]
    for r in summary["rows"]:
        lines.append(f"{r['eps']:8g} {r['impersonation_success']:22.4f} {r['dodging_frr']:12.4f} {r['max_perturbation']:16.3f}")
    return "\n".join(lines)
