"""The identity datamodule base: identity-disjoint splits in memory, P x K training batches, ordered eval batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.faces.frontend import FaceCrop, FaceFrontEnd, NoFace
from datamodules.faces.loader import FaceLoader, check_detection_rate
from datamodules.folds import CVFold, fold_splits
from datamodules.images import BadImage
from datamodules.normalisation import NORMALISATION, to_model_input
from datamodules.pk_sampler import PKBatchSampler, check_pk_fits
from datamodules.split import IdentitySplit, check_identity_disjoint
from metric.errors import ConfigError

# What the final evaluation embeds, in this order: the validation identities (to calibrate the threshold),
# then the test identities (to measure it). EmbeddingModule.test_step receives the index into this tuple.
FINAL_SPLITS = ("val", "test")

# Extra impostor identities for val and test (e.g. datamodules.sources.us10k.US10kDistractors): called with the
# splits, which it extends in place, the datamodule's seed and its face front end.
Distractors = Callable[[dict[str, IdentitySplit], int, FaceFrontEnd], None]


class ImageArrayDataset(Dataset):
    """Indexable (image tensor, identity label) pairs from an IdentitySplit held in memory, for training.

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
        return list(zip(to_model_input(images), self.split.labels[indices].tolist()))


class SplitBatches(Dataset):
    """An evaluation split as whole batches (model input, labels), in order; item i is batch i. Each batch is
    built exactly as metric.scoring.embed.embed_images builds it (one gather, one normalisation), so a
    split embedded here and one embedded by that loop give the same embeddings. Under a distributed trainer
    each rank takes rows rank, rank + world, ... (EmbeddingModule gathers them back into order)."""

    def __init__(self, split: IdentitySplit, batch_size: int, rank: int = 0, world: int = 1):
        self.split = split
        self.rows = np.arange(rank, len(split.labels), world)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.rows[index * self.batch_size : (index + 1) * self.batch_size]
        return to_model_input(self.split.images[rows]), torch.from_numpy(self.split.labels[rows])


