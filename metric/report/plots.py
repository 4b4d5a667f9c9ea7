"""Report plots as PNG: ROC, DET (log axes), genuine/impostor score histograms, worst false accepts/rejects, and
an attack's success against its budget with clean and attacked probes, patch masks and universal perturbations."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from datamodules.normalisation import PIXEL_RANGE  # noqa: E402
from metric.metrics import verification as V  # noqa: E402

VERIFICATION_RATES = ("FAR (false accept rate)", "FRR (false reject rate)", "TAR (true accept rate)")
LIVENESS_RATES = ("APCER (attacks accepted, pooled)", "BPCER (bona fide rejected)", "1 - BPCER")


def plot_roc(curve: V.Roc, path: Path, rates: tuple[str, str, str] = VERIFICATION_RATES) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    far, tar = V.det_points(curve, 2000)[0], 1 - V.det_points(curve, 2000)[1]
    keep = far > 0
    ax.semilogx(far[keep], tar[keep])
    ax.set(xlabel=rates[0], ylabel=rates[2], title="ROC", ylim=(0, 1.01))
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_det(
    curve: V.Roc,
    path: Path,
    rates: tuple[str, str, str] = VERIFICATION_RATES,
    operating_point: tuple[float, float] | None = None,
) -> None:
    """The DET curve on log axes, with the EER point, the FAR = FRR diagonal and, when given, the operating point
    (FAR, FRR) at the threshold the report uses; a rate of 0 is drawn at half the curve's smallest rate."""
    fig, ax = plt.subplots(figsize=(5, 4))
    far, frr = V.det_points(curve, 2000)
    keep = (far > 0) & (frr > 0)
    ax.loglog(far[keep], frr[keep], label="DET")
    floor = min(float(far[far > 0].min(initial=1.0)), float(frr[frr > 0].min(initial=1.0))) / 2
    rate = V.eer(curve)[0]
    ax.plot([floor, 1], [floor, 1], color="grey", linewidth=0.6, linestyle=":")
    ax.plot([max(rate, floor)], [max(rate, floor)], "o", color="tab:orange", label=f"EER {rate:.2%}")
    if operating_point is not None:
        at_far, at_frr = operating_point
        ax.plot(
            [max(at_far, floor)],
            [max(at_frr, floor)],
            "s",
            color="tab:red",
            label=f"threshold: {rates[0].split(' ')[0]} {at_far:.2%}, {rates[1].split(' ')[0]} {at_frr:.2%}",
        )
    ax.legend(fontsize=7, loc="upper right")
    ax.set(xlabel=rates[0], ylabel=rates[1], title="DET")
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


def plot_image_rows(rows: list[list[tuple[np.ndarray, str, bool]]], title: str, path: Path, width: float) -> None:
    """A grid of images, one list per row: (image, its caption, whether the caption marks an error in red)."""
    columns = max(max((len(row) for row in rows), default=0), 1)
    fig, axes = plt.subplots(len(rows), columns, figsize=(width * columns, 2.0 * len(rows) + 0.3), squeeze=False)
    for r, row in enumerate(rows):
        for col in range(columns):
            ax = axes[r][col]
            ax.axis("off")
            if col < len(row):
                image, caption, error = row[col]
                ax.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
                ax.set_title(caption, fontsize=7, color="red" if error else "black")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_worst_pairs(
    images: np.ndarray,
    scores: np.ndarray,
    genuine: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    threshold: float,
    path: Path,
    count: int = 6,
) -> None:
    """Top row pairs: the highest-scoring impostors (false accepts when >= threshold); bottom: the lowest genuines."""
    rows = []
    for picks, kind in zip(worst_pairs(scores, genuine, count), ("impostor", "genuine")):
        wrong = [(scores[k] >= threshold) != (kind == "genuine") for k in picks]
        rows.append(
            [
                (
                    np.concatenate([images[first[k]], images[second[k]]], axis=1),
                    f"{kind} {scores[k]:.3f}{' (error)' if w else ''}",
                    w,
                )
                for k, w in zip(picks, wrong)
            ]
        )
    plot_image_rows(rows, "Worst false accepts (top) and false rejects (bottom)", path, 2.2)


