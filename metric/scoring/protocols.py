"""Evaluation protocols beyond all-pairs verification: LFW-style pair lists (k-fold accuracy) and 1:N identification."""

from __future__ import annotations

import numpy as np
import torch

from metric.errors import ConfigError
from metric.metrics import verification as V
from metric.scoring.matchers import Matcher
from metric.scoring.pairs import ScoreBlock, cosine_block, pair_scores


def best_accuracy_threshold(scores: np.ndarray, genuine: np.ndarray) -> float:
    """The threshold (midway between adjacent distinct scores) that classifies these pairs most accurately."""
    values = np.unique(scores)
    candidates = np.r_[values[0] - 1e-6, (values[1:] + values[:-1]) / 2, values[-1] + 1e-6]
    accuracy = [((scores >= t) == genuine).mean() for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def kfold_accuracy(scores: np.ndarray, genuine: np.ndarray, fold: np.ndarray) -> dict:
    """The standard LFW protocol: each fold scored at the threshold chosen on the other folds."""
    accuracies = []
    for k in np.unique(fold):
        held = fold == k
        threshold = best_accuracy_threshold(scores[~held], genuine[~held])
        accuracies.append(float(((scores[held] >= threshold) == genuine[held]).mean()))
    acc = np.array(accuracies)
    return {
        "fold_accuracies": accuracies,
        "accuracy_mean": float(acc.mean()),
        "accuracy_std": float(acc.std(ddof=1)) if acc.size > 1 else 0.0,
        "eer_all_pairs": V.eer(V.roc(scores, genuine))[0],
        "pairs": int(len(scores)),
    }


def identification(
    embeddings: np.ndarray,
    labels: np.ndarray,
    matcher: Matcher,
    gallery_images: int = 1,
    unknown_fraction: float = 0.2,
    seed: int = 0,
) -> dict:
    """Closed-set CMC (rank-1, rank-5) and open-set FNIR at FPIR = 1e-1, 1e-2.

    A seeded `unknown_fraction` of identities stays out of the gallery: all their images are unknown probes.
    Each enrolled identity's template is the normalised mean of its first `gallery_images` embeddings; its
    other images are known probes.
    """
    identities = np.unique(labels)
    rng = np.random.default_rng(seed)
    unknown = set(rng.choice(identities, size=int(round(unknown_fraction * identities.size)), replace=False).tolist())
    templates, template_ids, probes, probe_ids = [], [], [], []
    for identity in identities:
        rows = np.flatnonzero(labels == identity)
        if identity in unknown:
            probes.extend(rows)
            probe_ids.extend([-1] * rows.size)
            continue
        if rows.size <= gallery_images:
            continue  # nothing left to probe with
        mean = embeddings[rows[:gallery_images]].mean(0)
        templates.append(mean / (np.linalg.norm(mean) + 1e-12))
        template_ids.append(identity)
        probes.extend(rows[gallery_images:])
        probe_ids.extend([identity] * (rows.size - gallery_images))
    if len(templates) < 2:
        raise ConfigError("identification needs at least 2 enrolled identities with images left to probe.")
    template_ids, probe_ids = np.array(template_ids), np.array(probe_ids)
    with torch.no_grad():
        scores = matcher.score_matrix(
            torch.from_numpy(embeddings[probes]), torch.from_numpy(np.stack(templates).astype(np.float32))
        ).numpy()
    known = probe_ids >= 0
    mate_col = np.searchsorted(template_ids, probe_ids[known])
    mate_scores = scores[known][np.arange(known.sum()), mate_col]
    ranks = (scores[known] > mate_scores[:, None]).sum(1) + 1
    result = {
        "gallery_identities": int(len(template_ids)),
        "known_probes": int(known.sum()),
        "unknown_probes": int((~known).sum()),
        "rank_1": float((ranks <= 1).mean()),
        "rank_5": float((ranks <= 5).mean()),
    }
    top_unknown = scores[~known].max(1) if (~known).any() else np.array([])
    for fpir in (1e-1, 1e-2):
        key = f"fnir_at_fpir_{fpir:g}"
        if top_unknown.size < 3 / fpir:
            result[key] = f"not supported (< {3 / fpir:.0f} unknown probes)"
            continue
        threshold = np.sort(top_unknown)[::-1][int(np.floor(fpir * top_unknown.size))]  # FPIR <= target above it
        hit = (ranks == 1) & (mate_scores > threshold)
        result[key] = float(1.0 - hit.mean())
    return result


def balanced_threshold(scores: np.ndarray, genuine: np.ndarray) -> float:
    """The threshold that minimises FAR + FRR on these pairs (the accuracy-best one when genuine and impostor
    pairs are equally many, as in LFW's pairs.txt), in one sort."""
    values = np.unique(scores)
    candidates = np.r_[values[0] - 1e-6, (values[1:] + values[:-1]) / 2, values[-1] + 1e-6]
    frr = np.searchsorted(np.sort(scores[genuine]), candidates) / max(int(genuine.sum()), 1)
    far = 1 - np.searchsorted(np.sort(scores[~genuine]), candidates) / max(int((~genuine).sum()), 1)
    return float(candidates[int(np.argmin(far + frr))])


def official_pairs_summary(
    val: tuple[np.ndarray, np.ndarray],
    test_embeddings: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray, int],
    matcher: Matcher,
    max_impostor_pairs: int,
    prefix: str = "test_pairs",
) -> dict:
    """A dataset's official test pairs (LFW's fold of pairs.txt) scored at the threshold that balances FAR and FRR
    on the validation identities (never on the test fold): accuracy, EER, and the scores (kept in summary.json).
    Each fold has its own model, so its scores are not pooled with other folds' (their scales differ)."""
    first, second, genuine, dropped = pairs
    val_scores, val_genuine = pair_scores(
        val[0], val[1], max_impostor_pairs=max_impostor_pairs, score_block=matcher.numpy_block
    )
    threshold = balanced_threshold(val_scores, val_genuine)
    with torch.no_grad():
        scores = matcher.score(torch.from_numpy(test_embeddings[first]), torch.from_numpy(test_embeddings[second]))
    scores = scores.numpy()
    return {
        f"{prefix}": int(len(scores)),
        f"{prefix}_dropped": dropped,
        f"{prefix}_threshold": threshold,
        f"{prefix}_accuracy": float(((scores >= threshold) == genuine).mean()),
        f"{prefix}_eer": V.eer(V.roc(scores, genuine))[0],
        f"{prefix}_scores": scores.tolist(),
        f"{prefix}_genuine": genuine.tolist(),
    }


def official_test_pairs(datamodule) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """The datamodule's official test pairs (datamodule=lfw: its test fold of pairs.txt), or None when it has none."""
    pairs = getattr(datamodule, "test_pairs", None)
    return pairs() if callable(pairs) else None


def embeddings_eer(
    embeddings: np.ndarray,
    labels: np.ndarray,
    max_impostor_pairs: int | None = None,
    score_block: ScoreBlock = cosine_block,
) -> float:
    """The EER over every genuine pair and (up to max_impostor_pairs) impostor pair of labelled embeddings, scored
    by `score_block` (cosine, or a matcher's numpy_block)."""
    scores, genuine = pair_scores(embeddings, labels, max_impostor_pairs=max_impostor_pairs, score_block=score_block)
    return float(V.eer(V.roc(scores, genuine))[0])
