"""Cached embedder features as training data: the rows of a frozen embedder's outputs, served in P x K batches by a
LightningDataModule (`+experiment=adapt` trains its head on them)."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.base import FINAL_SPLITS, IdentityDataModule
from datamodules.pk_sampler import PKBatchSampler
from metric.scoring.feature_cache import FeatureCache


class FeatureRows(Dataset):
    """(embedder features, identity label) rows of one split; batched fetch for the P x K sampler."""

    def __init__(self, features: np.ndarray, labels: np.ndarray):
        self.features, self.labels = torch.from_numpy(features), torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.features[index], self.labels[index]

    def __getitems__(self, indices: list[int]):
        return list(zip(self.features[indices], self.labels[indices].tolist()))


class FeatureDataModule(pl.LightningDataModule):
    """An identity datamodule's splits as the frozen embedder's cached features: P x K training batches and ordered
    evaluation batches of vectors. Everything else (splits, notes, preprocessing) is the wrapped datamodule's."""

    def __init__(self, images: IdentityDataModule, features: FeatureCache):
        super().__init__()
        self.images = images
        self.cache = features
        self.features: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str):  # splits, notes, preprocessing, max_impostor_pairs, batch sizes, face, ...
        if name in ("images", "cache", "features") or name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.images, name)

    def use_fold(self, fold) -> None:
        self.images.use_fold(fold)
        self.features = {}

    def setup(self, stage: str | None = None) -> None:
        if self.features:
            return
        self.images.setup(stage)
        before = self.cache.computed
        self.features = {name: self.cache.embed(split.images) for name, split in self.images.splits.items()}
        self.images.notes["adapt_images_embedded"] = self.cache.computed - before  # 0: every one came from the cache

    def train_dataloader(self) -> DataLoader:
        split = self.images.splits["train"]
        sampler = PKBatchSampler(
            split.labels, self.images.batch_identities, self.images.batch_images_per_identity, seed=self.images.seed
        )
        return DataLoader(FeatureRows(self.features["train"], split.labels), batch_sampler=sampler)

    def eval_dataloader(self, split: str) -> DataLoader:
        rows = FeatureRows(self.features[split], self.images.splits[split].labels)
        return DataLoader(rows, batch_size=self.images.eval_batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> list[DataLoader]:
        return [self.eval_dataloader(name) for name in FINAL_SPLITS]
