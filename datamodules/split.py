"""An identity-disjoint split held in memory, and the checks and cuts every dataset and fold shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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

    def select(self, identities: np.ndarray) -> IdentitySplit:
        """The images of these identities, in their current order."""
        keep = np.flatnonzero(np.isin(self.labels, identities))
        return IdentitySplit(
            self.images[keep], self.labels[keep], [self.sources[i] for i in keep], [self.factors[i] for i in keep]
        )


def merge_splits(splits: dict[str, IdentitySplit]) -> IdentitySplit:
    """Every image of every split in one split (identity labels are already disjoint across splits)."""
    parts = [splits[name] for name in SPLITS]
    return IdentitySplit(
        images=np.concatenate([p.images for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        sources=[s for p in parts for s in p.sources],
        factors=[f for p in parts for f in p.factors],
    )


def check_identity_disjoint(splits: dict[str, IdentitySplit], test_may_share: bool = False) -> None:
    """Fail when any identity label appears in two splits: errors must be measured on unseen identities.
    test_may_share: a dataset whose official test protocol reuses training subjects (NUAA: a later session) may
    share them between test and the others; train and validation stay disjoint."""
    missing = [name for name in SPLITS if name not in splits]
    if missing:
        raise ConfigError(f"the datamodule gave no {missing} split; it must give train, val and test.")
    seen: dict[int, str] = {}
    for name in SPLITS:
        if name == "test" and test_may_share:
            continue
        for identity in np.unique(splits[name].labels).tolist():
            if identity in seen:
                raise ConfigError(f"identity {identity} is in both the {seen[identity]} and {name} splits.")
            seen[identity] = name
