"""Any tree of `<root>/<identity>/<image>` (PNG, JPEG, PGM, BMP, WEBP), split into disjoint identity sets."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from datamodules.base import SPLITS, IdentityDataModule, IdentitySplit
from datamodules.images import IMAGE_SUFFIXES, BadImage, read_image
from metric.errors import ConfigError

SPLIT_MODES = ("identity", "ordered")
EXPECTED_TREE = "<root>/\n  <identity 1>/  image.png  image2.jpg ...\n  <identity 2>/  ...\n"


def natural_key(name: str) -> list:
    """'s2' before 's10': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def scan_identities(root: Path) -> dict[str, list[Path]]:
    """Identity folder name -> its image files, both in natural order; identities without images are left out."""
    if not root.is_dir():
        raise ConfigError(f"datamodule.root={str(root)!r} is not a folder. Expected a tree like:\n{EXPECTED_TREE}")
    identities = {}
    for folder in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
        images = sorted(
            (f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda f: natural_key(f.name),
        )
        if images:
            identities[folder.name] = images
    if not identities:
        raise ConfigError(
            f"datamodule.root={str(root)!r} holds no identity folder with images "
            f"({', '.join(IMAGE_SUFFIXES)}). Expected a tree like:\n{EXPECTED_TREE}"
        )
    return identities


def assign_splits(names: list[str], mode: str, counts: list[int] | None, fractions: list[float], seed: int) -> dict[str, list[str]]:
    """Identity names per split: `ordered` takes counts in natural order, `identity` a seeded shuffle by fractions."""
    if mode not in SPLIT_MODES:
        raise ConfigError(f"datamodule.split={mode!r} is not one of {', '.join(SPLIT_MODES)}.")
    if mode == "ordered":
        if not counts or len(counts) != 3 or sum(counts) > len(names):
            raise ConfigError(
                f"datamodule.split=ordered needs datamodule.split_counts=[train, val, test] summing to at most the "
                f"{len(names)} identities found; got {counts}."
            )
        ordered = names
        sizes = list(counts)
    else:
        if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) > 1.0 + 1e-9:
            raise ConfigError(f"datamodule.split_fractions={fractions} must be three non-negative numbers summing to <= 1.")
        ordered = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
        n = len(names)
        val, test = round(fractions[1] * n), round(fractions[2] * n)
        train = n - val - test if math.isclose(sum(fractions), 1.0) else round(fractions[0] * n)
        sizes = [train, val, test]
    bounds = np.cumsum([0, *sizes])
    return {split: ordered[bounds[i] : bounds[i + 1]] for i, split in enumerate(SPLITS)}


class FolderDataModule(IdentityDataModule):
    """Identities are folder names; images are decoded, converted to `channels` and resized to `image_size`."""

    def __init__(
        self,
        root: str,
        image_size: tuple[int, int] = (64, 64),
        channels: int = 3,
        split: str = "identity",
        split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
        split_counts: tuple[int, int, int] | None = None,
        bad_files_report: str | None = None,
        **batching,
    ):
        super().__init__(**batching)
        if channels not in (1, 3):
            raise ConfigError(f"datamodule.channels={channels} must be 1 (grey) or 3 (RGB).")
        self.root = Path(root)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.image_channels = channels
        self.split_mode = split
        self.split_fractions = list(split_fractions)
        self.split_counts = list(split_counts) if split_counts is not None else None
        self.bad_files_report = Path(bad_files_report) if bad_files_report else None
        self.bad_files: list[str] = []

    def load_splits(self) -> dict[str, IdentitySplit]:
        identities = scan_identities(self.root)
        names = list(identities)
        assignment = assign_splits(names, self.split_mode, self.split_counts, self.split_fractions, self.seed)
        label_of = {name: index for index, name in enumerate(names)}
        splits = {}
        for split, split_names in assignment.items():
            images, labels, sources = [], [], []
            for name in split_names:
                for path in identities[name]:
                    try:
                        images.append(read_image(path, self.image_channels, self.image_size))
                    except BadImage as error:
                        self.bad_files.append(str(error))
                        continue
                    labels.append(label_of[name])
                    sources.append(str(path))
            if not images:
                raise ConfigError(f"the {split} split of datamodule.root={str(self.root)!r} has no readable image.")
            splits[split] = IdentitySplit(np.stack(images), np.array(labels, dtype=np.int64), sources)
        self.report_bad_files()
        return splits

    def report_bad_files(self) -> None:
        if not self.bad_files:
            return
        print(f"skipped {len(self.bad_files)} unreadable image file(s)", end="")
        if self.bad_files_report is not None:
            self.bad_files_report.parent.mkdir(parents=True, exist_ok=True)
            self.bad_files_report.write_text("\n".join(self.bad_files) + "\n")
            print(f"; their paths are in {self.bad_files_report}", end="")
        print()
