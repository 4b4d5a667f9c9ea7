"""`python -m metric.attack ckpt=<ckpt> attack=fgsm|pgd attack.eps=[0,1,2,4,8]`: L-infinity attacks on the verifier
at its calibrated threshold. Impersonation pushes impostor pairs above it; dodging pushes genuine pairs below."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from metric.checkpoint import build_model, check_same_preprocessing, read_checkpoint, stored_calibration
from metric.config_checks import build_from_config
from metric.errors import ConfigError, exit_on_config_error
from metric.linf import linf_ascent
from metric.matchers import make_matcher

KINDS = ("fgsm", "pgd")


def to_model_input(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] (N, C, H, W) -> the training normalisation (uint8 / 127.5 - 1)."""
    return pixels * 2.0 - 1.0


def perturb(net, matcher, probes: torch.Tensor, targets: torch.Tensor, eps: float, kind: str,
            raise_score: bool, steps: int = 10, step_size: float | None = None) -> torch.Tensor:
    """Adversarial probes within |delta|_inf <= eps (pixels in [0, 1]) and clipped to [0, 1]: raise_score=True
    pushes each probe's score against its reference embedding in `targets` up (impersonation), False pushes it
    down (dodging). FGSM or PGD, as in metric.linf.linf_ascent."""
    if eps == 0:
        return probes.clone()
    direction = 1.0 if raise_score else -1.0

    def objective(adv: torch.Tensor) -> torch.Tensor:
        return direction * matcher.score(net(to_model_input(adv)), targets).sum()

    return linf_ascent(objective, probes, eps, 0.0, 1.0, kind, steps, step_size)


def sample_pairs(labels: np.ndarray, genuine: bool, count: int, seed: int) -> np.ndarray:
    """Up to `count` (probe, reference) index pairs, genuine or impostor, drawn without repetition (seeded)."""
    first, second = np.triu_indices(len(labels), k=1)
    keep = (labels[first] == labels[second]) == genuine
    pairs = np.stack([first[keep], second[keep]], 1)
    rng = np.random.default_rng(seed)
    return pairs[np.sort(rng.choice(len(pairs), min(count, len(pairs)), replace=False))]


