"""Final verification summary: threshold chosen on validation identities, errors measured on unseen test identities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from metric import verification as V

TAR_FARS = (1e-2, 1e-3)


@torch.no_grad()
def embed(net: torch.nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and identity labels of every image the loader yields, in eval mode."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    embeddings, labels = [], []
    for images, batch_labels in loader:
        embeddings.append(net(images.to(device)).float().cpu())
        labels.append(batch_labels)
    net.train(was_training)
    return torch.cat(embeddings).numpy(), torch.cat(labels).numpy()


def split_scores(embeddings: np.ndarray, labels: np.ndarray, max_impostor_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    return V.pair_scores(embeddings, labels, max_impostor_pairs=max_impostor_pairs)


def verification_summary(
    val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], max_impostor_pairs: int
) -> dict:
    """EER, validation-chosen threshold, FAR/FRR there, TAR@FAR (where supported) and ROC AUC on the test split."""
    val_scores, val_genuine = split_scores(*val, max_impostor_pairs)
    val_eer, threshold = V.eer(V.roc(val_scores, val_genuine))
    test_scores, test_genuine = split_scores(*test, max_impostor_pairs)
    curve = V.roc(test_scores, test_genuine)
    test_eer, _ = V.eer(curve)
    far, frr = V.far_frr_at(test_scores, test_genuine, threshold)
    summary = {
        "matcher": "cosine",
        "threshold": threshold,
        "threshold_source": "validation EER point",
        "val_eer": val_eer,
        "test_eer": test_eer,
        "test_far_at_threshold": far,
        "test_frr_at_threshold": frr,
        "test_roc_auc": V.roc_auc(curve),
        "test_genuine_pairs": curve.n_genuine,
        "test_impostor_pairs": curve.n_impostor,
        "test_identities": int(np.unique(test[1]).size),
        "test_images": int(test[1].size),
        "impostor_pairs_sampled": V.count_pairs(test[1])[1] > curve.n_impostor,
    }
    for far_target in TAR_FARS:
        summary[f"test_tar_at_far_{far_target:g}"] = V.tar_at_far(curve, far_target)
    return summary


def format_table(summary: dict) -> str:
    """Two aligned columns; unsupported TAR@FAR values say why."""
    rows = []
    for key, value in summary.items():
        if value is None and key.startswith("test_tar_at_far_"):
            text = f"not supported (< {3 / float(key.rsplit('_', 1)[1]):.0f} impostor pairs)"
        elif isinstance(value, float):
            text = f"{value:.4f}"
        else:
            text = str(value)
        rows.append((key, text))
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 3 + max(len(t) for _, t in rows))
    body = "\n".join(f"{k.ljust(width)} : {t}" for k, t in rows)
    return f"{line}\nVerification summary (test identities unseen in training)\n{line}\n{body}\n{line}"


def write_summary(summary: dict, path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2))
