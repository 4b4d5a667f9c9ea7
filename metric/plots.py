"""Report plots as PNG: ROC, DET (log axes), genuine/impostor score histograms, worst false accepts/rejects."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from metric import verification as V  # noqa: E402


def plot_roc(curve: V.Roc, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    far, tar = V.det_points(curve, 2000)[0], 1 - V.det_points(curve, 2000)[1]
    keep = far > 0
    ax.semilogx(far[keep], tar[keep])
    ax.set(xlabel="FAR (false accept rate)", ylabel="TAR (true accept rate)", title="ROC", ylim=(0, 1.01))
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_det(curve: V.Roc, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    far, frr = V.det_points(curve, 2000)
    keep = (far > 0) & (frr > 0)
    ax.loglog(far[keep], frr[keep])
    ax.set(xlabel="FAR (false accept rate)", ylabel="FRR (false reject rate)", title="DET")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_histograms(scores: np.ndarray, genuine: np.ndarray, threshold: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(scores.min(), scores.max(), 80)
    ax.hist(scores[~genuine], bins=bins, density=True, alpha=0.6, label=f"impostor ({(~genuine).sum()})")
    ax.hist(scores[genuine], bins=bins, density=True, alpha=0.6, label=f"genuine ({genuine.sum()})")
    ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set(xlabel="score", ylabel="density", title="Score distributions")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def worst_pairs(scores: np.ndarray, genuine: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair positions of the `count` highest-scoring impostors and the `count` lowest-scoring genuines."""
    impostors = np.flatnonzero(~genuine)
    genuines = np.flatnonzero(genuine)
    return impostors[np.argsort(-scores[impostors])[:count]], genuines[np.argsort(scores[genuines])[:count]]


def plot_worst_pairs(
    images: np.ndarray, scores: np.ndarray, genuine: np.ndarray, first: np.ndarray, second: np.ndarray,
    threshold: float, path: Path, count: int = 6,
) -> None:
    """Top row pairs: the highest-scoring impostors (false accepts when >= threshold); bottom: the lowest genuines."""
    worst_fa, worst_fr = worst_pairs(scores, genuine, count)
    columns = max(len(worst_fa), len(worst_fr), 1)
    fig, axes = plt.subplots(2, columns, figsize=(2.2 * columns, 3.4), squeeze=False)
    for row, (picks, kind) in enumerate(((worst_fa, "impostor"), (worst_fr, "genuine"))):
        for col in range(columns):
            ax = axes[row][col]
            ax.axis("off")
            if col >= len(picks):
                continue
            k = picks[col]
            pair = np.concatenate([images[first[k]], images[second[k]]], axis=1)
            ax.imshow(pair.squeeze(), cmap="gray" if pair.shape[-1] == 1 else None)
            wrong = (scores[k] >= threshold) != (kind == "genuine")
            ax.set_title(f"{kind} {scores[k]:.3f}{' (error)' if wrong else ''}", fontsize=7,
                         color="red" if wrong else "black")
    fig.suptitle("Worst false accepts (top) and false rejects (bottom)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
