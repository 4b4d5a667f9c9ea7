"""10K US Adult Faces (`Face Images/*.jpg`): no identity labels, so each photo is its own identity.

Two uses: `datamodule=us10k` trains on self-supervised positives (K augmented views of one photo form the
genuine pairs), and `datamodule.distractors.root=<us10k root>` on any other datamodule adds its photos to
validation and test as extra identities (US10kDistractors), i.e. many impostor pairs, so that low FARs can be
measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from datamodules.augment import BasicAugment
from datamodules.file_datamodule import FileDataModule
from datamodules.records import ImageRecord, take_subset
from datamodules.split import IdentitySplit
from metric.errors import ConfigError

EXPECTED_TREE = """<root>/
  Face Images/          First_Last_1_oval.jpg ... (10,168 JPEGs)
  <attributes>.csv      optional
"""


def scan_photos(root: Path) -> list[ImageRecord]:
    folder = root / "Face Images"
    if not folder.is_dir():
        raise ConfigError(f"10K US Adult Faces: {folder} is missing. Expected this layout:\n{EXPECTED_TREE}")
    records = [ImageRecord(path=p, identity=p.stem) for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg")]
    if not records:
        raise ConfigError(f"10K US Adult Faces: no .jpg in {folder}. Expected this layout:\n{EXPECTED_TREE}")
    return records


def seeded_views(images: np.ndarray, views: int, seed: int) -> np.ndarray:
    """Each image followed by views-1 deterministic augmented copies: fixed genuine pairs for val/test."""
    augment = BasicAugment()
    out = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for image in images:
            out.append(image)
            out.extend(augment(image) for _ in range(views - 1))
    return np.stack(out)


def replicate(split: IdentitySplit, views: int, seed: int | None) -> IdentitySplit:
    """Every photo `views` times under its own label; augmented at fetch time (train) or here, seeded (val/test)."""
    images = np.repeat(split.images, views, axis=0) if seed is None else seeded_views(split.images, views, seed)
    return IdentitySplit(
        images,
        np.repeat(split.labels, views),
        [s for s in split.sources for _ in range(views)],
        [f for f in split.factors for _ in range(views)],
    )


class US10kDataModule(FileDataModule):
    """Self-supervised positives: each photo is an identity seen through `views` augmented views."""

    dataset_name = "us10k"

    def __init__(self, views: int = 2, **kwargs):
        super().__init__(**kwargs)
        if views < 2:
            raise ConfigError(f"datamodule.views={views}: self-supervised positives need at least 2 views of a photo.")
        self.views = views

    def scan(self) -> list[ImageRecord]:
        return scan_photos(self.root)

    def load_splits(self) -> dict[str, IdentitySplit]:
        if self.augment is None:
            raise ConfigError(
                "datamodule=us10k trains on augmented views of one photo as genuine pairs: set augment=basic or "
                "augment=randaug."
            )
        splits = super().load_splits()
        return {
            name: replicate(split, self.views, None if name == "train" else self.seed + index)
            for index, (name, split) in enumerate(splits.items())
        }


class US10kDistractors:
    """10K US photos appended to val and test (a seeded half each) as identities of one image: impostors only.
    The datamodule calls it with its splits, after any cross-validation cut."""

    def __init__(self, root: str, max_images: int | None = None, cache_dir: str | None = None):
        self.root = Path(root)
        self.max_images = max_images
        self.cache_dir = cache_dir

    def __call__(self, splits: dict[str, IdentitySplit], seed: int, face=None) -> None:
        """`face`: the datamodule's face front end, which the distractor photos go through too."""
        reference = splits["test"]
        loader = US10kDataModule(
            root=str(self.root),
            image_size=reference.images.shape[1:3],
            channels=reference.images.shape[-1],
            cache_dir=self.cache_dir,
            seed=seed,
            face=face,
        )
        photos = take_subset(scan_photos(self.root), max_identities=self.max_images, seed=seed)
        order = np.random.default_rng([seed, 3]).permutation(len(photos))
        half = len(photos) // 2
        extra = loader.load_assignment(
            {"val": [photos[i] for i in order[:half]], "test": [photos[i] for i in order[half:]]}
        )
        next_label = max(int(s.labels.max()) for s in splits.values()) + 1
        for name in ("val", "test"):
            labels = np.arange(next_label, next_label + len(extra[name].labels))  # one identity per photo
            next_label += len(labels)
            base = splits[name]
            splits[name] = IdentitySplit(
                np.concatenate([base.images, extra[name].images]),
                np.concatenate([base.labels, labels]),
                base.sources + extra[name].sources,
                base.factors + [{"distractor": True} for _ in extra[name].sources],
            )


def distractors_from(
    root: str | None = None, max_images: int | None = None, cache_dir: str | None = None
) -> US10kDistractors | None:
    """The `datamodule.distractors` config node: US10kDistractors when `root` is set, else none."""
    return US10kDistractors(root, max_images, cache_dir) if root else None
