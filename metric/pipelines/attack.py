"""Attacks on a verifier at its calibrated threshold (metric.attack), one per `attack=fgsm|pgd|patch|uap`:
impersonation pushes impostor pairs above it, dodging pushes genuine pairs below it. Every image is judged through
the input purification `purify` (metric.attacks.purify, by metric.attacks.verifier); the attacks are optimised
without it (non-adaptive)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from datamodules.normalisation import PIXEL_RANGE, normalise
from metric.attacks.linf import linf_ascent
from metric.attacks.patch import PatchAttack, format_patch_rows, run_patch
from metric.attacks.purify import build_purifier
from metric.attacks.transfer import Transfer, crop_warp, same_crop
from metric.attacks.uap import UapAttack, format_uap_rows, load_transfer, run_uap
from metric.attacks.verifier import PairSet, Verifier
from metric.config_factory import build_from_config
from metric.errors import ConfigError
from metric.report.plots import plot_probe_rows, plot_success_curves
from metric.scoring.load import LoadedModel, attach_datamodule, load_for_eval
from metric.scoring.matchers import Matcher
from metric.scoring.pairs import sample_pairs
from metric.scoring.protocols import embeddings_eer

KINDS = ("fgsm", "pgd")
NON_ADAPTIVE = (
    "the attacks are optimised on the model alone, without the purification, which is applied when "
    "they are judged (a non-adaptive evaluation: an attacker who knows it may do better)"
)


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

    def perturb(
        self,
        net: torch.nn.Module,
        matcher: Matcher,
        probes: torch.Tensor,
        targets: torch.Tensor,
        eps: float,
        raise_score: bool,
    ) -> torch.Tensor:
        """Adversarial probes (float pixel values, N x C x H x W) within |delta|_inf <= eps and the pixel range:
        raise_score=True pushes each probe's score against its reference embedding in `targets` up
        (impersonation), False pushes it down (dodging)."""
        if eps == 0:
            return probes.clone()
        direction = 1.0 if raise_score else -1.0

        def objective(adv: torch.Tensor) -> torch.Tensor:
            return direction * matcher.score(net(normalise(adv)), targets).sum()

        return linf_ascent(objective, probes, eps, *PIXEL_RANGE, self.name, self.steps, self.step_size)


Attack = LinfAttack | PatchAttack | UapAttack


def attack_pairs(
    attack: LinfAttack, verifier: Verifier, pairs: PairSet, eps: float, batch: int = 64
) -> tuple[np.ndarray, torch.Tensor]:
    """Scores after the attack (through the purification), and the attacked probes."""
    if eps == 0:
        return pairs.clean, pairs.probes.clone()
    attacked = [
        attack.perturb(
            verifier.net,
            verifier.matcher,
            pairs.probes[start : start + batch],
            pairs.targets[start : start + batch],
            eps,
            pairs.raise_score,
        )
        for start in range(0, len(pairs.pairs), batch)
    ]
    adv = torch.cat(attacked) if attacked else pairs.probes.clone()
    return verifier.scores(adv, pairs.targets), adv


SUCCESS_CURVES = (("impersonation", "impersonation_success"), ("dodging", "dodging_success"))


def outcome(
    threshold: float, impostor: PairSet, imp_scores: np.ndarray, genuine: PairSet, gen_scores: np.ndarray
) -> dict:
    """One budget's row: the success of each goal (the share of pairs decided right when clean that the attack
    turns: impostors accepted, genuines rejected; 0 when it changes nothing) and the FAR and FRR after it."""
    return {
        "impersonation_success": impostor.success(imp_scores, threshold),
        "dodging_success": genuine.success(gen_scores, threshold),
        "far": impostor.error_rate(imp_scores, threshold),
        "frr": genuine.error_rate(gen_scores, threshold),
    }


def run_linf(
    attack: LinfAttack, verifier: Verifier, impostor: PairSet, genuine: PairSet, images: np.ndarray, out: Path
) -> dict:
    """Every budget of an FGSM or PGD attack: rows of impersonation and dodging success, and two plots."""
    rows, examples = [], None
    for eps in attack.eps:
        imp_scores, imp_adv = attack_pairs(attack, verifier, impostor, eps)
        gen_scores, _ = attack_pairs(attack, verifier, genuine, eps)
        budget = float((imp_adv - impostor.probes).abs().max()) if len(impostor.pairs) else 0.0
        rows.append(
            {
                "eps": eps,
                **outcome(verifier.threshold, impostor, imp_scores, genuine, gen_scores),
                "max_perturbation": budget,
            }
        )
        examples = (imp_adv, imp_scores, eps)
    plot_success_curves(
        attack.eps,
        {name: [r[key] for r in rows] for name, key in SUCCESS_CURVES},
        "eps (pixel values, of 255)",
        f"{attack.name.upper()} at threshold {verifier.threshold:.3f}",
        out / "attack_success.png",
    )
    shown = impostor.showcase(examples[1], verifier.threshold) if examples is not None else []
    if len(shown):
        adv, adv_scores, eps = examples
        plot_probe_rows(
            [
                ("clean", images[impostor.pairs[shown, 0]], impostor.clean[shown]),
                (f"eps {eps:g}", adv[shown].permute(0, 2, 3, 1).numpy(), adv_scores[shown]),
            ],
            verifier.threshold,
            f"impostor probes rejected when clean, after {attack.name.upper()} at eps "
            f"{eps:g}/255 (those it turned first); scores before and after",
            out / "attacked_probes.png",
        )
    return {"steps": attack.steps if attack.name == "pgd" else 1, "rows": rows}


def frozen(net):
    """The net in eval mode with its weights out of every gradient (an attack differentiates the input only)."""
    net = net.eval()
    for p in getattr(net, "parameters", lambda: [])():
        p.requires_grad_(False)
    return net


def crop_preprocess(preprocess: dict, datamodule: DictConfig) -> dict:
    """The preprocessing of the crops this run attacks: the checkpoint's, with the face front end the datamodule asks
    for when it names one (e.g. a model trained on crops, evaluated on photos through face=dlib)."""
    face = datamodule.get("face")
    return preprocess if face is None else {**preprocess, "face": build_from_config(face).spec()}


def transfer_of_split(
    checkpoint: str, transfer: LoadedModel, attacked: LoadedModel, cfg: DictConfig, split, purifier
) -> Transfer:
    """The transfer model with its crops of the attacked split: the same crops, or its own front end's crops of the
    same photos (its own datamodule, the same data settings), matched photo by photo."""
    verifier = Verifier(frozen(transfer.net), transfer.matcher, float(transfer.calibration()["threshold"]), purifier)
    warp = crop_warp(crop_preprocess(attacked.preprocess, cfg.datamodule), transfer.preprocess)
    if same_crop(crop_preprocess(attacked.preprocess, cfg.datamodule), transfer.preprocess):
        return Transfer.of_split(checkpoint, verifier, split.sources, split.images, split.sources, warp)
    node = {**OmegaConf.to_container(cfg.datamodule, resolve=True), "face": None}  # its own front end
    own = attach_datamodule(transfer, node).datamodule.splits[cfg.split]
    return Transfer.of_split(checkpoint, verifier, split.sources, own.images, own.sources, warp)


def run_attack(cfg: DictConfig) -> dict:
    """The `cfg.attack` attack against the test identities, at the checkpoint's calibrated threshold, every image
    through `cfg.purify`; writes summary.json, attack_success.png and the attack's own pictures into the run
    directory. Every setting, the model and the patch masks are checked before any data is read."""
    attack: Attack = build_from_config(cfg.attack)
    purifier = build_purifier(cfg.get("purify"), cfg.get("purify_quality", 75), cfg.get("purify_kernel", 3))
    model = load_for_eval(
        cfg.ckpt,
        matcher=cfg.get("matcher"),
        calibrated=True,
        needs_torch=f"attack={attack.name} (it follows the gradient of the score)",
    )
    # refused above before any data is read: an outside embedder, a missing threshold
    masks = attack.masks(crop_preprocess(model.preprocess, cfg.datamodule)) if isinstance(attack, PatchAttack) else None
    transfer = load_transfer(attack, model.preprocess) if isinstance(attack, UapAttack) else None
    if isinstance(attack, UapAttack) and cfg.split == "train":
        raise ConfigError(
            "attack=uap learns its perturbation on the training identities, so it is judged on others: "
            "set split=test (or val)."
        )
    loaded = attach_datamodule(model, cfg.datamodule)
    verifier = Verifier(frozen(loaded.net), loaded.matcher, float(loaded.calibration()["threshold"]), purifier)
    split = loaded.datamodule.splits[cfg.split]
    impostor_pairs = sample_pairs(split.labels, False, cfg.max_pairs, cfg.seed)
    genuine_pairs = sample_pairs(split.labels, True, cfg.max_pairs, cfg.seed)
    impostor = PairSet.build(verifier, split.images, impostor_pairs, genuine=False)
    genuine = PairSet.build(verifier, split.images, genuine_pairs, genuine=True)
    clean_eer = None  # a split without genuine or impostor pairs has no EER
    if len(genuine_pairs) and len(impostor_pairs):
        clean_eer = embeddings_eer(
            verifier.references(split.images).numpy(),
            split.labels,
            loaded.datamodule.max_impostor_pairs,
            verifier.matcher.numpy_block,
        )
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(attack, PatchAttack):
        details = run_patch(attack, masks, verifier, impostor, genuine, cfg.seed, out)
    elif isinstance(attack, UapAttack):
        other = transfer_of_split(attack.transfer_ckpt, transfer, loaded, cfg, split, purifier) if transfer else None
        train = loaded.datamodule.splits["train"]
        details = run_uap(
            attack, verifier, train.images, train.labels, split.images, impostor, genuine, other, cfg.seed, out
        )
    else:
        details = run_linf(attack, verifier, impostor, genuine, split.images, out)
    summary = {
        "checkpoint": str(Path(cfg.ckpt).resolve()),
        "attack": attack.name,
        **clean_figures(verifier, impostor, genuine, cfg.split, clean_eer, purifier),
        **details,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def clean_figures(
    verifier: Verifier, impostor: PairSet, genuine: PairSet, split: str, clean_eer: float | None, purifier
) -> dict:
    """What a run's summary says before any attack: the operating point, the pairs, and the clean error rates."""
    return {
        "matcher": verifier.matcher.name,
        "threshold": verifier.threshold,
        "split": split,
        "clean_eer": clean_eer,
        "impostor_pairs": int(len(impostor.pairs)),
        "genuine_pairs": int(len(genuine.pairs)),
        "clean_far": impostor.error_rate(impostor.clean, verifier.threshold),
        "clean_frr": genuine.error_rate(genuine.clean, verifier.threshold),
        "attackable_impostor_pairs": impostor.attackable(verifier.threshold),
        "attackable_genuine_pairs": genuine.attackable(verifier.threshold),
        "purify": purifier.spec() if purifier is not None else None,
        **({"purify_note": NON_ADAPTIVE} if purifier is not None else {}),
    }