def plot_worst_presentations(
    images: np.ndarray,
    scores: np.ndarray,
    bona_fide: np.ndarray,
    labels: list[str],
    threshold: float,
    path: Path,
    count: int = 8,
) -> None:
    """Top row: the most live-looking attacks (accepted when >= threshold); bottom: the least live-looking bona fide."""
    rows = [
        [(images[k], f"{labels[k]} {scores[k]:.3f}", (scores[k] >= threshold) != live) for k in picks]
        for picks, live in zip(worst_pairs(scores, bona_fide, count), (False, True))
    ]
    plot_image_rows(
        rows,
        f"Worst attacks (top, accepted in red) and bona fide (bottom, rejected in red); threshold {threshold:.3g}",
        path,
        1.6,
    )


def identity_and_file(source: str) -> str:
    """`<folder>/<file>` of a photo, shortened: in an identity tree the folder is the person (s2/1.pgm)."""
    parts = Path(source).parts[-2:]
    return "/".join(part[:14] for part in parts)


def plot_faces(entries: list[dict], crops: dict[str, np.ndarray], path: Path, count: int = 24) -> None:
    """The face front end at work: each original photo with its detected box and landmarks, beside the aligned
    crop; photos without a face come first (up to two thirds of the grid). `entries` are detection records
    ({"source", "box", "landmarks",
    "reason", ...}); `crops` maps a source to its aligned crop."""
    from datamodules.images import open_image

    misses = [e for e in entries if e["reason"] is not None]
    found = [e for e in entries if e["reason"] is None]
    shown = misses[: max(count - count // 3, count - len(found))]  # misses first; a third of the grid stays for
    shown += found[: count - len(shown)]  # detected faces (unless there are too few of them)
    columns = 4
    rows = max(1, -(-len(shown) // columns))
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(2 * columns * 1.6, rows * 1.8), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for n, entry in enumerate(shown):
        original, aligned = axes[n // columns, 2 * (n % columns)], axes[n // columns, 2 * (n % columns) + 1]
        try:
            original.imshow(np.asarray(open_image(entry["source"], 3)))
        except ValueError:  # an unreadable file: its name says enough
            pass
        if entry.get("box"):
            x0, y0, x1, y1 = entry["box"]
            original.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", linewidth=1.2))
        if entry.get("landmarks"):
            points = np.asarray(entry["landmarks"])
            original.scatter(points[:, 0], points[:, 1], s=6, c="red")
        original.set_title(identity_and_file(entry["source"]), fontsize=6)
        crop = crops.get(entry["source"])
        if entry["reason"] is None and crop is not None:
            aligned.imshow(crop[..., 0] if crop.shape[-1] == 1 else crop, cmap="gray", vmin=0, vmax=255)
            aligned.set_title("aligned", fontsize=6)
        else:
            aligned.text(
                0.5,
                0.5,
                (entry["reason"] or "?")[:40],
                ha="center",
                va="center",
                fontsize=6,
                wrap=True,
                color="red",
                transform=aligned.transAxes,
            )
    fig.suptitle(
        f"face front end: {sum(e['reason'] is not None for e in entries)} of {len(entries)} without a face "
        "(shown first)",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_probe_rows(rows: list[tuple[str, np.ndarray, np.ndarray]], threshold: float, title: str, path: Path) -> None:
    """One row per (label, probes as float or uint8 pixel values N x H x W x C, their scores): each probe with its
    score, ACCEPT in red at or above the threshold (e.g. probes before and after a patch or a perturbation)."""

    def shown(image: np.ndarray) -> np.ndarray:  # [0, 1] RGB, so grey probes are drawn on the absolute scale too
        pixels = (np.asarray(image, dtype=np.float32) / PIXEL_RANGE[1]).clip(0, 1)
        return np.repeat(pixels, 3, -1) if pixels.shape[-1] == 1 else pixels

    grid = [
        [
            (shown(image), f"{label}\n{score:.3f}{' ACCEPT' if score >= threshold else ''}", score >= threshold)
            for image, score in zip(images, scores)
        ]
        for label, images, scores in rows
    ]
    plot_image_rows(grid, title, path, 1.8)


def plot_masks(face: np.ndarray | None, masks: list[np.ndarray], scales: list[float], name: str, path: Path) -> None:
    """Each mask (H x W, bool) of a patch attack, one panel per scale, tinted red over a face (float or uint8 pixel
    values H x W x C; None: on black), titled with its scale and share of the image."""
    fig, axes = plt.subplots(1, max(len(masks), 1), figsize=(2.0 * max(len(masks), 1), 2.3), squeeze=False)
    for ax, mask, scale in zip(axes[0], masks, scales):
        base = np.zeros((*mask.shape, 3)) if face is None else np.asarray(face, dtype=np.float32) / PIXEL_RANGE[1]
        base = np.repeat(base, 3, -1) if base.shape[-1] == 1 else base
        shown = base.copy()
        shown[mask] = 0.4 * shown[mask] + 0.6 * np.array([1.0, 0.0, 0.0])
        ax.imshow(shown.clip(0, 1))
        ax.set_title(f"{name} x{scale:g}\n{mask.mean():.1%} of pixels", fontsize=7)
    for ax in axes[0]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_perturbation(delta: np.ndarray, eps: float, path: Path) -> None:
    """A universal perturbation (H x W x C, pixel values within +-eps) amplified for visibility: +-eps maps to
    0 and 255 around mid-grey."""
    gain = 1.0 / eps if eps > 0 else 0.0
    shown = (0.5 + 0.5 * np.asarray(delta, dtype=np.float32) * gain).clip(0, 1)
    fig, ax = plt.subplots(figsize=(3, 3.2))
    ax.imshow(shown.squeeze(-1) if shown.shape[-1] == 1 else shown, cmap="gray", vmin=0, vmax=1)
    ax.set_title(
        f"universal perturbation, eps {eps:g}/255\n(amplified {gain * 127.5:.3g}x around mid-grey)", fontsize=7
    )
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_success_curves(
    budgets: list[float], curves: dict[str, list[float]], xlabel: str, title: str, path: Path
) -> None:
    """Attack success rates against a budget (eps, mask area, ...): one line per named curve."""
    plot_success_panels([(title, xlabel, {label: (budgets, values) for label, values in curves.items()})], path)


def plot_success_panels(panels: list[tuple[str, str, dict[str, tuple[list[float], list[float]]]]], path: Path) -> None:
    """One panel per (title, x label, {curve label: (budgets, rates)}), in rows of up to three, each with its legend
    below it. A curve labelled "<run>, <variant>" (random views, transfer) is dashed in its run's colour; every run
    keeps one colour across panels."""
    columns = min(3, max(1, len(panels)))
    rows = -(-len(panels) // columns) if panels else 1
    runs = list(dict.fromkeys(label.split(", ")[0] for _, _, curves in panels for label in curves))
    palette = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    colour = {run: palette(k % palette.N) for k, run in enumerate(runs)}
    most = max((len(curves) for _, _, curves in panels), default=1)
    legend_height = 0.2 * -(-most // 2)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, (3.2 + legend_height) * rows), squeeze=False)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    for ax, (title, xlabel, curves) in zip(axes.ravel(), panels):
        for label, (budgets, values) in curves.items():
            variant = ", " in label
            ax.plot(
                budgets,
                values,
                "s--" if variant else "o-",
                color=colour[label.split(", ")[0]],
                label=label,
                markersize=4,
                alpha=0.8 if variant else 1.0,
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("success rate")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