def embed_pixels(net, pixels: torch.Tensor, batch: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([net(to_model_input(pixels[i : i + batch])) for i in range(0, len(pixels), batch)])


def attack_pairs(net, matcher, pixels: torch.Tensor, pairs: np.ndarray, targets: torch.Tensor, eps: float, kind: str,
                 raise_score: bool, steps: int, step_size: float | None, batch: int = 64
                 ) -> tuple[np.ndarray, torch.Tensor]:
    """Scores after the attack, and the attacked probes; `targets` are the pairs' reference embeddings."""
    scores, attacked = [], []
    for start in range(0, len(pairs), batch):
        probes, refs = pixels[pairs[start : start + batch, 0]], targets[start : start + batch]
        adv = perturb(net, matcher, probes, refs, eps, kind, raise_score, steps, step_size)
        with torch.no_grad():
            scores.append(matcher.score(net(to_model_input(adv)), refs).numpy())
        attacked.append(adv)
    return np.concatenate(scores), torch.cat(attacked)


def run_attack(cfg: DictConfig) -> dict:
    attack = cfg.attack
    if attack.name not in KINDS:
        raise ConfigError(f"attack={attack.name!r} is not one of {', '.join(KINDS)}.")
    eps_list = [float(e) for e in attack.eps]
    if any(e < 0 for e in eps_list):
        raise ConfigError(f"attack.eps={eps_list}: budgets are >= 0, in pixel units /255 (e.g. [0,1,2,4,8]).")
    checkpoint = read_checkpoint(cfg.ckpt)
    calibration = stored_calibration(checkpoint, cfg.get("matcher"), cfg.ckpt)
    net, head = build_model(checkpoint)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    matcher = make_matcher(calibration["matcher"], head=head)
    threshold = float(calibration["threshold"])
    datamodule = build_from_config(cfg.datamodule)
    datamodule.setup("test")
    check_same_preprocessing(checkpoint, datamodule.preprocessing)
    split = datamodule.splits[cfg.split]
    pixels = torch.from_numpy(split.images).permute(0, 3, 1, 2).float() / 255.0
    impostor = sample_pairs(split.labels, False, cfg.max_pairs, cfg.seed)
    genuine = sample_pairs(split.labels, True, cfg.max_pairs, cfg.seed)
    steps, step_size = int(attack.get("steps", 1)), attack.get("step_size")
    step_size = None if step_size is None else float(step_size) / 255.0
    # references are never perturbed: embed them once; eps 0 is the clean evaluation itself
    imp_targets, gen_targets = embed_pixels(net, pixels[impostor[:, 1]]), embed_pixels(net, pixels[genuine[:, 1]])
    clean_imp, clean_probes = attack_pairs(net, matcher, pixels, impostor, imp_targets, 0.0, attack.name, True, steps,
                                           step_size)
    clean_gen, _ = attack_pairs(net, matcher, pixels, genuine, gen_targets, 0.0, attack.name, False, steps, step_size)
    rows, examples = [], None
    for eps in eps_list:
        if eps == 0:
            (imp_scores, imp_adv), gen_scores = (clean_imp, clean_probes), clean_gen
        else:
            imp_scores, imp_adv = attack_pairs(net, matcher, pixels, impostor, imp_targets, eps / 255.0, attack.name,
                                               True, steps, step_size)
            gen_scores, _ = attack_pairs(net, matcher, pixels, genuine, gen_targets, eps / 255.0, attack.name, False,
                                         steps, step_size)
        budget = float((imp_adv - pixels[impostor[:, 0]]).abs().max() * 255.0) if len(impostor) else 0.0
        rows.append({"eps": eps, "impersonation_success": float((imp_scores >= threshold).mean()),
                     "dodging_frr": float((gen_scores < threshold).mean()), "max_perturbation": budget})
        examples = (imp_adv, imp_scores, eps)
    summary = {
        "checkpoint": str(Path(cfg.ckpt).resolve()), "attack": attack.name, "steps": steps if attack.name == "pgd" else 1,
        "matcher": matcher.name, "threshold": threshold, "split": cfg.split,
        "impostor_pairs": int(len(impostor)), "genuine_pairs": int(len(genuine)),
        "clean_far": float((clean_imp >= threshold).mean()), "clean_frr": float((clean_gen < threshold).mean()),
        "rows": rows,
    }
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_success(rows, summary, out / "attack_success.png")
    if examples is not None and len(impostor):
        plot_examples(pixels, impostor, clean_imp, *examples, threshold, out / "attacked_probes.png")
    return summary


def plot_success(rows: list[dict], summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = [r["eps"] for r in rows]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(eps, [r["impersonation_success"] for r in rows], "o-", label="impersonation success (impostors accepted)")
    ax.plot(eps, [r["dodging_frr"] for r in rows], "s-", label="dodging FRR (genuines rejected)")
    ax.set_xlabel("eps (pixel units / 255)")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{summary['attack'].upper()} at threshold {summary['threshold']:.3f}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_examples(pixels, pairs, clean_scores, attacked, attacked_scores, eps, threshold, path: Path, count: int = 6):
    """Top: clean probes with their scores; bottom: the same probes attacked at the largest eps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = min(count, len(pairs))
    fig, axes = plt.subplots(2, count, figsize=(1.8 * count, 4), squeeze=False)
    for col in range(count):
        for row, (image, score) in enumerate(((pixels[pairs[col, 0]], clean_scores[col]),
                                               (attacked[col], attacked_scores[col]))):
            ax = axes[row][col]
            ax.imshow(image.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{score:.3f}{' ACCEPT' if score >= threshold else ''}", fontsize=7,
                         color="red" if score >= threshold else "black")
            ax.axis("off")
    fig.suptitle(f"impostor probes: clean (top) and attacked at eps {eps:g}/255 (bottom)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_rows(summary: dict) -> str:
    lines = [f"{summary['attack'].upper()} on {summary['impostor_pairs']} impostor and {summary['genuine_pairs']} "
             f"genuine test pairs; {summary['matcher']} threshold {summary['threshold']:.4f} "
             f"(clean FAR {summary['clean_far']:.4f}, FRR {summary['clean_frr']:.4f})",
             f"{'eps/255':>8} {'impersonation success':>22} {'dodging FRR':>12} {'max |delta|*255':>16}"]
    for r in summary["rows"]:
        lines.append(f"{r['eps']:8g} {r['impersonation_success']:22.4f} {r['dodging_frr']:12.4f} {r['max_perturbation']:16.3f}")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="../conf", config_name="attack")
def main(cfg: DictConfig) -> None:
    with exit_on_config_error():
        print(format_rows(run_attack(cfg)))


if __name__ == "__main__":
    main()
