"""Liveness data: CelebA-Spoof's spoof vocabulary, condition filters, and live/spoof batches from subject-disjoint
splits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from datamodules.normalisation import to_model_input
from datamodules.records import ImageRecord
from datamodules.split import IdentitySplit
from metric.errors import ConfigError

# CelebA-Spoof's label codes (metas/*/train_label.json: [40] spoof type, [41] illumination, [42] environment)
SPOOF_TYPES = {
    0: "live",
    1: "photo",
    2: "poster",
    3: "a4",
    4: "face_mask",
    5: "upper_body_mask",
    6: "region_mask",
    7: "pc",
    8: "pad",
    9: "phone",
    10: "3d_mask",
}
SPOOF_GROUPS = {"print": (1, 2, 3), "replay": (7, 8, 9), "mask": (4, 5, 6, 10)}
ILLUMINATIONS = {0: "live", 1: "normal", 2: "strong", 3: "back", 4: "dark"}
ENVIRONMENTS = {0: "live", 1: "indoor", 2: "outdoor"}
# the factor keys every liveness record carries, in the column order of the target array
TARGETS = ("spoof", "spoof_type", "illumination", "environment")
CONDITION_KEYS = {
    "spoof_types": ("spoof_type", SPOOF_TYPES),
    "illumination": ("illumination", ILLUMINATIONS),
    "environment": ("environment", ENVIRONMENTS),
}


def parse_codes(values, vocabulary: dict[int, str], key: str) -> frozenset[int] | None:
    """Names, codes or (for spoof types) group names -> attack codes; None keeps every value."""
    if values is None:
        return None
    if isinstance(values, (str, int)) or not isinstance(values, Sequence):
        values = [values]
    by_name = {name: code for code, name in vocabulary.items()}
    codes: set[int] = set()
    for value in values:
        if vocabulary is SPOOF_TYPES and value in SPOOF_GROUPS:
            codes.update(SPOOF_GROUPS[value])
        elif value in by_name or (isinstance(value, int) and not isinstance(value, bool) and value in vocabulary):
            codes.add(by_name.get(value, value))
        else:
            groups = f"; groups: {', '.join(SPOOF_GROUPS)}" if vocabulary is SPOOF_TYPES else ""
            allowed = ", ".join(f"{c} {n}" for c, n in vocabulary.items() if c)
            raise ConfigError(f"{key}: {value!r} is not a known value (codes and names: {allowed}{groups}).")
    if 0 in codes:
        raise ConfigError(f"{key}: live presentations are always kept; list attack conditions only.")
    return frozenset(codes)


@dataclass(frozen=True)
class Conditions:
    """Which attack presentations a split keeps (None: all); live presentations are always kept, since their
    illumination and environment are labelled 0 (live) in CelebA-Spoof."""

    spoof_types: frozenset[int] | None = None
    illumination: frozenset[int] | None = None
    environment: frozenset[int] | None = None

    @classmethod
    def parse(cls, mapping: Mapping | None, key: str) -> Conditions:
        mapping = dict(mapping or {})
        unknown = set(mapping) - set(CONDITION_KEYS)
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {sorted(unknown)}; it takes {', '.join(CONDITION_KEYS)}.")
        return cls(
            **{
                name: parse_codes(mapping.get(name), CONDITION_KEYS[name][1], f"{key}.{name}")
                for name in CONDITION_KEYS
            }
        )

    def keeps(self, factors: Mapping) -> bool:
        if not factors["spoof"]:
            return True
        return all(
            allowed is None or factors[CONDITION_KEYS[name][0]] in allowed for name, allowed in vars(self).items()
        )

    def describe(self) -> str:
        kept = [f"{name}={sorted(v)}" for name, v in vars(self).items() if v is not None]
        return ", ".join(kept) or "all attacks"


def liveness_targets(split: IdentitySplit) -> np.ndarray:
    """(N, 4) int64: spoof (0 live, 1 attack), spoof type, illumination, environment of each image."""
    return np.array([[int(f[key]) for key in TARGETS] for f in split.factors], dtype=np.int64).reshape(-1, len(TARGETS))


class LiveSpoofDataset(Dataset):
    """(model input, target row) per image, `augment` applied to training images."""

    def __init__(self, split: IdentitySplit, augment=None):
        self.split = split
        self.targets = torch.from_numpy(liveness_targets(split))
        self.augment = augment

    def __len__(self) -> int:
        return len(self.split.labels)

    def __getitem__(self, index: int):
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]):
        images = self.split.images[indices]
        if self.augment is not None:
            images = np.stack([self.augment(image) for image in images])
        return list(zip(to_model_input(images), self.targets[indices]))


class LiveSpoofBatches(Dataset):
    """An evaluation split as whole ordered batches (model input, targets); under DDP rank r takes rows r, r+w, ..."""

    def __init__(self, split: IdentitySplit, batch_size: int, rank: int = 0, world: int = 1):
        self.split = split
        self.targets = torch.from_numpy(liveness_targets(split))
        self.rows = np.arange(rank, len(split.labels), world)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def __getitem__(self, index: int):
        rows = self.rows[index * self.batch_size : (index + 1) * self.batch_size]
        return to_model_input(self.split.images[rows]), self.targets[rows]


class LivenessData:
    """Mixed into an IdentityDataModule whose records carry the TARGETS factors: condition filters per split, shuffled
    live/spoof training batches, and ordered (images, targets) evaluation batches. Subjects stay disjoint."""

    task = "liveness"

    def __init__(
        self,
        batch_size: int = 64,
        train_conditions: Mapping | None = None,
        test_conditions: Mapping | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"datamodule.batch_size={batch_size!r} must be a positive integer.")
        self.batch_size = batch_size
        self.conditions = {
            "train": Conditions.parse(train_conditions, "datamodule.train_conditions"),
            "test": Conditions.parse(test_conditions, "datamodule.test_conditions"),
        }
        self.conditions["val"] = self.conditions["train"]  # validation subjects are carved from train

    def filter_conditions(self, assignment: dict[str, list[ImageRecord]]) -> dict[str, list[ImageRecord]]:
        """Each split's records that its conditions keep; the counts kept go into the run notes."""
        kept = {}
        for split, records in assignment.items():
            kept[split] = [r for r in records if self.conditions[split].keeps(r.factors)]
            self.notes[f"presentations_{split}"] = {
                SPOOF_TYPES[t]: sum(r.factors["spoof_type"] == t for r in kept[split])
                for t in sorted({r.factors["spoof_type"] for r in kept[split]})
            }
            if self.conditions[split] != Conditions():
                self.notes[f"conditions_{split}"] = self.conditions[split].describe()
        return kept

    @staticmethod
    def check_val_subjects(val_subjects) -> float | int:
        """datamodule.val_subjects: a count of subjects (>= 1) or a fraction of the training subjects in (0, 1)."""
        if isinstance(val_subjects, bool) or not (
            isinstance(val_subjects, int)
            and val_subjects >= 1
            or isinstance(val_subjects, float)
            and 0 < val_subjects < 1
        ):
            raise ConfigError(
                f"datamodule.val_subjects={val_subjects!r} must be a count of subjects (>= 1) or a "
                "fraction of the training subjects in (0, 1)."
            )
        return val_subjects

    def carve_validation(
        self, assignment: dict[str, list[ImageRecord]], stream: int, order=None
    ) -> dict[str, list[ImageRecord]]:
        """Validation subjects drawn from the training subjects (`self.val_subjects`: a count or a fraction) by a
        shuffle seeded with (seed, stream), each dataset its own stream; `order` sorts the subjects first."""
        subjects = sorted({r.identity for r in assignment["train"]}, key=order)
        count = self.val_subjects if isinstance(self.val_subjects, int) else round(self.val_subjects * len(subjects))
        if not 1 <= count < len(subjects):
            raise ConfigError(
                f"datamodule.val_subjects={self.val_subjects} leaves {len(subjects)} training subjects "
                f"and {count} validation subjects; each needs at least one."
            )
        chosen = {subjects[i] for i in np.random.default_rng([self.seed, stream]).permutation(len(subjects))[:count]}
        train = assignment["train"]
        return {
            "train": [r for r in train if r.identity not in chosen],
            "val": [r for r in train if r.identity in chosen],
            "test": assignment["test"],
        }

    def breakdowns(self, split: IdentitySplit) -> dict[str, list] | None:
        """The conditions the report breaks the error rates down by (name -> one value per image); None: CelebA-Spoof's
        attack type, illumination and environment. A dataset with other conditions returns its own."""
        return None

    def check_training_batches(self, train: IdentitySplit) -> None:
        """Shuffled batches fit any train split that holds an image (check_eval_splits checks both classes)."""

    def check_eval_splits(self, splits: dict[str, IdentitySplit], stage: str | None = None) -> None:
        """Every split must hold live and attack presentations, so that APCER and BPCER are defined; evaluation alone
        (stage 'test') reads only the test split, so a dataset used only for testing may leave train and val empty
        (datamodule.split_fractions=[0,0,1])."""
        for name, split in splits.items():
            if not len(split.images):
                if stage == "test" and name != "test":
                    continue
                use = (
                    ""
                    if name == "test"
                    else (
                        " (a set with no train or validation share, e.g. datamodule."
                        "split_fractions=[0.0,0.0,1.0], is for metric.evaluate only)"
                    )
                )
                raise ConfigError(
                    f"the {name} split is empty{use}: give it a share of datamodule.split_fractions or more subjects."
                )
            spoof = liveness_targets(split)[:, 0]
            if spoof.all() or not spoof.any():
                missing = "live" if spoof.all() else "attack"
                key = "test_conditions" if name == "test" else "train_conditions"
                raise ConfigError(
                    f"the {name} split holds no {missing} presentation after the filters "
                    f"({self.conditions[name].describe()}): widen datamodule.{key} or add subjects."
                )

    def train_dataloader(self) -> DataLoader:
        world, rank = self._ranks()
        dataset = LiveSpoofDataset(self.splits["train"], self.augment)
        if world > 1:
            sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, seed=self.seed, drop_last=True)
        else:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(self.seed))
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            drop_last=len(dataset) > self.batch_size,
            persistent_workers=self.num_workers > 0,
        )

    def eval_dataloader(self, split: str) -> DataLoader:
        world, rank = self._ranks()
        batches = LiveSpoofBatches(self.splits[split], self.eval_batch_size, rank, world)
        return DataLoader(batches, batch_size=None, shuffle=False, num_workers=self.num_workers)
