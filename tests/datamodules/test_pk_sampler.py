"""P x K batches: P distinct identities, K images each, reproducible, and a clear error when they cannot fit."""

import numpy as np
import pytest

from datamodules.pk_sampler import PKBatchSampler
from metric.errors import ConfigError


def test_batches_hold_p_identities_of_k_images():
    labels = np.repeat(np.arange(30), 7)
    sampler = PKBatchSampler(labels, batch_identities=6, batch_images_per_identity=3, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for batch in batches:
        ids, counts = np.unique(labels[batch], return_counts=True)
        assert ids.size == 6 and (counts == 3).all()
    used = np.concatenate(batches)
    assert np.unique(used).size == used.size  # no image twice in one epoch
    assert used.size >= 0.8 * labels.size  # covers most of the data each epoch (7 images -> 2 groups of 3)


def test_epochs_differ_and_are_reproducible():
    labels = np.repeat(np.arange(12), 4)
    a = PKBatchSampler(labels, 4, 2, seed=0)
    b = PKBatchSampler(labels, 4, 2, seed=0)
    first = list(a)
    assert first == list(b)
    a.set_epoch(1)
    assert list(a) != first


def test_pk_that_does_not_fit_is_a_clear_error():
    labels = np.repeat(np.arange(5), 3)
    with pytest.raises(ConfigError, match=r"P x K = 8 x 2 does not fit.*batch_identities to <= 5"):
        PKBatchSampler(labels, 8, 2)
    with pytest.raises(ConfigError, match=r"batch_images_per_identity<=3"):
        PKBatchSampler(labels, 4, 4)


def test_ranks_draw_disjoint_whole_groups_and_cover_the_epoch_together():
    labels = np.repeat(np.arange(40), 6)
    ranks = [PKBatchSampler(labels, 4, 3, seed=2, num_replicas=2, rank=r) for r in range(2)]
    single = PKBatchSampler(labels, 8, 3, seed=2)  # one process with the same global batch
    per_rank = [list(s) for s in ranks]
    assert len(per_rank[0]) == len(per_rank[1]) == len(single) > 0  # every rank takes the same number of steps
    for step, (a, b) in enumerate(zip(*per_rank)):
        for batch in (a, b):
            ids, counts = np.unique(labels[batch], return_counts=True)
            assert ids.size == 4 and (counts == 3).all()  # whole groups of K images
        assert not set(labels[a]) & set(labels[b])  # no identity split across ranks within a step
        assert sorted(a + b) == sorted(list(single)[step])
    used = np.concatenate([np.concatenate(p) for p in per_rank])
    assert np.unique(used).size == used.size  # no image twice across ranks in one epoch


def test_pk_that_does_not_fit_all_ranks_names_the_rank_count():
    labels = np.repeat(np.arange(10), 3)
    with pytest.raises(ConfigError, match=r"8 x 2 on each of 2 ranks.*batch_identities to <= 5"):
        PKBatchSampler(labels, 8, 2, num_replicas=2, rank=1)
