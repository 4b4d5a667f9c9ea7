"""`attack=uap`: one universal perturbation per budget eps, learned on the training identities only, then applied
unchanged to every test probe (identities never seen while crafting), optionally also against a second model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from datamodules.normalisation import PIXEL_RANGE, normalise, to_pixels
from metric.attacks.transfer import Transfer, check_transferable
from metric.attacks.verifier import PairSet, Verifier
from metric.errors import ConfigError, check_number
from metric.report.plots import plot_perturbation, plot_probe_rows, plot_success_curves
from metric.scoring.embed import embed_images
from metric.scoring.load import LoadedModel, load_for_eval
from metric.scoring.matchers import Matcher
from metric.scoring.pairs import sample_pairs

GOALS = ("impersonation", "dodging")
TRAIN_PAIRS = 5000  # training pairs the batches are drawn from (a seeded sample)


@dataclass(frozen=True)
class UapAttack:
    """`attack=uap`: for each budget in `eps` (pixel values of 255), `steps` signed-gradient steps of `step_size`
    (null: 2.5 eps / steps, as for PGD), each on `batch` training pairs, projected back into the eps ball;
    `goal=impersonation` raises impostor-pair scores, `dodging` lowers genuine-pair scores. `transfer_ckpt`: a
    second checkpoint the same perturbations are tried on, at its own calibrated threshold, on its own crops of the
    same photos (metric.attacks.transfer)."""

    name: str = "uap"
    eps: list[float] = field(default_factory=lambda: [0.0, 4.0, 8.0, 16.0])
    goal: str = "impersonation"
    steps: int = 100
    batch: int = 32
    step_size: float | None = None
    transfer_ckpt: str | None = None

    def __post_init__(self) -> None:
        budgets = self.eps if isinstance(self.eps, (list, tuple)) else [self.eps]
        if not budgets or any(
            isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 <= e <= 255 for e in budgets
        ):
            raise ConfigError(
                f"attack.eps={self.eps!r}: budgets are numbers from 0 to 255 (pixel values), e.g. [0,4,8,16]."
            )
        object.__setattr__(self, "eps", [float(e) for e in budgets])
        if self.goal not in GOALS:
            raise ConfigError(f"attack.goal={self.goal!r} is not one of {', '.join(GOALS)}.")
        check_number(self.steps, "attack.steps", 1, integer=True)
        check_number(self.batch, "attack.batch", 1, integer=True)
        size = self.step_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0):
            raise ConfigError(
                f"attack.step_size={self.step_size!r} must be a number > 0 (pixel values), or null for "
                "2.5 * eps / steps."
            )

    @property
    def genuine(self) -> bool:
        return self.goal == "dodging"


def craft_uap(
    net: torch.nn.Module,
    matcher: Matcher,
    images: np.ndarray,
    labels: np.ndarray,
    eps: float,
    goal: str,
    steps: int = 100,
    batch: int = 32,
    step_size: float | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """One perturbation (C, H, W, pixel values, |delta|_inf <= eps) learned from these images (uint8, N x H x W x C)
    and identity labels alone: the training split's, so no test identity is ever seen. Each step takes the sign of
    the gradient of the mean score over `batch` pairs (impostor pairs raised for impersonation, genuine pairs
    lowered for dodging) of probes plus delta, clipped to the pixel range, against their clean references."""
    delta = torch.zeros(images.shape[3], images.shape[1], images.shape[2])
    if eps == 0:
        return delta
    genuine = goal == "dodging"
    pairs = sample_pairs(labels, genuine, TRAIN_PAIRS, seed)
    if not len(pairs):
        raise ConfigError(
            f"attack=uap goal={goal} needs {'genuine' if genuine else 'impostor'} pairs in the training "
            "split, which has none."
        )
    pixels = to_pixels(images)
    references = torch.from_numpy(embed_images(net, images))
    rng = np.random.default_rng(seed)
    direction, alpha = (-1.0 if genuine else 1.0), step_size or 2.5 * eps / steps
    for _ in range(steps):
        chosen = pairs[rng.choice(len(pairs), min(batch, len(pairs)), replace=False)]
        delta.requires_grad_(True)
        adv = (pixels[chosen[:, 0]] + delta).clamp(*PIXEL_RANGE)
        objective = direction * matcher.score(net(normalise(adv)), references[chosen[:, 1]]).mean()
        (grad,) = torch.autograd.grad(objective, delta)
        delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
    return delta.detach()


def apply(delta: torch.Tensor, probes: torch.Tensor) -> torch.Tensor:
    """Probes (float pixel values) with the perturbation added, clipped to the pixel range."""
    return (probes + delta).clamp(*PIXEL_RANGE)


def load_transfer(attack: UapAttack, preprocess: dict) -> LoadedModel | None:
    """The second model of `attack.transfer_ckpt` with its calibrated threshold, checked to read the attacked model's
    crops, or other aligned crops of the same channels, before any data is read. It scores with its own matcher
    rule (that of metric.model.checkpoint.matcher_name) at its own threshold."""
    if attack.transfer_ckpt is None:
        return None
    if not Path(attack.transfer_ckpt).is_file():
        raise ConfigError(
            f"attack.transfer_ckpt={attack.transfer_ckpt!r}: no such file. Give a second checkpoint "
            "written by metric.train (or a calibrated bundle), or null."
        )
    other = load_for_eval(attack.transfer_ckpt, calibrated=True)
    check_transferable(preprocess, other.preprocess, attack.transfer_ckpt)
    return other


def run_uap(
    attack: UapAttack,
    verifier: Verifier,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    impostor: PairSet,
    genuine: PairSet,
    transfer: Transfer | None,
    seed: int,
    out: Path,
) -> dict:
    """Every budget: a perturbation crafted on the training images alone, its success on the test pairs of the goal
    (and on the transfer model's, on its own crops, the perturbation carried into them), and uap.png,
    uap_probes.png and attack_success.png in `out`."""
    pairs = genuine if attack.genuine else impostor
    other = None
    summary = {
        "goal": attack.goal,
        "steps": attack.steps,
        "batch": attack.batch,
        "train_images": int(len(train_images)),
        "train_identities": int(np.unique(train_labels).size),
    }
    if transfer is not None:
        other = transfer.verifier
        summary["transfer"], other_pairs = transfer_summary(attack, transfer, impostor, genuine, test_images)
    rows, last = [], None
    for eps in attack.eps:
        delta = craft_uap(
            verifier.net,
            verifier.matcher,
            train_images,
            train_labels,
            eps,
            attack.goal,
            attack.steps,
            attack.batch,
            attack.step_size,
            seed,
        )
        adv = apply(delta, pairs.probes)
        scores = verifier.scores(adv, pairs.targets)
        row = {
            "eps": eps,
            "success": pairs.success(scores, verifier.threshold),
            "error_rate": pairs.error_rate(scores, verifier.threshold),
            "mean_score": float(scores.mean()) if len(scores) else 0.0,
            "max_perturbation": float(delta.abs().max()),
        }
        if other is not None:
            other_scores = other.scores(apply(transfer.warp(delta), other_pairs.probes), other_pairs.targets)
            row["transfer_success"] = other_pairs.success(other_scores, other.threshold)
            row["transfer_error_rate"] = other_pairs.error_rate(other_scores, other.threshold)
        rows.append(row)
        last = (delta, eps, adv, scores)
    plot_uap(attack, verifier, pairs, rows, last, other is not None, out)
    return {**summary, "rows": rows}


def transfer_summary(
    attack: UapAttack, transfer: Transfer, impostor: PairSet, genuine: PairSet, test_images: np.ndarray
) -> tuple[dict, PairSet]:
    """The transfer model's entry of the summary (its clean rates on its own crops of the test pairs) and the pairs
    of the goal it is attacked on."""
    other = transfer.verifier
    sets = {}
    for kind, attacked in (("impostor", impostor), ("genuine", genuine)):
        mapped, kept = transfer.pairs(attacked.pairs)
        sets[kind] = PairSet.build(other, transfer.images, mapped, genuine=kind == "genuine")
        sets[f"{kind}_kept"] = int(kept.sum())
    other_pairs = sets["genuine" if attack.genuine else "impostor"]
    summary = {
        "checkpoint": str(Path(transfer.checkpoint).resolve()),
        "matcher": other.matcher.name,
        "threshold": other.threshold,
        "clean_far": sets["impostor"].error_rate(sets["impostor"].clean, other.threshold),
        "clean_frr": sets["genuine"].error_rate(sets["genuine"].clean, other.threshold),
        "pairs_in_its_crops": sets["genuine_kept" if attack.genuine else "impostor_kept"],
        "attackable_pairs": other_pairs.attackable(other.threshold),
        "crop": "the same crops"
        if transfer.images.shape[1:] == test_images.shape[1:]
        and transfer.index.tolist() == list(range(len(test_images)))
        else "its own crops of the same photos (the perturbation carried by the eye points)",
    }
    return summary, other_pairs


def plot_uap(
    attack: UapAttack,
    verifier: Verifier,
    pairs: PairSet,
    rows: list[dict],
    last: tuple,
    transferred: bool,
    out: Path,
) -> None:
    """uap.png (the last budget's perturbation), uap_probes.png (the probes it turned) and attack_success.png (success
    per budget, and on the transfer model when `transferred`) in `out`."""
    delta, eps, adv, scores = last
    plot_perturbation(delta.permute(1, 2, 0).numpy(), eps, out / "uap.png")
    shown = pairs.showcase(scores, verifier.threshold)
    if len(shown):
        plot_probe_rows(
            [
                ("clean", pairs.probes[shown].permute(0, 2, 3, 1).numpy(), pairs.clean[shown]),
                (f"+ UAP eps {eps:g}", adv[shown].permute(0, 2, 3, 1).numpy(), scores[shown]),
            ],
            verifier.threshold,
            f"test {'genuine' if pairs.genuine else 'impostor'} probes decided right "
            f"when clean, with the universal perturbation (eps {eps:g}/255; those it turned first)",
            out / "uap_probes.png",
        )
    curves = {f"{attack.goal} success": [r["success"] for r in rows]}
    if transferred:
        curves[f"{attack.goal} success, transfer model"] = [r["transfer_success"] for r in rows]
    plot_success_curves(
        attack.eps,
        curves,
        "eps (pixel values, of 255)",
        f"UAP ({attack.goal}) at threshold {verifier.threshold:.3f}",
        out / "attack_success.png",
    )


def format_uap_rows(summary: dict) -> list[str]:
    transfer = summary.get("transfer")
    rate = "FRR" if summary["goal"] == "dodging" else "FAR"
    lines = [
        f"{'eps/255':>8} {summary['goal'] + ' success':>22} {rate:>7} {'max |delta|*255':>16}"
        + (f" {'transfer success':>17} {'transfer ' + rate:>12}" if transfer else "")
    ]
    for r in summary["rows"]:
        lines.append(
            f"{r['eps']:8g} {r['success']:22.4f} {r['error_rate']:7.4f} {r['max_perturbation']:16.3f}"
            + (f" {r['transfer_success']:17.4f} {r['transfer_error_rate']:12.4f}" if transfer else "")
        )
    return lines