class IdentityDataModule(pl.LightningDataModule):
    """Base for every dataset: subclasses implement `load_splits`; this class batches and checks them."""

    official_test_shares_subjects = False  # True only where the dataset's official test reuses training subjects
    identities_by_folder = False  # True where the layout is <root>/<identity>/<image>: the folder names the person

    def __init__(
        self,
        batch_identities: int = 16,
        batch_images_per_identity: int = 4,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        max_impostor_pairs: int = 2_000_000,
        seed: int = 0,
        augment: Callable[[np.ndarray], np.ndarray] | None = None,
        distractors: Distractors | None = None,
        face: FaceFrontEnd | None = None,
    ):
        super().__init__()
        self.face = face if face is not None else FaceFrontEnd()
        self.face_log: list[dict] = []  # one detection record per image the front end saw (faces.png)
        self.augment = augment
        self.distractors = distractors
        self.batch_identities = batch_identities
        self.batch_images_per_identity = batch_images_per_identity
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.max_impostor_pairs = max_impostor_pairs
        self.seed = seed
        self.splits: dict[str, IdentitySplit] = {}
        self.notes: dict = {}  # counts for the run summary: skipped files, unparsed K-Face boxes, ...
        self.cv_fold: CVFold | None = None  # setup() re-cuts the splits for this cross-validation fold
        # self-training: what setup() makes of the train split (its labelled share plus pseudo-labelled images)
        self.train_override: Callable[[IdentitySplit], IdentitySplit] | None = None

    def use_fold(self, fold: CVFold) -> None:
        """Cross-validation: the next setup() pools this dataset's splits and cuts out fold `fold`."""
        if fold.official and type(self).cut_fold is IdentityDataModule.cut_fold:
            self.cut_fold(self.splits, fold)  # refused now, before any image is read
        self.cv_fold = fold
        self.splits = {}

    # subclasses ---------------------------------------------------------------------------
    def load_splits(self) -> dict[str, IdentitySplit]:
        """Return identity-disjoint 'train', 'val' and 'test' splits."""
        raise NotImplementedError

    def identity_names(self, split: IdentitySplit) -> list[str]:
        """Each image's identity as the dataset names it: the folder where folders are people (identities_by_folder),
        else the label number."""
        if self.identities_by_folder:
            return [Path(source).parent.name for source in split.sources]
        return [str(int(label)) for label in split.labels]

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
            "normalisation": NORMALISATION,
            "face": self.face.spec(),
        }

    def detect_faces(
        self, split: str, paths: list, channels: int, size: tuple[int, int], cache_dir=None
    ) -> list[np.ndarray | BadImage]:
        """Each file through the face front end, in order: its aligned crop, or the BadImage (unreadable, no face)
        that keeps it out of the split. Logs the detections and the split's detection rate, and stops when the
        rate is below face.min_detection_rate."""
        crops = FaceLoader(self.face, channels, size, cache_dir).load_many(paths, desc=split)
        entries = [
            {"source": str(p), "split": split, **c.record()} for p, c in zip(paths, crops) if isinstance(c, FaceCrop)
        ]
        self.face_log.extend(entries)
        rate = check_detection_rate(split, entries, self.face)
        self.notes[f"face_detection_rate_{split}"] = round(rate, 4)
        self.notes[f"face_several_{split}"] = sum(e["faces"] > 1 for e in entries)  # the largest face was used
        return [
            c if isinstance(c, BadImage) else c.image if c.image is not None else NoFace(f"{p}: {c.reason}")
            for p, c in zip(paths, crops)
        ]

    def cut_fold(self, splits: dict[str, IdentitySplit], fold: CVFold) -> dict[str, IdentitySplit]:
        """This cross-validation fold's splits; a dataset with official folds (LFW) overrides it."""
        if fold.official:
            raise ConfigError(
                "cv.folds=lfw runs LFW's official View 2 folds: use it with datamodule=lfw, or give a "
                "number of folds (cv.folds=5)."
            )
        return fold_splits(splits, fold)

    # Lightning -----------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        splits = self.load_splits()
        check_identity_disjoint(splits, test_may_share=self.official_test_shares_subjects)
        if self.cv_fold is not None:
            splits = self.cut_fold(splits, self.cv_fold)
        if self.distractors is not None:
            self.distractors(splits, self.seed, self.face)
        if self.train_override is not None:
            splits["train"] = self.train_override(splits["train"])
        self.check_eval_splits(splits, stage)
        if stage in (None, "fit"):  # evaluation never draws training batches
            self.check_training_batches(splits["train"])
        self.splits = splits

    def check_eval_splits(self, splits: dict[str, IdentitySplit], stage: str | None = None) -> None:
        """Validation and test must hold impostor pairs: two identities at least."""
        for name in ("val", "test"):
            if splits[name].num_identities < 2:
                raise ConfigError(
                    f"the {name} split has {splits[name].num_identities} identities; it needs at least 2."
                )

    def check_training_batches(self, train: IdentitySplit) -> None:
        """Stop before training when the train split cannot fill the batches this datamodule draws (P x K here)."""
        check_pk_fits(train.labels, self.batch_identities, self.batch_images_per_identity)

    def _ranks(self) -> tuple[int, int]:
        """(world size, this process's rank) under a distributed trainer; (1, 0) otherwise."""
        trainer = getattr(self, "trainer", None)
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def train_dataloader(self) -> DataLoader:
        world, rank = self._ranks()
        sampler = PKBatchSampler(
            self.splits["train"].labels,
            self.batch_identities,
            self.batch_images_per_identity,
            seed=self.seed,
            num_replicas=world,
            rank=rank,
        )
        return DataLoader(
            ImageArrayDataset(self.splits["train"], augment=self.augment),
            batch_sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def eval_dataloader(self, split: str) -> DataLoader:
        """The split in order, `eval_batch_size` images per batch (this rank's share under a distributed trainer)."""
        world, rank = self._ranks()
        batches = SplitBatches(self.splits[split], self.eval_batch_size, rank, world)
        return DataLoader(batches, batch_size=None, shuffle=False, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> list[DataLoader]:
        """The final evaluation's loaders, FINAL_SPLITS in order: validation (calibration), then test."""
        return [self.eval_dataloader(name) for name in FINAL_SPLITS]
