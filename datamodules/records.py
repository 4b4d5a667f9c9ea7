"""Image records and what every file-based loader shares: subsets, identity-disjoint splits, natural order."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datamodules.split import SPLITS
from metric.errors import ConfigError

SPLIT_MODES = ("identity", "ordered", "official")


@dataclass(frozen=True)
class ImageRecord:
    """One image as a dataset's annotations describe it, before it is decoded."""

    path: Path
    identity: str
    partition: str | None = None  # the dataset's own split, when it has one
    factors: dict = field(default_factory=dict)  # e.g. K-Face lighting, accessory, expression, camera
    box: tuple[float, float, float, float] | None = None  # face box x0, y0, x1, y1 in pixels
    landmarks: tuple[tuple[float, float], ...] | None = None  # 5 points: eyes, nose, mouth corners


def natural_key(name: str) -> list:
    """'s2' before 's10': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def by_identity(records: list[ImageRecord]) -> dict[str, list[ImageRecord]]:
    """Records grouped per identity, identities and their images in natural order."""
    groups: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        groups[record.identity].append(record)
    return {
        name: sorted(groups[name], key=lambda r: natural_key(r.path.name)) for name in sorted(groups, key=natural_key)
    }


def take_subset(
    records: list[ImageRecord],
    max_identities: int | None = None,
    max_images_per_identity: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
) -> list[ImageRecord]:
    """A seeded, stable subset: the same settings always keep the same identities and images.

    Identities are ranked once by a seeded shuffle, and a subset keeps a prefix of that ranking, so the
    100 identities of max_identities=100 are also among the 200 of max_identities=200.
    """
    groups = by_identity(records)
    names = list(groups)
    ranked = [names[i] for i in np.random.default_rng([seed, 1]).permutation(len(names))]
    keep = len(ranked)
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ConfigError(f"datamodule.fraction={fraction} must lie in (0, 1].")
        keep = max(1, round(fraction * keep))
    if max_identities is not None:
        keep = min(keep, max_identities)
    chosen = set(ranked[:keep])
    out = []
    for name in names:
        if name in chosen:
            out.extend(groups[name][:max_images_per_identity] if max_images_per_identity else groups[name])
    return out


def assign_splits(
    records: list[ImageRecord],
    mode: str,
    fractions: list[float] | None = None,
    counts: list[int] | None = None,
    seed: int = 0,
) -> dict[str, list[ImageRecord]]:
    """Identity-disjoint train/val/test: a seeded shuffle by fractions, natural order by counts, or the dataset's
    own."""
    if mode not in SPLIT_MODES:
        raise ConfigError(f"datamodule.split={mode!r} is not one of {', '.join(SPLIT_MODES)}.")
    if mode == "official":
        return official_splits(records)
    groups = by_identity(records)
    names = list(groups)
    if mode == "ordered":
        if not counts or len(counts) != 3 or sum(counts) > len(names):
            raise ConfigError(
                f"datamodule.split=ordered needs datamodule.split_counts=[train, val, test] summing to at most the "
                f"{len(names)} identities found; got {counts}."
            )
        ordered, sizes = names, list(counts)
    else:
        fractions = list(fractions or (0.7, 0.15, 0.15))
        if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) > 1.0 + 1e-9:
            raise ConfigError(
                f"datamodule.split_fractions={fractions} must be three non-negative numbers summing to <= 1."
            )
        ordered = [names[i] for i in np.random.default_rng([seed, 2]).permutation(len(names))]
        n = len(names)
        val, test = round(fractions[1] * n), round(fractions[2] * n)
        train = n - val - test if abs(sum(fractions) - 1.0) < 1e-9 else round(fractions[0] * n)
        sizes = [train, val, test]
    bounds = np.cumsum([0, *sizes])
    return {
        split: [r for name in ordered[bounds[i] : bounds[i + 1]] for r in groups[name]]
        for i, split in enumerate(SPLITS)
    }


def official_splits(records: list[ImageRecord]) -> dict[str, list[ImageRecord]]:
    """The dataset's own partition, after checking that no identity appears in two of its splits."""
    if any(r.partition is None for r in records):
        raise ConfigError("datamodule.split=official: this dataset has no official partition; use split=identity.")
    partitions: dict[str, set[str]] = defaultdict(set)
    for record in records:
        partitions[record.identity].add(record.partition)
    overlapping = sorted((name for name, parts in partitions.items() if len(parts) > 1), key=natural_key)
    if overlapping:
        shown = ", ".join(f"{name} ({'/'.join(sorted(partitions[name]))})" for name in overlapping[:10])
        more = f" and {len(overlapping) - 10} more" if len(overlapping) > 10 else ""
        raise ConfigError(
            f"datamodule.split=official is not identity-disjoint on this data: {len(overlapping)} identities appear "
            f"in more than one partition: {shown}{more}. Use datamodule.split=identity for a seeded "
            "identity-disjoint split."
        )
    return {split: [r for r in records if r.partition == split] for split in SPLITS}
