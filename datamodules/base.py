"""Shared identity-dataset base: identity-disjoint splits in memory, P x K training batches, plain eval batches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from datamodules.pk_sampler import PKBatchSampler, check_pk_fits
from metric.errors import ConfigError

SPLITS = ("train", "val", "test")


@dataclass
class IdentitySplit:
    """Images of one split: uint8 array (N, H, W, C), an identity label per image, its source, and its factors
    (e.g. K-Face lighting or pose), kept so that evaluation can break errors down by condition."""

    images: np.ndarray
    labels: np.ndarray
    sources: list[str]
    factors: list[dict] | None = None

    def __post_init__(self) -> None:
        if not (len(self.images) == len(self.labels) == len(self.sources)):
            raise ValueError("images, labels and sources must have one entry per image")
        if self.factors is None:
            self.factors = [{} for _ in self.sources]

    @property
    def num_identities(self) -> int:
        return int(np.unique(self.labels).size)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [-1, 1]: a fixed, dataset-independent normalisation."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)


class ImageArrayDataset(Dataset):
    """Indexable (image tensor, identity label) pairs from an IdentitySplit held in memory.

    `augment` (uint8 HWC -> uint8 HWC) is given for training images only.
    """

    def __init__(self, split: IdentitySplit, augment: Callable[[np.ndarray], np.ndarray] | None = None):
        self.split = split
        self.augment = augment

    def __len__(self) -> int:
        return len(self.split.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """Batched fetch: one array gather and one conversion instead of one per image."""
        images = self.split.images[indices]
        if self.augment is not None:
            images = np.stack([self.augment(image) for image in images])
        return list(zip(to_tensor(images), self.split.labels[indices].tolist()))


class IdentityDataModule(pl.LightningDataModule):
    """Base for every dataset: subclasses implement `load_splits`; this class batches and checks them."""

    def __init__(
        self,
        batch_identities: int = 16,
        batch_images_per_identity: int = 4,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        max_impostor_pairs: int = 2_000_000,
        seed: int = 0,
        augment: Callable[[np.ndarray], np.ndarray] | None = None,
        distractors: dict | None = None,
    ):
        super().__init__()
        self.augment = augment
        self.distractors = dict(distractors) if distractors and distractors.get("root") else None
        self.batch_identities = batch_identities
        self.batch_images_per_identity = batch_images_per_identity
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.max_impostor_pairs = max_impostor_pairs
        self.seed = seed
        self.splits: dict[str, IdentitySplit] = {}
        self.notes: dict = {}  # counts for the run summary: skipped files, unparsed K-Face boxes, ...
        self.cv_fold = None  # a datamodules.cv.CVFold: setup() re-cuts the splits for that fold

    def use_fold(self, fold) -> None:
        """Cross-validation: the next setup() pools this dataset's splits and cuts out fold `fold` (CVFold)."""
        self.cv_fold = fold
        self.splits = {}

    # subclasses ---------------------------------------------------------------------------
    def load_splits(self) -> dict[str, IdentitySplit]:
        """Return identity-disjoint 'train', 'val' and 'test' splits."""
        raise NotImplementedError

    @property
    def channels(self) -> int:
        return int(self.splits["train"].images.shape[-1])

    @property
    def preprocessing(self) -> dict:
        """How a new image must be prepared to match training; stored in every checkpoint."""
        height, width = self.splits["train"].images.shape[1:3]
        return {
            "image_size": [int(height), int(width)],
            "channels": self.channels,
            "normalisation": "uint8 pixels / 127.5 - 1, channels in RGB order (or one grey channel)",
        }

    # Lightning -----------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        splits = self.load_splits()
        check_identity_disjoint(splits)
        if self.cv_fold is not None:
            from datamodules.cv import fold_splits

            splits = fold_splits(splits, self.cv_fold)
        if self.distractors:
            from datamodules.us10k import add_distractors

            add_distractors(splits, self.distractors, seed=self.seed)
        for name in ("val", "test"):
            if splits[name].num_identities < 2:
                raise ConfigError(f"the {name} split has {splits[name].num_identities} identities; it needs at least 2.")
        if stage in (None, "fit"):  # evaluation never draws P x K batches
            check_pk_fits(splits["train"].labels, self.batch_identities, self.batch_images_per_identity)
        self.splits = splits

    def _ranks(self) -> tuple[int, int]:
        """(world size, this process's rank) under a distributed trainer; (1, 0) otherwise."""
        trainer = getattr(self, "trainer", None)
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def train_dataloader(self) -> DataLoader:
        world, rank = self._ranks()
        sampler = PKBatchSampler(
            self.splits["train"].labels, self.batch_identities, self.batch_images_per_identity, seed=self.seed,
            num_replicas=world, rank=rank,
        )
        return DataLoader(
            ImageArrayDataset(self.splits["train"], augment=self.augment),
            batch_sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def eval_dataloader(self, split: str) -> DataLoader:
        """In order; under a distributed trainer each rank takes every world-th image (rank, rank + world, ...),
        which EmbeddingModule gathers back into this order."""
        world, rank = self._ranks()
        dataset = ImageArrayDataset(self.splits[split])
        return DataLoader(
            dataset if world == 1 else Subset(dataset, range(rank, len(dataset), world)),
            batch_size=self.eval_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")


def check_identity_disjoint(splits: dict[str, IdentitySplit]) -> None:
    """Fail when any identity label appears in two splits: errors must be measured on unseen identities."""
    missing = [name for name in SPLITS if name not in splits]
    if missing:
        raise ConfigError(f"the datamodule gave no {missing} split; it must give train, val and test.")
    seen: dict[int, str] = {}
    for name in SPLITS:
        for identity in np.unique(splits[name].labels).tolist():
            if identity in seen:
                raise ConfigError(f"identity {identity} is in both the {seen[identity]} and {name} splits.")
            seen[identity] = name
