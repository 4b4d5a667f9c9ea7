"""P x K batch sampler: each batch holds P distinct identities with K images each."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from metric.errors import ConfigError


def check_pk_fits(labels: np.ndarray, p: int, k: int, split: str = "train") -> None:
    """Stop with a clear message when P identities of K images each cannot be drawn from these labels."""
    if p < 2 or k < 2:
        raise ConfigError(
            f"datamodule.batch_identities={p} and datamodule.batch_images_per_identity={k}: "
            "a P x K batch needs P >= 2 identities (for impostors) and K >= 2 images each (for genuine pairs)."
        )
    counts = np.unique(labels, return_counts=True)[1]
    usable = int((counts >= k).sum())
    if usable < p:
        k_max = int(np.sort(counts)[::-1][p - 1]) if counts.size >= p else 0
        hint = f"use datamodule.batch_images_per_identity<={k_max}" if k_max >= 2 else "add identities"
        raise ConfigError(
            f"P x K = {p} x {k} does not fit the {split} split: only {usable} of its {counts.size} identities "
            f"have at least {k} images (largest has {int(counts.max())}). "
            f"Lower datamodule.batch_identities to <= {usable}, or {hint}."
        )


class PKBatchSampler(Sampler[list[int]]):
    """Yields index batches of P identities x K images, covering each identity's images about once per epoch.

    Each epoch, every identity with at least K images has its images shuffled and cut into groups of K;
    the groups are shuffled and packed P at a time so that no identity appears twice in a batch.
    The plan is seeded by (seed, epoch), so runs are reproducible; `set_epoch` is called by Lightning.
    """

    def __init__(self, labels: np.ndarray, batch_identities: int, batch_images_per_identity: int, seed: int = 0):
        self.labels = np.asarray(labels)
        self.p = batch_identities
        self.k = batch_images_per_identity
        self.seed = seed
        self.epoch = 0
        check_pk_fits(self.labels, self.p, self.k)
        self._by_identity = [np.flatnonzero(self.labels == i) for i in np.unique(self.labels)]
        self._by_identity = [idx for idx in self._by_identity if idx.size >= self.k]
        self._plan_cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _plan(self) -> list[list[int]]:
        if self._plan_cache is not None and self._plan_cache[0] == self.epoch:
            return self._plan_cache[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        groups: list[tuple[int, np.ndarray]] = []
        for identity, indices in enumerate(self._by_identity):
            shuffled = rng.permutation(indices)
            for start in range(0, shuffled.size - self.k + 1, self.k):
                groups.append((identity, shuffled[start : start + self.k]))
        queue = deque(groups[i] for i in rng.permutation(len(groups)))
        batches: list[list[int]] = []
        while True:
            batch, seen, skipped = [], set(), []
            while queue and len(batch) < self.p:
                identity, members = queue.popleft()
                if identity in seen:
                    skipped.append((identity, members))
                else:
                    seen.add(identity)
                    batch.append(members)
            queue.extendleft(reversed(skipped))
            if len(batch) < self.p:
                break
            batches.append(np.concatenate(batch).tolist())
        self._plan_cache = (self.epoch, batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._plan()

    def __len__(self) -> int:
        return len(self._plan())
