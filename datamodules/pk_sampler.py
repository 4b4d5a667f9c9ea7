"""P x K batch sampler: each batch holds P distinct identities with K images each."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from metric.errors import ConfigError


def check_pk_fits(labels: np.ndarray, p: int, k: int, split: str = "train", replicas: int = 1) -> None:
    """Stop with a clear message when P identities of K images each (per rank, on `replicas` ranks) cannot be
    drawn from these labels."""
    if p < 2 or k < 2:
        raise ConfigError(
            f"datamodule.batch_identities={p} and datamodule.batch_images_per_identity={k}: "
            "a P x K batch needs P >= 2 identities (for impostors) and K >= 2 images each (for genuine pairs)."
        )
    counts = np.unique(labels, return_counts=True)[1]
    usable = int((counts >= k).sum())
    needed = p * replicas
    if usable < needed:
        k_max = int(np.sort(counts)[::-1][needed - 1]) if counts.size >= needed else 0
        hint = f"use datamodule.batch_images_per_identity<={k_max}" if k_max >= 2 else "add identities"
        ranks = f" on each of {replicas} ranks" if replicas > 1 else ""
        raise ConfigError(
            f"P x K = {p} x {k}{ranks} does not fit the {split} split: only {usable} of its {counts.size} identities "
            f"have at least {k} images (largest has {int(counts.max())}). "
            f"Lower datamodule.batch_identities to <= {usable // replicas}, or {hint}."
        )


class PKBatchSampler(Sampler[list[int]]):
    """Yields index batches of P identities x K images, covering each identity's images about once per epoch.

    Each epoch, every identity with at least K images has its images shuffled and cut into groups of K;
    the groups are shuffled and packed P at a time so that no identity appears twice in a batch.
    The plan is seeded by (seed, epoch), so runs are reproducible; `set_epoch` is called by Lightning.

    Distributed (num_replicas > 1): every rank draws the same plan of global batches of P x num_replicas
    identities and takes its own P whole groups of each, so within a step no identity is split across
    ranks, every rank has the same number of steps, and the ranks together cover the data once per epoch.
    """

    def __init__(
        self,
        labels: np.ndarray,
        batch_identities: int,
        batch_images_per_identity: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.labels = np.asarray(labels)
        self.p = batch_identities
        self.k = batch_images_per_identity
        self.seed = seed
        self.epoch = 0
        self.num_replicas = num_replicas
        self.rank = rank
        check_pk_fits(self.labels, self.p, self.k, replicas=num_replicas)
        self._by_identity = [np.flatnonzero(self.labels == i) for i in np.unique(self.labels)]
        self._by_identity = [idx for idx in self._by_identity if idx.size >= self.k]
        self._plan_cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _plan(self) -> list[list[np.ndarray]]:
        """Global batches, each a list of P x num_replicas groups of K indices (distinct identities)."""
        if self._plan_cache is not None and self._plan_cache[0] == self.epoch:
            return self._plan_cache[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        groups: list[tuple[int, np.ndarray]] = []
        for identity, indices in enumerate(self._by_identity):
            shuffled = rng.permutation(indices)
            for start in range(0, shuffled.size - self.k + 1, self.k):
                groups.append((identity, shuffled[start : start + self.k]))
        queue = deque(groups[i] for i in rng.permutation(len(groups)))
        batches: list[list[np.ndarray]] = []
        global_p = self.p * self.num_replicas
        while True:
            batch, seen, skipped = [], set(), []
            while queue and len(batch) < global_p:
                identity, members = queue.popleft()
                if identity in seen:
                    skipped.append((identity, members))
                else:
                    seen.add(identity)
                    batch.append(members)
            queue.extendleft(reversed(skipped))
            if len(batch) < global_p:
                break
            batches.append(batch)
        self._plan_cache = (self.epoch, batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        mine = slice(self.rank * self.p, (self.rank + 1) * self.p)
        for groups in self._plan():
            yield np.concatenate(groups[mine]).tolist()

    def __len__(self) -> int:
        return len(self._plan())