def format_rows(summary: dict) -> str:
    """The printed table of a run: its header line, then one row per budget (eps, or mask scale for patch)."""
    purify = summary.get("purify")
    eer = "n/a" if summary["clean_eer"] is None else f"{summary['clean_eer']:.4f}"
    turnable = {
        "impersonation": f"the {summary['attackable_impostor_pairs']} impostor pairs rejected",
        "dodging": f"the {summary['attackable_genuine_pairs']} genuine pairs accepted",
    }
    goals = [summary["goal"]] if summary["attack"] == "uap" else list(turnable)
    lines = [
        f"{summary['attack'].upper()} on {summary['impostor_pairs']} impostor and {summary['genuine_pairs']} "
        f"genuine {summary['split']} pairs; clean {summary['split']} EER {eer}; "
        f"{summary['matcher']} threshold {summary['threshold']:.4f} "
        f"(clean FAR {summary['clean_far']:.4f}, FRR {summary['clean_frr']:.4f})"
        + (f"; every image purified by {purify}: {summary['purify_note']}" if purify else ""),
        f"success: the share of {' and '.join(turnable[g] for g in goals)} when clean that the attack turns "
        f"({', '.join(goals)})",
    ]
    if summary["attack"] == "patch":
        lines.append(
            f"clean under random views: FAR {summary['clean_far_eot']:.4f}, FRR {summary['clean_frr_eot']:.4f}"
        )
        return "\n".join(lines + format_patch_rows(summary))
    if summary["attack"] == "uap":
        transfer = summary.get("transfer")
        if transfer:
            lines.append(
                f"transfer model {transfer['checkpoint']}: {transfer['matcher']} threshold "
                f"{transfer['threshold']:.4f} (clean FAR {transfer['clean_far']:.4f}, "
                f"FRR {transfer['clean_frr']:.4f}; {transfer['attackable_pairs']} pairs it decides right "
                "when clean)"
            )
        return "\n".join(lines + format_uap_rows(summary))
    lines.append(f"{'eps/255':>8} {'impersonation':>14} {'dodging':>8} {'FAR':>7} {'FRR':>7} {'max |delta|*255':>16}")
    for r in summary["rows"]:
        lines.append(
            f"{r['eps']:8g} {r['impersonation_success']:14.4f} {r['dodging_success']:8.4f} {r['far']:7.4f} "
            f"{r['frr']:7.4f} {r['max_perturbation']:16.3f}"
        )
    return "\n".join(lines)
