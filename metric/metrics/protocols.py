"""Evaluation protocols beyond all-pairs verification: LFW-style pair lists (k-fold accuracy) and 1:N identification."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datamodules.images import IMAGE_SUFFIXES
from metric.errors import ConfigError
from metric.metrics import verification as V
from metric.scoring.matchers import Matcher


@dataclass(frozen=True)
class PairList:
    """Pairs of image paths with their fold and label, in file order."""

    first: list[Path]
    second: list[Path]
    genuine: np.ndarray
    fold: np.ndarray


def find_image(root: Path, name: str, number: int) -> Path | None:
    stem = root / name / f"{name}_{number:04d}"
    for suffix in IMAGE_SUFFIXES:
        if stem.with_suffix(suffix).exists():
            return stem.with_suffix(suffix)
    return None


def read_pairs_file(path: Path, root: Path) -> PairList:
    """LFW pairs.txt: '<folds> <pairs per fold>', then 'name i j' (genuine) or 'name1 i name2 j' (impostor) lines;
    each fold is 2 x <pairs per fold> consecutive lines. Images are <root>/<name>/<name>_<i:04d>.<ext>."""
    if not path.is_file():
        raise ConfigError(f"pairs_file={str(path)!r}: no such file.")
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    try:
        folds, per_fold = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError):
        raise ConfigError(f"{path}, line 1: expected '<folds> <pairs per fold>', got {' '.join(lines[0]) if lines else 'nothing'}.") from None
    body = lines[1:]
    if len(body) != folds * 2 * per_fold:
        raise ConfigError(f"{path}: the header promises {folds} folds x 2 x {per_fold} pairs, the file has {len(body)}.")
    first, second, genuine, missing = [], [], [], []
    for number, fields in enumerate(body, 2):
        if len(fields) == 3:
            names, same = (fields[0], int(fields[1]), fields[0], int(fields[2])), True
        elif len(fields) == 4:
            names, same = (fields[0], int(fields[1]), fields[2], int(fields[3])), False
        else:
            raise ConfigError(f"{path}, line {number}: expected 'name i j' or 'name1 i name2 j', got {' '.join(fields)!r}.")
        a, b = find_image(root, names[0], names[1]), find_image(root, names[2], names[3])
        for found, (name, i) in ((a, names[:2]), (b, names[2:])):
            if found is None:
                missing.append(str(root / name / f"{name}_{i:04d}.<{'|'.join(s[1:] for s in IMAGE_SUFFIXES)}>"))
        first.append(a)
        second.append(b)
        genuine.append(same)
    if missing:
        raise ConfigError(
            f"{path} names {len(missing)} image(s) missing under root={str(root)!r}, e.g.:\n  "
            + "\n  ".join(missing[:5]) + "\nCheck `root` (it must hold <name>/<name>_<i:04d>.<ext>)."
        )
    fold = np.arange(len(body)) // (2 * per_fold)
    return PairList(first, second, np.array(genuine), fold)


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
    embeddings: np.ndarray, labels: np.ndarray, matcher: Matcher, gallery_images: int = 1,
    unknown_fraction: float = 0.2, seed: int = 0,
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
        scores = matcher.score_matrix(torch.from_numpy(embeddings[probes]), torch.from_numpy(np.stack(templates).astype(np.float32))).numpy()
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
