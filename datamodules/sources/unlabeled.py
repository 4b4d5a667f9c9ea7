"""Unlabeled face images for self-training (`unlabeled.root`): the 10K US Adult Faces layout (`Face Images/*.jpg`)
or any folder of images (searched recursively), through the labelled datamodule's face front end, size and
channels, decoded once into the same lossless cache as every dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.base import IdentityDataModule
from datamodules.file_datamodule import FileDataModule
from datamodules.images import IMAGE_SUFFIXES
from datamodules.records import ImageRecord, natural_key, take_subset
from datamodules.sources.us10k import scan_photos
from datamodules.split import IdentitySplit
from metric.errors import ConfigError


def scan_unlabeled(root: Path) -> list[ImageRecord]:
    """Every image under `root` (the US10k layout when `Face Images/` is there), each its own record, in natural
    path order."""
    if not root.is_dir():
        raise ConfigError(
            f"unlabeled.root={str(root)!r} is not a folder: give a folder of face images (any tree), "
            "or the 10K US Adult Faces root (with 'Face Images/')."
        )
    if (root / "Face Images").is_dir():
        return scan_photos(root)
    paths = sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: natural_key(str(p.relative_to(root))),
    )
    if not paths:
        raise ConfigError(
            f"unlabeled.root={str(root)!r} holds no image ({', '.join(IMAGE_SUFFIXES)}, searched in "
            "every subfolder): point it at the folder of unlabeled faces."
        )
    return [ImageRecord(path=p, identity=str(p.relative_to(root))) for p in paths]


class UnlabeledFolder(FileDataModule):
    """The loader behind `unlabeled.root`: one split, 'pool', of every image (each its own record)."""

    dataset_name = "unlabeled"
    root_key = "unlabeled.root"

    def scan(self) -> list[ImageRecord]:
        return scan_unlabeled(self.root)


def load_unlabeled(
    root: str,
    like: IdentityDataModule,
    max_images: int | None = None,
    cache_dir: str | None = None,
    bad_files_report: str | Path | None = None,
) -> IdentitySplit:
    """The unlabeled images, prepared exactly as `like` (a set-up labelled datamodule) prepares its own: its face
    front end, image size and channels. Labels are placeholders (-1): these images have no identity yet."""
    height, width = like.splits["train"].images.shape[1:3]
    loader = UnlabeledFolder(
        root=root,
        image_size=(int(height), int(width)),
        channels=like.channels,
        cache_dir=cache_dir,
        seed=like.seed,
        face=like.face,
        bad_files_report=str(bad_files_report) if bad_files_report else None,
    )
    records = take_subset(loader.scan(), max_identities=max_images, seed=like.seed)
    pool = loader.load_assignment({"pool": records})["pool"]
    pool.labels[:] = -1
    return pool


@dataclass(frozen=True)
class UnlabeledData:
    """What self-training starts from: the training identities that keep their labels, the unlabeled pool, and
    the pool's hidden true identities (None for a folder of unlabeled images, which has none)."""

    labelled: np.ndarray  # label ids of the train split that stay labelled
    pool: IdentitySplit
    truth: np.ndarray | None


@dataclass
class UnlabeledSource:
    """The `unlabeled` config node: a folder of unlabeled faces (`root`), or, with `labelled_identities`, the
    labelled datamodule's own training identities with all but that share (or number) of them hidden; the hidden
    labels then only measure the pseudo-labels (purity), never train."""

    root: str | None = None
    labelled_identities: float | int | None = None
    max_images: int | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if (self.root is None) == (self.labelled_identities is None):
            raise ConfigError(
                "self-training needs unlabeled faces: set unlabeled.root=<folder of images> (the 10K US Adult Faces "
                "root or any folder), or unlabeled.labelled_identities=<share or number> to hide the labels of the "
                "other training identities (and measure the pseudo-labels against them); not both."
            )
        share = self.labelled_identities
        if share is not None and (
            isinstance(share, bool)
            or not isinstance(share, (int, float))
            or share <= 0
            or (isinstance(share, float) and share >= 1)
        ):
            raise ConfigError(
                f"unlabeled.labelled_identities={share!r} must be a share in (0, 1) or a whole number "
                ">= 1 of training identities that keep their labels."
            )
        if self.max_images is not None and (
            isinstance(self.max_images, bool) or not isinstance(self.max_images, int) or self.max_images < 1
        ):
            raise ConfigError(f"unlabeled.max_images={self.max_images!r} must be a whole number >= 1, or null for all.")

    def load(self, datamodule: IdentityDataModule, bad_files_report: str | Path | None = None) -> UnlabeledData:
        """The labelled identities and the pool, for a set-up labelled datamodule (seeded by its seed); unreadable
        or faceless files of unlabeled.root are listed in `bad_files_report`."""
        train = datamodule.splits["train"]
        identities = np.unique(train.labels)
        if self.root is not None:
            pool = load_unlabeled(self.root, datamodule, self.max_images, self.cache_dir, bad_files_report)
            return UnlabeledData(identities, pool, None)
        order = identities[np.random.default_rng([datamodule.seed, 19]).permutation(identities.size)]
        share = self.labelled_identities
        keep = int(share) if isinstance(share, int) else max(1, round(share * identities.size))
        if keep >= identities.size:
            raise ConfigError(
                f"unlabeled.labelled_identities={share} keeps all {identities.size} training identities "
                "labelled: nothing is left to pseudo-label. Give a smaller share or number."
            )
        hidden = order[keep:]
        if self.max_images is not None:  # whole hidden identities, in the seeded order, up to max_images images
            counts = np.array([(train.labels == i).sum() for i in hidden])
            hidden = hidden[: max(1, int(np.searchsorted(np.cumsum(counts), self.max_images, side="right")))]
        pool = train.select(hidden)
        truth = pool.labels.copy()
        pool.labels[:] = -1
        return UnlabeledData(np.sort(order[:keep]), pool, truth)
