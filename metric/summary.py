"""Final verification summary: threshold calibrated on validation identities, errors measured on unseen test identities."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datamodules.base import IdentitySplit, to_tensor
from metric import verification as V
from metric.calibration import Calibration, calibrate
from metric.matchers import Matcher

TAR_FARS = (1e-2, 1e-3)
Embedded = tuple[np.ndarray, np.ndarray]  # (embeddings, identity labels)


@dataclass(frozen=True)
class ScoredPairs:
    """The scored test pairs behind a summary: pair k compares images first[k] and second[k]."""

    scores: np.ndarray
    genuine: np.ndarray
    first: np.ndarray
    second: np.ndarray


@torch.no_grad()
def embed_images(net: torch.nn.Module, images: np.ndarray, flip: bool = False, batch: int = 256) -> np.ndarray:
    """L2-normalised embeddings of uint8 (N, H, W, C) images, in eval mode; with flip, of each image and its
    mirror averaged (test-time augmentation)."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    out = []
    for start in range(0, len(images), batch):
        x = to_tensor(images[start : start + batch]).to(device)
        e = net(x)
        if flip:
            e = torch.nn.functional.normalize(e + net(x.flip(-1)), dim=1)
        out.append(e.float().cpu())
    net.train(was_training)
    return torch.cat(out).numpy()


def embed_split(net: torch.nn.Module, split: IdentitySplit, flip: bool = False) -> Embedded:
    return embed_images(net, split.images, flip), split.labels


def verification_summary(
    val: Embedded, test: Embedded, matcher: Matcher, target_far: float, max_impostor_pairs: int
) -> tuple[dict, Calibration, ScoredPairs]:
    """Calibrate on validation at target_far; report test EER, FAR/FRR at that threshold, TAR@FAR and ROC AUC;
    the scored test pairs come back too (for plots and reports, without scoring them again)."""
    val_scores, val_genuine = V.pair_scores(*val, max_impostor_pairs=max_impostor_pairs, score_block=matcher.numpy_block)
    calibration = calibrate(val_scores, val_genuine, target_far, matcher.name)
    test_pairs = ScoredPairs(*V.pair_scores(
        *test, max_impostor_pairs=max_impostor_pairs, score_block=matcher.numpy_block, return_pairs=True
    ))
    test_scores, test_genuine = test_pairs.scores, test_pairs.genuine
    curve = V.roc(test_scores, test_genuine)
    far, frr = V.far_frr_at(test_scores, test_genuine, calibration.threshold)
    summary = {
        "matcher": matcher.name,
        "threshold": calibration.threshold,
        "threshold_source": "calibrated on the validation identities",
        "target_far": calibration.target_far,
        "calibrated_far": calibration.calibrated_far,
        "calibration_warning": calibration.warning,
        "val_far_at_threshold": calibration.val_far,
        "val_frr_at_threshold": calibration.val_frr,
        "val_eer": V.eer(V.roc(val_scores, val_genuine))[0],
        "test_eer": V.eer(curve)[0],
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
    return summary, calibration, test_pairs


def format_table(summary: dict) -> str:
    """Two aligned columns; unsupported TAR@FAR values say why; a calibration warning is printed below."""
    rows = []
    for key, value in summary.items():
        if key == "calibration_warning":
            continue
        if value is None and key.startswith("test_tar_at_far_"):
            text = f"not supported (< {3 / float(key.rsplit('_', 1)[1]):.0f} impostor pairs)"
        elif isinstance(value, float):
            text = f"{value:.4g}" if key.endswith("far") else f"{value:.4f}"
        else:
            text = str(value)
        rows.append((key, text))
    width = max(len(k) for k, _ in rows)
    line = "-" * min(100, width + 3 + max(len(t) for _, t in rows))
    body = "\n".join(f"{k.ljust(width)} : {t}" for k, t in rows)
    table = f"{line}\nVerification summary (test identities unseen in training)\n{line}\n{body}\n{line}"
    if summary.get("calibration_warning"):
        table += f"\nWARNING: {summary['calibration_warning']}"
    return table


def write_summary(summary: dict, path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2))
